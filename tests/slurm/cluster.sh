#!/usr/bin/env bash
# A throw-away one-node SLURM cluster for CI (Debian packages, daemons started by hand, no systemd).
#
#   tests/slurm/cluster.sh install        apt-get the Debian packages (root)
#   tests/slurm/cluster.sh up DIR         write DIR/slurm.conf, start munged, slurmctld, slurmd, wait for the node
#   tests/slurm/cluster.sh down DIR       cancel its jobs, stop the daemons it started (safe to call twice)
#   tests/slurm/cluster.sh env DIR        print the export line a client shell needs (SLURM_CONF)
#
# Everything the cluster writes (config, state, spool, pid files, daemon logs) lives in DIR.
# Clients find the config through SLURM_CONF=DIR/slurm.conf and through a symlink
# /etc/slurm/slurm.conf -> DIR/slurm.conf: the executor's job step drops SLURM_* variables
# (SLURM_CONF too) before its nested srun, which then only looks in the default place. `up`
# refuses to replace a real /etc/slurm/slurm.conf; `down` removes the symlink.
# The node advertises two GPU gres backed by no devices (GPU_GRES=0 drops them), so a job that
# requests a GPU is scheduled like on a GPU node; the demo itself projects on the CPU.
# MinJobAge is an hour: without slurmdbd, finished jobs must stay visible to squeue/scontrol or
# the executor's status polling never learns that they ended.
# Every wait is bounded; callers wrap this script in `timeout -s KILL` as well.
set -euo pipefail

PACKAGES=(slurmctld slurmd slurm-client munge)

die() { echo "cluster.sh: $*" >&2; exit 1; }

need_root() { [ "$(id -u)" = 0 ] || die "needs root (daemons run as root, no systemd)"; }

