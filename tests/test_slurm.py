"""The SLURM profile against a real one-node SLURM cluster, not a mock.

tests/slurm/cluster.sh starts slurmctld, slurmd and munged on this machine; the study DAG (a
small copy of the offline demo) runs through the SLURM executor plugin with profiles/slurm; the
checks read SLURM's own records (scontrol, the daemons' logs) to prove every stage ran as a SLURM
job, and a deliberately failing job must be reported as failed.

Needs root, the Debian packages (`tests/slurm/cluster.sh install`) and
snakemake-executor-plugin-slurm. Without them these tests are skipped with the reason; with
STYLEGAN_REQUIRE_SLURM=1 (set by CI) they fail instead. Every command runs under `timeout -s KILL`.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from helpers import REPO, demo_config, textured_image

CLUSTER = REPO / "tests" / "slurm" / "cluster.sh"
PROFILE = REPO / "profiles" / "slurm"
WORKSTATION = REPO / "profiles" / "workstation"
REQUIRED = os.environ.get("STYLEGAN_REQUIRE_SLURM") == "1"
SUBMITTED = re.compile(r"has been submitted with SLURM jobid (\d+) \(log: (\S+)\)")

# What this CI cluster lacks compared with a production one, as a site profile stacked on
# profiles/slurm (the way the README tells sites to add their settings).
CI_SITE = {
    "slurm-status-command": "squeue",  # no slurmdbd: sacct knows no jobs (and the run would hang)
    "slurm-init-seconds-before-status-checks": 5,
    "slurm-no-account": True,  # no accounts without slurmdbd
    "slurm-keep-successful-logs": True,  # the checks read every job's SLURM log
}


def run(cmd, timeout, env=None, cwd=None) -> subprocess.CompletedProcess:
    """A command under a hard kill timeout (and Python's, in case `timeout` itself hangs)."""
    cmd = ["timeout", "-s", "KILL", str(timeout), *map(str, cmd)]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout + 30)


def unavailable(reason: str):
    if REQUIRED:
        pytest.fail(f"STYLEGAN_REQUIRE_SLURM=1 but {reason}")
    pytest.skip(f"SLURM cluster tests skipped: {reason}")


