#!/usr/bin/env python
"""Fetch network weights (checksum-verified, atomic) and convert NVIDIA pickles to the rosinality format."""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stylegan_inversion.cli import run, setup_logging  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--url", required=True, help="where the file is published")
    ap.add_argument("--sha256", default=None, help="expected SHA-256 of the downloaded file")
    ap.add_argument("--out", type=Path, required=True, help="file to write (the converted .pt when --convert is given)")
    ap.add_argument("--convert", choices=["nvidia_pkl"], default=None, help="convert the download to a rosinality checkpoint")
    ap.add_argument("--name", default=None, help="asset name for messages")
    args = ap.parse_args()
    setup_logging()
    from stylegan_inversion.weights import ensure_weights

    entry = {"kind": "url", "url": args.url, "sha256": args.sha256, "convert": args.convert}
    out = ensure_weights(args.name or args.out.stem, entry, args.out)
    print(f"weights ready: {out}")
    return 0


if __name__ == "__main__":
    run(main)
