#!/usr/bin/env python
"""Degrade images with one seeded operation at one level; writes DIR/<stem>.png and DIR/degrade.csv.

Operations: jpeg (quality), blur (sigma px), downscale (factor), noise (sigma on 0-255),
misalign (magnitude), realworld (level in [0, 1]). The same seed gives byte-identical output.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stylegan_inversion.cli import run, setup_logging  # noqa: E402


def main() -> int:
    from stylegan_inversion.study import DEGRADE_OPS

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--op", choices=DEGRADE_OPS, required=True)
    ap.add_argument("--level", type=float, required=True)
    ap.add_argument("--seed", type=int, default=0, help="base seed; each image's seed derives from it and the image name")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("images", nargs="+", type=Path)
    args = ap.parse_args()
    setup_logging()
    from stylegan_inversion.stages import degrade_files

    rows = degrade_files(args.images, args.op, args.level, args.seed, args.out)
    ok = sum(r["status"] == "ok" for r in rows)
    print(f"{args.op} {args.level:g}: {ok}/{len(rows)} images written to {args.out}")
    return 0


if __name__ == "__main__":
    run(main)