class Cluster:
    def __init__(self, folder: Path):
        self.folder = folder
        self.env = dict(os.environ, SLURM_CONF=str(folder / "slurm.conf"), PYTHONUNBUFFERED="1")

    def job(self, jobid: str) -> dict[str, str]:
        """`scontrol show job` as a dict (jobs stay known for an hour: MinJobAge)."""
        proc = run(["scontrol", "-o", "show", "job", jobid], 30, env=self.env)
        assert proc.returncode == 0, proc.stderr
        return dict(re.findall(r"(\w+)=(\S*)", proc.stdout))

    def daemon_log(self, name: str) -> str:
        return (self.folder / f"{name}.log").read_text(errors="replace")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A running one-node SLURM cluster, stopped at the end (even when a test fails)."""
    if os.geteuid() != 0:
        unavailable("they need root (the SLURM daemons run as root, started by hand)")
    missing = [b for b in ("slurmctld", "slurmd", "sbatch", "squeue", "scontrol", "munged") if not shutil.which(b)]
    if missing:
        unavailable(f"SLURM is not installed ({', '.join(missing)} missing); run `{CLUSTER.relative_to(REPO)} install` as root")
    if importlib.util.find_spec("snakemake_executor_plugin_slurm") is None:
        unavailable("snakemake-executor-plugin-slurm is not installed (pip install -r requirements.txt)")
    folder = Path(os.environ.get("STYLEGAN_SLURM_DIR") or tmp_path_factory.mktemp("slurm-cluster"))
    up = run([CLUSTER, "up", folder], 120)
    if up.returncode != 0:
        run([CLUSTER, "down", folder], 60)
        unavailable("the SLURM daemons did not start: " + (up.stdout[-2000:] + up.stderr[-3000:]).strip())
    try:
        yield Cluster(folder)
    finally:
        down = run([CLUSTER, "down", folder], 60)
        assert down.returncode == 0, down.stderr


def site_profile(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.yaml").write_text(yaml.safe_dump(CI_SITE))
    return folder


def snakemake(cluster, workdir, *args, snakefile=REPO / "Snakefile", timeout=600):
    """Snakemake through the SLURM profile (plus the CI site profile) with outputs in workdir."""
    cmd = [sys.executable, "-m", "snakemake", "-s", snakefile, "-d", workdir,
           "--profile", PROFILE, "--profile", site_profile(workdir / "ci-site"), *args]
    return run(cmd, timeout, env=cluster.env, cwd=workdir)


def submissions(text: str) -> list[tuple[str, Path]]:
    """(SLURM job id, SLURM log file) of every job Snakemake submitted."""
    return [(jobid, Path(log)) for jobid, log in SUBMITTED.findall(text)]


def small_study(workdir: Path) -> Path:
    """The offline demo cut down to one item per source (every stage and source kind kept)."""
    cfg = demo_config()
    cfg["sources"]["photos"]["photos"] = ["astronaut"]
    cfg["sources"]["clip"].update(frames=5, stride=5, max_frames=1)
    cfg["sources"]["samples"]["n"] = 1
    (workdir / "data" / "mine").mkdir(parents=True)
    textured_image(48).save(workdir / "data" / "mine" / "texture.png")  # a folder source (no face in it)
    cfg["sources"]["mine"] = {"kind": "folder", "path": "data/mine"}
    with_photos = [q for q in cfg["questions"].values() if "photos" in q.get("sources", [])]
    with_photos[0]["sources"].append("mine")  # one question is enough for the folder source
    for question in cfg["questions"].values():
        if "levels" in question:
            question["levels"] = question["levels"][:2]
    path = workdir / "study.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def rules_in_log(text: str) -> set[str]:
    return set(re.findall(r"^\s*(?:rule|checkpoint) (\w+):", text, flags=re.M))


# ---------------------------------------------------------------- profiles (no cluster needed)


def load_profile(folder: Path) -> dict:
    with open(folder / "config.yaml") as f:
        return yaml.safe_load(f)


@pytest.fixture(scope="module")
def workflow_rules(tmp_path_factory):
    wd = tmp_path_factory.mktemp("rules")
    proc = run([sys.executable, "-m", "snakemake", "-s", REPO / "Snakefile", "-d", wd, "--list-rules",
                "--configfile", REPO / "tests" / "demo.yaml"], 300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return set(proc.stdout.split())


@pytest.mark.parametrize("folder", [PROFILE, WORKSTATION], ids=["slurm", "workstation"])
def test_profiles_name_only_rules_of_the_workflow(folder, workflow_rules):
    profile = load_profile(folder)
    named = set(profile.get("set-resources", {})) | set(profile.get("set-threads", {})) | set(profile.get("groups", {}))
    assert named, "the profile sets no per-rule resources"
    assert named <= workflow_rules, f"{folder.name}: rules that do not exist (renamed?): {sorted(named - workflow_rules)}"


def test_slurm_profile_gives_projection_a_gpu_and_cpu_stages_none():
    profile = load_profile(PROFILE)
    assert profile["executor"] == "slurm"
    assert {"mem_mb", "runtime"} <= set(profile["default-resources"])  # every rule, also new ones
    gpu_rules = {r for r, res in profile["set-resources"].items() if res.get("gpu")}
    assert gpu_rules == {"project_image"}
    assert profile["set-resources"]["project_image"]["mem_mb"] > profile["default-resources"]["mem_mb"]
    # one GPU per grouped job: the projections of a group take turns on it
    assert profile["resources"]["gpu"] == 1 and profile["set-resource-scopes"]["gpu"] == "local"
    groups = profile["groups"]
    assert groups["project_image"] == groups["align_face"] == groups["degrade_aligned"] == groups["ingest_frame"]
    for unsafe in ("group-components",):  # see the profile: Snakemake 9 mishandles it with checkpoints
        assert unsafe not in profile


# ---------------------------------------------------------------- a real SLURM cluster


@pytest.mark.slurm
@pytest.mark.slow
def test_demo_dag_runs_through_slurm(cluster, tmp_path):
    study = small_study(tmp_path)
    # the README's two steps: video frames (a checkpoint) first, then the study
    frames = snakemake(cluster, tmp_path, "--until", "extract_frames", "--configfile", study, timeout=240)
    assert frames.returncode == 0, f"{frames.stdout[-3000:]}\n{frames.stderr[-6000:]}"
    study_run = snakemake(cluster, tmp_path, "results/figures", "--configfile", study, timeout=720)
    text = frames.stderr + study_run.stderr
    assert study_run.returncode == 0, f"{study_run.stdout[-3000:]}\n{study_run.stderr[-8000:]}"

    figures = tmp_path / "results" / "figures"
    assert (figures / "summary.csv").is_file() and list(figures.glob("*_montage.png"))

    jobs = submissions(text)
    assert jobs, text[-4000:]
    ctld, slurmd = cluster.daemon_log("slurmctld"), cluster.daemon_log("slurmd")
    ran_under_slurm: set[str] = set()
    for jobid, log in jobs:
        # SLURM's record of the job: completed, in this test's folder, writing the log Snakemake named
        record = cluster.job(jobid)
        assert record["JobState"] == "COMPLETED" and record["ExitCode"] == "0:0", record
        assert Path(record["WorkDir"]) == tmp_path and Path(record["StdOut"]) == log, record
        assert log.name == f"{jobid}.log" and log.is_file()
        # the job's commands ran as a step of that SLURM job on the node, and it exited 0
        assert f"launch task StepId={jobid}.0 " in slurmd
        assert f"_job_complete: JobId={jobid} WEXITSTATUS 0" in ctld
        ran_under_slurm |= rules_in_log(log.read_text())

    # the stages' own logs name the SLURM job they ran in
    job_ids = {j for j, _ in jobs}
    stage_logs = list((tmp_path / "results" / "logs" / "project").rglob("*.log"))
    assert stage_logs
    for log in stage_logs:
        m = re.search(r"SLURM job (\d+)", log.read_text())
        assert m and m.group(1) in job_ids, log

    # every stage of the DAG ran inside a SLURM job (nothing ran on the submit host)
    planned = rules_in_log(study_run.stdout + study_run.stderr) | rules_in_log(frames.stdout + frames.stderr)
    stages = {"make_stand_in_weights", "make_demo_clip", "extract_frames", "ingest_frame", "ingest_image",
              "copy_bundled_photo", "generate_sample", "degrade_raw", "degrade_aligned", "align_face",
              "project_image", "compute_metrics", "collect_metrics", "plot_figures"}
    assert stages <= planned, sorted(stages - planned)
    assert planned <= ran_under_slurm, f"ran outside SLURM: {sorted(planned - ran_under_slurm)}"

    # grouping: an image's CPU steps and its projections share one SLURM job, which holds one GPU
    n_snakemake_jobs = int(re.findall(r"(\d+) of \1 steps \(100%\) done", study_run.stderr)[-1])
    study_jobs = submissions(study_run.stderr)
    assert len(study_jobs) < n_snakemake_jobs / 2, (len(study_jobs), n_snakemake_jobs)
    image_jobs = [j for j, log in study_jobs if {"align_face", "project_image"} <= rules_in_log(log.read_text())]
    assert image_jobs
    for jobid in image_jobs:
        assert "gpu:1" in cluster.job(jobid).get("TresPerJob", ""), cluster.job(jobid)
    metric_jobs = [j for j, log in study_jobs if rules_in_log(log.read_text()) == {"compute_metrics"}]
    assert metric_jobs and all("gpu" not in cluster.job(j).get("TresPerJob", "") for j in metric_jobs)


FAILING_SNAKEFILE = """
rule all:
    input:
        "ok.txt",
        "never.txt",


