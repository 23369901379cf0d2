#!/usr/bin/env python
"""Time one projection step through a config-f StyleGAN2 generator, with peak memory and a FLOP-bound ratio.

    python benchmarks/bench_generator.py [--resolutions 256,1024] [--batches 1,4] [--steps 3]
                                         [--device auto] [--baseline] [--fast] [--no-malloc-tuning] [--json OUT]

A projection step: W+ latents [N, num_ws, 512] and noise maps requiring grad, synthesis,
an MSE loss, backward and an Adam step, with the generator's weights frozen (random
weights: speed does not depend on their values). Each configuration runs in a fresh
subprocess so its peak memory (CPU: peak RSS of the process; CUDA: peak allocated) is its
own. FLOPs of the step are counted with torch.utils.flop_counter; the FLOP bound is those
FLOPs at the float32 matmul rate measured in the same run, and "x bound" is the measured
time over that bound. ``--baseline`` also times the straightforward formulation (per-sample
modulated weights in a grouped convolution, FIR as a single-channel convolution with
zero insertion, as the reference implementation's CPU path does) side by side, its steps
alternating with ours in one process so that both see the same machine load. On the CPU
both run with glibc's allocator tuned as scripts/project.py does (``tune_cpu_allocator``)
unless ``--no-malloc-tuning``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stylegan_inversion.device import resolve_device  # noqa: E402
from stylegan_inversion.stylegan2 import (  # noqa: E402
    Generator,
    GeneratorConfig,
    RuntimeOptions,
    make_random_generator,
    tune_cpu_allocator,
)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_gflops(device: torch.device, n: int = 2048, repeats: int = 5) -> float:
    """Best float32 matmul rate (GFLOP/s) on the device: the FLOP bound's yardstick."""
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    a @ b
    best = math.inf
    for _ in range(repeats):
        _sync(device)
        t0 = time.perf_counter()
        a @ b
        _sync(device)
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e9


# ------------------------------------------------------------ straightforward baseline


def _fir_single_channel(x: torch.Tensor, kernel: torch.Tensor, up: int, pad: tuple[int, int]) -> torch.Tensor:
    """FIR as the reference CPU path does it: one-channel images, zero insertion by padding, 2-D conv."""
    n, c, h, w = x.shape
    x = x.reshape(n * c, 1, h, 1, w, 1)
    x = F.pad(x, [0, up - 1, 0, 0, 0, up - 1]).reshape(n * c, 1, h * up, w * up)
    x = F.pad(x, [pad[0], pad[1], pad[0], pad[1]])
    x = F.conv2d(x, kernel.flip([0, 1])[None, None])
    return x.reshape(n, c, *x.shape[-2:])


