#!/usr/bin/env python
"""Write a tiny randomly initialised StyleGAN2 generator (rosinality format) for offline runs.

Its outputs are not a trained model's: every figure made with it is labelled a stand-in.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stylegan_inversion.cli import run, setup_logging  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--resolution", type=int, required=True, help="output size (power of two >= 8)")
    ap.add_argument("--style-dim", type=int, default=64, help="latent (z and w) size")
    ap.add_argument("--n-mlp", type=int, default=2, help="mapping network depth")
    ap.add_argument("--channels", required=True, help="channel table, e.g. 4:64,8:64,16:32,32:16")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, required=True, help="checkpoint to write (.pt)")
    args = ap.parse_args()
    setup_logging()
    from stylegan_inversion.weights import make_stand_in, parse_channels

    make_stand_in(args.out, args.resolution, args.style_dim, args.n_mlp, parse_channels(args.channels), args.seed)
    print(f"wrote stand-in generator {args.out} ({args.resolution}px, seed {args.seed})")
    return 0


if __name__ == "__main__":
    run(main)