rule record_job_id:
    output:
        "ok.txt",
    shell:
        "echo SLURM_JOB_ID=$SLURM_JOB_ID > {output}"


rule fail_deliberately:
    output:
        "never.txt",
    log:
        "logs/fail_deliberately.log",
    shell:
        "echo SLURM_JOB_ID=$SLURM_JOB_ID > {log}; echo deliberate failure >> {log}; exit 1"
"""


@pytest.mark.slurm
def test_failing_job_is_reported_as_failed(cluster, tmp_path):
    snakefile = tmp_path / "Snakefile"
    snakefile.write_text(FAILING_SNAKEFILE)
    proc = snakemake(cluster, tmp_path, snakefile=snakefile, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out[-4000:]
    assert "Error in rule fail_deliberately" in out
    by_rule = {rule: [j for j, log in submissions(out) if f"rule_{rule}" in str(log)]
               for rule in ("record_job_id", "fail_deliberately")}
    assert by_rule["record_job_id"] and by_rule["fail_deliberately"], out[-4000:]

    # the failure is SLURM's: every attempt (the profile retries once) is FAILED with exit code 1
    assert len(by_rule["fail_deliberately"]) == 2
    for jobid in by_rule["fail_deliberately"]:
        record = cluster.job(jobid)
        assert record["JobState"] == "FAILED" and record["ExitCode"] == "1:0", record
    log = (tmp_path / "logs" / "fail_deliberately.log").read_text()
    assert re.search(r"SLURM_JOB_ID=(\d+)", log).group(1) in by_rule["fail_deliberately"]

    # keep-going: the independent job still ran, inside the SLURM job Snakemake reported for it
    (ok_job,) = by_rule["record_job_id"]
    assert (tmp_path / "ok.txt").read_text().strip() == f"SLURM_JOB_ID={ok_job}"
    assert cluster.job(ok_job)["JobState"] == "COMPLETED"