def _modconv_grouped(conv, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
    """Modulated conv with per-sample weights folded into a grouped convolution."""
    n, cin, h, w = x.shape
    k, cout = conv.kernel_size, conv.out_channel
    wt = conv.scale * conv.weight * conv.modulation(style).view(n, 1, cin, 1, 1)
    if conv.demodulate:
        wt = wt * torch.rsqrt(wt.pow(2).sum([2, 3, 4]) + 1e-8).view(n, cout, 1, 1, 1)
    x = x.reshape(1, n * cin, h, w)
    if conv.upsample:
        wt = wt.transpose(1, 2).reshape(n * cin, cout, k, k)
        out = F.conv_transpose2d(x, wt, stride=2, groups=n)
        return _fir_single_channel(out.reshape(n, cout, *out.shape[-2:]), conv.blur.kernel, 1, conv.blur.pad)
    out = F.conv2d(x, wt.reshape(n * cout, cin, k, k), padding=conv.padding, groups=n)
    return out.reshape(n, cout, h, w)


def baseline_synthesis(G: Generator, ws: torch.Tensor, noise: list[torch.Tensor]) -> torch.Tensor:
    """The same network in the straightforward formulation (for side-by-side timing only)."""

    def styled(layer, x, style, nz):
        out = _modconv_grouped(layer.conv, x, style) + layer.noise.weight * nz
        return F.leaky_relu(out + layer.activate.bias.view(1, -1, 1, 1), 0.2) * math.sqrt(2)

    def to_rgb(layer, x, style, skip):
        out = _modconv_grouped(layer.conv, x, style) + layer.bias
        return out if skip is None else out + _fir_single_channel(skip, layer.upsample.kernel, 2, layer.upsample.pad)

    x = G.input.input.repeat(ws.shape[0], 1, 1, 1)
    x = styled(G.conv1, x, ws[:, 0], noise[0])
    skip = to_rgb(G.to_rgb1, x, ws[:, 1], None)
    i = 1
    for k, rgb in enumerate(G.to_rgbs):
        x = styled(G.convs[2 * k], x, ws[:, i], noise[2 * k + 1])
        x = styled(G.convs[2 * k + 1], x, ws[:, i + 1], noise[2 * k + 2])
        skip = to_rgb(rgb, x, ws[:, i + 2], skip)
        i += 2
    return skip


# ----------------------------------------------------------------------- one config


def make_step(G: Generator, batch: int, impl: str):
    """A closure running one projection step (synthesis, MSE, backward, Adam) at this batch size."""
    device = G.device
    synth = G.synthesis if impl == "ours" else (lambda w, noise: baseline_synthesis(G, w, noise))
    ws = G.mean_w().detach().view(1, 1, -1).repeat(batch, G.num_ws, 1).requires_grad_(True)
    noise = [n.requires_grad_(True) for n in G.make_noise(batch, seed=1, device=device)]
    target = torch.rand(batch, 3, G.resolution, G.resolution, device=device) * 2 - 1
    opt = torch.optim.Adam([ws, *noise], lr=0.01)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        F.mse_loss(synth(ws, noise=noise), target).backward()
        opt.step()

    return step


def count_flops(G: Generator, batch: int, impl: str) -> int:
    """FLOPs of one step. The baseline is counted at batch 1 and scaled: torch's counter ignores
    ``groups`` in the weight-gradient formula, which overcounts its grouped convolutions."""
    from torch.utils.flop_counter import FlopCounterMode

    n = 1 if impl == "baseline" else batch
    counter = FlopCounterMode(display=False)
    with counter:
        make_step(G, n, impl)()
    return counter.get_total_flops() * (batch // n)


def time_steps(step, steps: int, device: torch.device) -> list[float]:
    """Seconds of each of ``steps`` calls."""
    times = []
    for _ in range(steps):
        _sync(device)
        t0 = time.perf_counter()
        step()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return times


def run_one(resolution: int, batch: int, steps: int, device: torch.device, impl: str, fast: bool, malloc_tuning: bool) -> dict:
    """Time one configuration in this process: ``impl`` 'ours', or 'pair' (ours and the baseline
    alternating step by step, so both see the same machine load)."""
    tuned = tune_cpu_allocator() if malloc_tuning and device.type == "cpu" else False
    torch.manual_seed(0)
    G = make_random_generator(GeneratorConfig.standard(resolution, 2), seed=0).to(device).freeze()
    G.mean_w()  # the 10k-sample average w: once, outside the counted and timed steps
    if fast:
        G.configure_runtime(RuntimeOptions.fast())
    impls = ["ours", "baseline"] if impl == "pair" else [impl]
    flops = {name: count_flops(G, batch, name) for name in impls}  # also the warm-up step
    runs = {name: make_step(G, batch, name) for name in impls}
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times: dict[str, list[float]] = {name: [] for name in impls}
    for _ in range(steps):
        for name in impls:
            times[name] += time_steps(runs[name], 1, device)
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device)
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB
    return {name: {"resolution": resolution, "batch": batch, "impl": name, "device": str(device), "threads": torch.get_num_threads(),
                   "median_s": statistics.median(times[name]), "min_s": min(times[name]), "times_s": times[name],
                   "flops": flops[name], "peak_bytes": peak if impl != "pair" else None, "malloc_tuned": tuned}
            for name in impls}


def run_child(resolution: int, batch: int, args: argparse.Namespace, impl: str) -> dict:
    """run_one in a fresh interpreter (so peak memory is this configuration's)."""
    cmd = [sys.executable, __file__, "--one", f"{resolution},{batch},{impl}", "--steps", str(args.steps), "--device", args.device]
    if args.fast:
        cmd.append("--fast")
    if args.no_malloc_tuning:
        cmd.append("--no-malloc-tuning")
    r = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"}, check=False)
    if r.returncode != 0:
        raise SystemExit(f"benchmark child {resolution}px batch {batch} ({impl}) failed:\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--resolutions", default="256,1024", help="comma-separated config-f resolutions")
    ap.add_argument("--batches", default="1,4", help="comma-separated batch sizes")
    ap.add_argument("--steps", type=int, default=3, help="timed steps per configuration (after one warm-up)")
    ap.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 ...")
    ap.add_argument("--baseline", action="store_true", help="also time the straightforward formulation at the smallest resolution")
    ap.add_argument("--fast", action="store_true", help="enable the optional fast paths (TF32, channels_last, torch.compile)")
    ap.add_argument("--no-malloc-tuning", action="store_true", help="leave glibc's allocator at its defaults (CPU)")
    ap.add_argument("--json", type=Path, default=None, help="also write the results here (atomically)")
    ap.add_argument("--one", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    device = resolve_device(args.device)
    if args.one:
        res, batch, impl = args.one.split(",")
        print(json.dumps(run_one(int(res), int(batch), args.steps, device, impl, args.fast, not args.no_malloc_tuning)))
        return 0

    gflops = matmul_gflops(device)
    resolutions = [int(r) for r in args.resolutions.split(",")]
    batches = [int(b) for b in args.batches.split(",")]
    print(f"device {device}, {torch.get_num_threads()} threads, torch {torch.__version__}; float32 matmul {gflops:.0f} GFLOP/s; "
          f"malloc tuning {'off' if args.no_malloc_tuning or device.type != 'cpu' else 'on'}")
    print(f"{'res':>5} {'batch':>5} {'impl':>8} {'ms/step':>9} {'min ms':>8} {'GFLOP':>7} {'bound ms':>9} {'x bound':>7} {'peak MiB':>9}")
    rows = []

    def show(row: dict) -> None:
        row["bound_s"] = row["flops"] / (gflops * 1e9)
        peak = f"{row['peak_bytes'] / 2**20:>9.0f}" if row["peak_bytes"] else f"{'-':>9}"
        print(f"{row['resolution']:>5} {row['batch']:>5} {row['impl']:>8} {row['median_s'] * 1e3:>9.0f} {row['min_s'] * 1e3:>8.0f} "
              f"{row['flops'] / 1e9:>7.0f} {row['bound_s'] * 1e3:>9.0f} {row['median_s'] / row['bound_s']:>7.2f} {peak}", flush=True)
        rows.append(row)

    for res in resolutions:
        for batch in batches:
            show(run_child(res, batch, args, "ours")["ours"])
    if args.baseline:
        res = min(resolutions)
        print(f"side by side at {res} px (steps alternate in one process; peak memory not separable):")
        for batch in batches:
            pair = run_child(res, batch, args, "pair")
            show(pair["ours"])
            show(pair["baseline"])
            o, b = pair["ours"], pair["baseline"]
            print(f"{'':>20} ours / baseline: {o['median_s'] / b['median_s']:.2f} (median), {o['min_s'] / b['min_s']:.2f} (min)", flush=True)
    if args.json:
        from stylegan_inversion.io import write_json_atomic

        write_json_atomic(args.json, {"matmul_gflops": gflops, "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
