"""Align faces: FFHQ alignment (or centre crop / resize), head pose, and DIR/align.csv with one row per input.

Example: python scripts/align.py --size 512 --out results/aligned photos/*.jpg

Exit status: 0 when every input was processed or recorded (bad inputs get a status and a
reason in align.csv), 2 for usage errors, 1 when the output folder cannot be written.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stylegan_inversion.align import MODES, align_files  # noqa: E402
from stylegan_inversion.cli import run, setup_logging  # noqa: E402
from stylegan_inversion.io import DEFAULT_MAX_PIXELS  # noqa: E402


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line arguments."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("images", nargs="+", help="input image files")
    p.add_argument("--out", required=True, type=Path, help="output folder (created if missing)")
    p.add_argument("--size", type=positive_int, default=512, help="output side in pixels (default 512)")
    p.add_argument("--transform-size", type=positive_int, default=None,
                   help="FFHQ transform side before the final resize (default: --size; NVIDIA's FFHQ used 4096 for 1024)")  # fmt: skip
    p.add_argument("--mode", choices=MODES, default="ffhq",
                   help="ffhq: align each face; center: centred square crop; resize: input already aligned")  # fmt: skip
    p.add_argument("--all-faces", action="store_true", help="write every face as <stem>_<k>.png (ffhq mode)")
    p.add_argument("--max-pixels", type=positive_int, default=DEFAULT_MAX_PIXELS,
                   help=f"refuse larger images as too_large (default {DEFAULT_MAX_PIXELS})")  # fmt: skip
    p.add_argument("-v", "--verbose", action="store_true", help="log progress (and tracebacks of unexpected failures)")
    args = p.parse_args(argv)
    if args.transform_size is not None and args.transform_size < args.size:
        p.error(f"--transform-size ({args.transform_size}) must be at least --size ({args.size})")
    return args


def check_writable(out: Path) -> str | None:
    """None if files can be created in out (creating it if needed), else the reason."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".write-test-"):
            pass
    except OSError as e:
        return e.strerror or str(e)
    return None


def main(argv: list[str] | None = None) -> int:
    """Run the align stage; print one summary line."""
    args = parse_args(argv)
    setup_logging(args.verbose)
    problem = check_writable(args.out)
    if problem:
        print(f"align: cannot write to output folder {args.out}: {problem}", file=sys.stderr)
        return 1
    rows = align_files(
        args.images, args.out, mode=args.mode, size=args.size, transform_size=args.transform_size,
        all_faces=args.all_faces, max_pixels=args.max_pixels,
    )  # fmt: skip
    counts = Counter(r["status"] for r in rows)
    summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    print(f"align: {len(args.images)} inputs, {len(rows)} rows ({summary}) -> {args.out / 'align.csv'}")
    return 0


if __name__ == "__main__":
    run(main)
