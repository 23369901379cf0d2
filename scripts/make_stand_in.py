#!/usr/bin/env python
"""Write a tiny randomly initialised stand-in network for offline runs, in the real file format.

  generator: a StyleGAN2 generator (rosinality checkpoint), loaded by the same loader as real weights
  identity:  a small IR-SE identity network, loaded by the same loader as ArcFace IR-SE50
Its outputs are not a trained model's: every figure made with it is labelled a stand-in.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stylegan_inversion.cli import run, setup_logging  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="role", required=True)
    g = sub.add_parser("generator", help="tiny random StyleGAN2 generator")
    g.add_argument("--resolution", type=int, required=True, help="output size (power of two >= 8)")
    g.add_argument("--style-dim", type=int, default=64, help="latent (z and w) size")
    g.add_argument("--n-mlp", type=int, default=2, help="mapping network depth")
    g.add_argument("--channels", required=True, help="channel table, e.g. 4:64,8:64,16:32,32:16")
    i = sub.add_parser("identity", help="small random IR-SE identity network")
    i.add_argument("--width", type=int, default=16, help="base channel width")
    for p in (g, i):
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--out", type=Path, required=True, help="file to write (.pt)")
    args = ap.parse_args()
    setup_logging()
    if args.role == "generator":
        from stylegan_inversion.weights import make_stand_in, parse_channels

        make_stand_in(args.out, args.resolution, args.style_dim, args.n_mlp, parse_channels(args.channels), args.seed)
        print(f"wrote stand-in generator {args.out} ({args.resolution}px, seed {args.seed})")
    else:
        from stylegan_inversion.identity import write_stand_in_identity

        write_stand_in_identity(args.out, seed=args.seed, width=args.width)
        print(f"wrote stand-in identity network {args.out} (width {args.width}, seed {args.seed})")
    return 0


if __name__ == "__main__":
    run(main)
