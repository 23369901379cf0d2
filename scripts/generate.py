#!/usr/bin/env python
"""Make the study's inputs: frames from a video, a demo clip, bundled photos, user images, generator samples.

Subcommands:
  frames VIDEO (--stride N | --fps F) [--max-frames M] --out DIR   every N-th frame (or F per second) as f<index>.png
  demo-clip --photo NAME --out FILE.mp4                   a synthetic head-motion clip from a bundled photo
  bundled NAME --out DIR [--stem image]                   a face photo shipped inside an installed package
  ingest FILE... --out DIR [--stem image]                 any image file, normalised to an upright RGB PNG
  samples --weights G.pt --seed S [--truncation T] --out DIR [--stem image]
Each writes DIR/generate.csv with a status per input (frames and demo-clip fail loudly instead).
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stylegan_inversion.cli import run, setup_logging  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("frames", help="extract every N-th frame of a video")
    f.add_argument("video", type=Path)
    f.add_argument("--stride", type=int, default=5)
    f.add_argument("--max-frames", type=int, default=None)
    f.add_argument("--start", type=int, default=0)
    f.add_argument("--fps", type=float, default=None, help="take frames at this rate instead of every N-th")
    f.add_argument("--out", type=Path, required=True)
    d = sub.add_parser("demo-clip", help="synthesise a short clip from a bundled photo")
    d.add_argument("--photo", default="astronaut")
    d.add_argument("--frames", type=int, default=30)
    d.add_argument("--fps", type=float, default=10.0)
    d.add_argument("--size", type=int, default=320)
    d.add_argument("--out", type=Path, required=True)
    b = sub.add_parser("bundled", help="copy a photo shipped inside an installed package")
    b.add_argument("name")
    b.add_argument("--out", type=Path, required=True)
    b.add_argument("--stem", default=None)
    b.add_argument("--max-pixels", type=int, default=100_000_000)
    i = sub.add_parser("ingest", help="normalise image files to upright RGB PNGs")
    i.add_argument("files", nargs="+", type=Path)
    i.add_argument("--out", type=Path, required=True)
    i.add_argument("--stem", default=None, help="output stem (only with one input)")
    i.add_argument("--max-pixels", type=int, default=100_000_000)
    s = sub.add_parser("samples", help="draw generator samples with their latents as ground truth")
    s.add_argument("--weights", type=Path, required=True)
    s.add_argument("--seed", type=int, nargs="+", required=True)
    s.add_argument("--truncation", type=float, default=1.0)
    s.add_argument("--out", type=Path, required=True)
    s.add_argument("--stem", default=None, help="output stem (only with one seed)")
    s.add_argument("--device", default="auto")
    args = ap.parse_args()
    setup_logging()
    from stylegan_inversion import generate, stages

    if args.cmd == "frames":
        paths = generate.extract_frames(args.video, args.out, args.stride, args.max_frames, args.start, args.fps)
        how = f"{args.fps:g} fps" if args.fps else f"stride {args.stride}"
        print(f"{args.video}: wrote {len(paths)} frames ({how}) to {args.out}")
    elif args.cmd == "demo-clip":
        from stylegan_inversion.io import load_image

        frames = generate.demo_clip_frames(load_image(generate.bundled_photo_path(args.photo)), args.frames, args.size)
        generate.write_video(frames, args.out, args.fps)
        print(f"wrote demo clip {args.out} ({len(frames)} frames from bundled photo {args.photo!r})")
    elif args.cmd == "bundled":
        stem = args.stem or args.name
        args.out.mkdir(parents=True, exist_ok=True)
        if args.name == "corrupt":
            generate.write_bundled_item("corrupt", args.out / f"{stem}.png")
            rows = stages.ingest_files([args.out / f"{stem}.jpg"], args.out, args.max_pixels, out_stem=stem)
            (args.out / f"{stem}.jpg").unlink()
        else:
            rows = stages.ingest_files([generate.bundled_photo_path(args.name)], args.out, args.max_pixels, out_stem=stem)
        _summary(rows)
    elif args.cmd == "ingest":
        if args.stem and len(args.files) > 1:
            ap.error("--stem needs exactly one input file")
        _summary(stages.ingest_files(args.files, args.out, args.max_pixels, out_stem=args.stem))
    elif args.cmd == "samples":
        if args.stem and len(args.seed) > 1:
            ap.error("--stem needs exactly one seed")
        _summary(stages.sample_items(args.weights, args.seed, args.out, args.truncation, args.device, stem=args.stem))
    return 0


def _summary(rows) -> None:
    ok = sum(r["status"] == "ok" for r in rows)
    print(f"{ok}/{len(rows)} inputs ok" + "".join(f"\n  {r['input']}: {r['status']}: {r['reason']}" for r in rows if r["status"] != "ok"))


if __name__ == "__main__":
    run(main)
