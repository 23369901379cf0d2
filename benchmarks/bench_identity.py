#!/usr/bin/env python
"""Time the identity network's ``embed`` (forward, and forward + backward as in the projector's
id loss) for the stand-in and a randomly initialised full IR-SE50, and dlib's identity distance.

    python benchmarks/bench_identity.py [--size 256] [--batch 1] [--repeats 5] [--device cpu]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time

import torch
from PIL import Image

from stylegan_inversion.device import resolve_device
from stylegan_inversion.identity import IRSE, IdentityModel, IRSEConfig, dlib_identity_distance, make_stand_in_identity

log = logging.getLogger("bench_identity")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_embed(model: IdentityModel, size: int, batch: int, repeats: int, backward: bool) -> float:
    """Median seconds of one embed (plus backward to the input when asked), after one warm-up."""
    device = model.device
    x = torch.rand(batch, 3, size, size, device=device) * 2 - 1
    times = []
    for i in range(repeats + 1):
        xi = x.clone().requires_grad_(backward)
        _sync(device)
        t0 = time.perf_counter()
        if backward:
            model.embed(xi).sum().backward()
        else:
            with torch.no_grad():
                model.embed(xi)
        _sync(device)
        if i:
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def time_dlib(size: int, repeats: int) -> float:
    """Median seconds of dlib_identity_distance for two size x size face images."""
    from stylegan_inversion.generate import bundled_photo_path

    img = Image.open(bundled_photo_path("astronaut")).convert("RGB").crop((137, 19, 312, 194))
    a = img.resize((size, size), Image.Resampling.LANCZOS)
    b = a.rotate(2, resample=Image.Resampling.BILINEAR)
    dlib_identity_distance(a, b)  # loads the models
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        dlib_identity_distance(a, b)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--device", default="cpu")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    device = resolve_device(args.device)
    torch.manual_seed(0)
    models = {
        "stand-in (width 16)": make_stand_in_identity(0, device=device),
        "IR-SE50 (random init)": IdentityModel(IRSE(IRSEConfig.irse50()), stand_in=False, description="IR-SE50").to(device),
    }
    log.info("device %s, %d threads, input %dx%d, batch %d", device, torch.get_num_threads(), args.size, args.size, args.batch)
    for name, model in models.items():
        fwd = time_embed(model, args.size, args.batch, args.repeats, backward=False)
        both = time_embed(model, args.size, args.batch, args.repeats, backward=True)
        log.info("%-24s embed %7.1f ms   embed+backward %7.1f ms", name, fwd * 1e3, both * 1e3)
    log.info("%-24s %7.1f ms per pair at %d px (CPU)", "dlib distance", time_dlib(args.size, args.repeats) * 1e3, args.size)


if __name__ == "__main__":
    main()
