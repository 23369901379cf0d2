#!/usr/bin/env python
"""Convert a StyleGAN2 generator checkpoint to the rosinality format, once, so the workflow can cache it.

  python scripts/convert_weights.py IN.pkl OUT.pt

IN: an NVIDIA stylegan2-ada-pytorch / stylegan3 pickle of a StyleGAN2 generator (read
without executing code from it; the stored average w is kept) or any checkpoint
load_generator reads. OUT: a rosinality-format checkpoint (g_ema + latent_avg), written
atomically. Exit status 1 with a one-line error for unreadable, unsafe or non-StyleGAN2 files.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stylegan_inversion.cli import run, setup_logging  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("src", type=Path, help="checkpoint to convert (NVIDIA .pkl or rosinality .pt)")
    ap.add_argument("out", type=Path, help="rosinality-format .pt to write")
    ap.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    args = ap.parse_args()
    setup_logging(args.verbose)
    from stylegan_inversion.stylegan2 import convert_checkpoint

    G = convert_checkpoint(args.src, args.out)
    print(f"wrote {args.out}: {G.resolution}px, {G.num_ws} ws, w_dim {G.w_dim}, average w {'kept' if G.has_w_avg else 'absent'}")
    return 0


if __name__ == "__main__":
    run(main)