install_packages() {
    need_root
    command -v apt-get >/dev/null || die "apt-get not found (not a Debian machine)"
    local missing=()
    for b in slurmctld slurmd sbatch munged; do command -v "$b" >/dev/null || missing+=("$b"); done
    if [ ${#missing[@]} -eq 0 ]; then echo "SLURM packages already installed"; return; fi
    export DEBIAN_FRONTEND=noninteractive
    # the package lists may be stale or absent on a fresh machine: update once if install fails
    apt-get install -y -q --no-install-recommends "${PACKAGES[@]}" >/dev/null \
        || { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends "${PACKAGES[@]}" >/dev/null; }
    echo "installed: ${PACKAGES[*]}"
}

write_conf() {
    local dir=$1 host cpus mem gres_line=""
    host=$(hostname -s)
    # CPUs and memory are overstated on purpose (SlurmdParameters=config_overrides allows it):
    # twice the real cores, at least 4, so a 2-core CI machine runs two grouped jobs at once; the
    # jobs are mostly Snakemake start-up and tiny models
    cpus=$(( $(nproc) * 2 ))
    [ "$cpus" -ge 4 ] || cpus=4
    # at least 64 GB: the profile's requests (16 GB per GPU job) are bookkeeping here, nothing
    # enforces them (no cgroups) and the demo's jobs use well under 1 GB each
    mem=$(slurmd -C | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p')
    mem=$((mem * 9 / 10))
    [ "$mem" -ge 65536 ] || mem=65536
    mkdir -p "$dir/state" "$dir/spool"
    if [ "${GPU_GRES:-1}" = 1 ]; then
        gres_line="GresTypes=gpu"
        printf 'NodeName=%s Name=gpu File=/dev/null\nNodeName=%s Name=gpu File=/dev/zero\n' "$host" "$host" > "$dir/gres.conf"
    else
        : > "$dir/gres.conf"
    fi
    cat > "$dir/slurm.conf" <<EOF
ClusterName=stylegan-ci
SlurmctldHost=$host
SlurmctldPort=${SLURMCTLD_PORT:-6817}
SlurmdPort=${SLURMD_PORT:-6818}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MinJobAge=3600
ReturnToService=2
SlurmdParameters=config_overrides
SchedulerType=sched/backfill
$gres_line
NodeName=$host CPUs=$cpus RealMemory=$mem $( [ -n "$gres_line" ] && echo "Gres=gpu:2" ) State=UNKNOWN
PartitionName=ci Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
}

start_munge() {
    local dir=$1
    if [ -S /run/munge/munge.socket.2 ] && munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; then
        echo "munged already running"
        return
    fi
    mkdir -p /run/munge /var/log/munge /var/lib/munge
    chown munge:munge /run/munge /var/log/munge /var/lib/munge
    chmod 0755 /run/munge
    if [ ! -s /etc/munge/munge.key ]; then
        mungekey --create --keyfile /etc/munge/munge.key
        chown munge:munge /etc/munge/munge.key
        chmod 0400 /etc/munge/munge.key
    fi
    runuser -u munge -- munged --pid-file=/run/munge/stylegan-ci.pid
    cp /run/munge/stylegan-ci.pid "$dir/munged.pid"   # ours to stop at `down`
    for _ in $(seq 50); do
        munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1 && return
        sleep 0.2
    done
    die "munged did not come up"
}

up() {
    local dir=$1
    need_root
    for b in slurmctld slurmd sbatch munged; do
        command -v "$b" >/dev/null || die "$b not installed (run: $0 install)"
    done
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    if [ -e /etc/slurm/slurm.conf ] && [ "$(readlink /etc/slurm/slurm.conf)" != "$dir/slurm.conf" ]; then
        die "/etc/slurm/slurm.conf exists: this machine already has a SLURM configuration (not replacing it)"
    fi
    write_conf "$dir"
    export SLURM_CONF=$dir/slurm.conf
    mkdir -p /etc/slurm
    ln -sfn "$dir/slurm.conf" /etc/slurm/slurm.conf
    start_munge "$dir"
    slurmctld -f "$SLURM_CONF" -i      # -i: ignore any old state
    for _ in $(seq 100); do scontrol ping >/dev/null 2>&1 && break; sleep 0.2; done
    scontrol ping >/dev/null 2>&1 || { tail -20 "$dir/slurmctld.log" >&2; die "slurmctld did not answer"; }
    slurmd -f "$SLURM_CONF"
    for _ in $(seq 150); do
        [ -n "$(sinfo -h -t idle -o %n 2>/dev/null)" ] && break
        sleep 0.2
    done
    if [ -z "$(sinfo -h -t idle -o %n 2>/dev/null)" ]; then
        tail -20 "$dir/slurmd.log" >&2
        die "node did not register as idle"
    fi
    echo "SLURM cluster up: $(sinfo -h -o '%P %D %t %c cpus %m MB %G')"
    echo "export SLURM_CONF=$SLURM_CONF"
}

stop_pid() {
    local pidfile=$1 pid
    [ -s "$pidfile" ] || return 0
    pid=$(cat "$pidfile")
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
        kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$pidfile"
}

down() {
    local dir=$1
    [ -f "$dir/slurm.conf" ] || { echo "no cluster in $dir"; return 0; }
    export SLURM_CONF=$dir/slurm.conf
    if [ -s "$dir/slurmctld.pid" ] && kill -0 "$(cat "$dir/slurmctld.pid")" 2>/dev/null; then
        timeout -s KILL 10 scancel --full --quiet --user=root 2>/dev/null || true
        for _ in $(seq 50); do   # let slurmd end the jobs' processes before it stops
            [ -z "$(timeout -s KILL 5 squeue -h -t RUNNING,COMPLETING -o %i 2>/dev/null)" ] && break
            sleep 0.2
        done
    fi
    stop_pid "$dir/slurmd.pid"
    stop_pid "$dir/slurmctld.pid"
    stop_pid "$dir/munged.pid"
    if [ "$(readlink /etc/slurm/slurm.conf 2>/dev/null)" = "$dir/slurm.conf" ]; then
        rm -f /etc/slurm/slurm.conf
    fi
    echo "SLURM cluster in $dir stopped"
}

case "${1:-}" in
    install) install_packages ;;
    up) [ -n "${2:-}" ] || die "usage: $0 up DIR"; up "$2" ;;
    down) [ -n "${2:-}" ] || die "usage: $0 down DIR"; down "$2" ;;
    env) [ -n "${2:-}" ] || die "usage: $0 env DIR"; echo "export SLURM_CONF=$(cd "$2" && pwd)/slurm.conf" ;;
    *) die "usage: $0 install | up DIR | down DIR | env DIR" ;;
esac
