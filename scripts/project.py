#!/usr/bin/env python
"""Project (invert) target images into a StyleGAN2 generator; writes per image <stem>.png (the
inversion), <stem>.npz (ws and noise maps), <stem>_trace.csv (loss per step) and DIR/project.csv."""

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stylegan_inversion.cli import run, setup_logging  # noqa: E402


def main() -> int:
    from stylegan_inversion.projection_settings import LOSS_TERMS, ProjectorConfig

    d = ProjectorConfig()
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--weights", type=Path, required=True, help="generator checkpoint (.pt rosinality format, or NVIDIA .pkl)")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--loss", choices=list(LOSS_TERMS), default=d.loss)
    ap.add_argument("--latent", choices=["w", "wplus"], default=d.latent)
    ap.add_argument("--steps", type=int, default=d.steps)
    ap.add_argument("--params", default="{}", help="JSON of further ProjectorConfig fields (lr, noise_regularize, lpips_size, ...)")
    ap.add_argument("--lpips-net", default="vgg", choices=["vgg", "alex", "squeeze"])
    ap.add_argument("--lpips-backbone", default="pretrained", choices=["pretrained", "random"],
                    help="random: offline stand-in (numbers are not LPIPS)")
    ap.add_argument("--identity", type=Path, default=None, help="identity network (ArcFace IR-SE50 or stand-in) for the id losses")
    ap.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda, cuda:N")
    ap.add_argument("--batch-size", type=int, default=1)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: torch's choice)")
    ap.add_argument("-v", "--verbose", action="store_true")
    ap.add_argument("images", nargs="+", type=Path)
    args = ap.parse_args()
    setup_logging(args.verbose)
    from stylegan_inversion.stages import project_files

    if args.threads:
        os.environ["OMP_NUM_THREADS"] = str(args.threads)  # read by torch when (and if) it is imported
        os.environ["MKL_NUM_THREADS"] = str(args.threads)

    extra = json.loads(args.params)
    unknown = set(extra) - set(d.to_dict())
    if unknown:
        ap.error(f"--params: unknown projector settings {sorted(unknown)}")
    fields = d.to_dict() | extra | {"loss": args.loss, "latent": args.latent, "steps": args.steps}
    if args.seed is not None:
        fields["seed"] = args.seed
    try:
        cfg = ProjectorConfig(**fields)
    except (TypeError, ValueError) as e:
        ap.error(f"--params: {e}")
    rows = project_files(args.images, args.out, args.weights, cfg, args.lpips_net, args.lpips_backbone, args.device, args.batch_size,
                         identity=args.identity, tune_cpu_memory=True)
    ok = sum(r["status"] == "ok" for r in rows)
    print(f"projected {ok}/{len(rows)} images into {args.weights} ({cfg.loss}, {cfg.latent}, {cfg.steps} steps) -> {args.out}")
    return 0


if __name__ == "__main__":
    run(main)
