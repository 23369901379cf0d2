#!/usr/bin/env python
"""Time the align stage (detect + 68 landmarks + pose + FFHQ align) and report head-pose yaw per clip.

Targets (issue 4, medians on a 2-core CPU): at most 150 ms for a 512 px frame and 400 ms for a
1280 px photo with several faces (insightface's t1.jpg), aligning to 512 (transform 512).
Frames: skimage's astronaut (face far from the border) and, when the CelebV-HQ clips are
present, the first frame of each clip (faces near the border: the padding path).

    python benchmarks/bench_align.py [--repeats 15] [--clips ../shared/data/celebvhq-clips]

With --clips, every 5th frame of each clip (as the seed study extracted them) is aligned and
its yaw range printed.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stylegan_inversion.align import align_image  # noqa: E402
from stylegan_inversion.io import load_image  # noqa: E402
from stylegan_inversion.landmarks import detect_faces, load_models  # noqa: E402

SKIMAGE = Path(importlib.util.find_spec("skimage").submodule_search_locations[0])
INSIGHTFACE = Path(importlib.util.find_spec("insightface").submodule_search_locations[0])
DEFAULT_CLIPS = Path(__file__).resolve().parents[2] / "shared" / "data" / "celebvhq-clips"


def clip_frames(path: Path, step: int = 5):
    """Yield (index, RGB PIL frame) for every step-th frame of a video."""
    import imageio_ffmpeg

    gen = imageio_ffmpeg.read_frames(str(path))
    meta = next(gen)
    w, h = meta["size"]
    for i, buf in enumerate(gen):
        if i % step == 0:
            yield i, Image.fromarray(np.frombuffer(buf, np.uint8).reshape(h, w, 3))


def median_ms(fn, repeats: int) -> tuple[float, float]:
    """Median wall and CPU (all threads) time of fn() in milliseconds, after one warm-up call."""
    fn()
    wall, cpu = [], []
    for _ in range(repeats):
        c0, t0 = time.process_time(), time.perf_counter()
        fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return 1000.0 * statistics.median(wall), 1000.0 * statistics.median(cpu)


def main() -> None:
    """Print one line per case: median ms and the target."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--clips", type=Path, default=DEFAULT_CLIPS, help="folder of .mp4 clips (skipped if missing)")
    args = ap.parse_args()
    t0 = time.perf_counter()
    load_models()
    print(f"model load (once per process): {1000 * (time.perf_counter() - t0):.0f} ms")

    cases = [("astronaut 512x512", load_image(SKIMAGE / "data" / "astronaut.png"), False, 150)]
    clips = sorted(args.clips.glob("*.mp4")) if args.clips.is_dir() else []
    for clip in clips:
        cases.append((f"{clip.stem} frame 0 512x512", next(clip_frames(clip))[1], False, 150))
    t1 = load_image(INSIGHTFACE / "data" / "images" / "t1.jpg")
    cases.append(("t1.jpg 1280x886, largest face", t1, False, 400))
    cases.append(("t1.jpg 1280x886, all 6 faces", t1, True, 400))
    for name, img, all_faces, target in cases:
        wall, cpu = median_ms(lambda: align_image(img, "ffhq", args.size, args.size, all_faces=all_faces), args.repeats)
        print(f"{name:32s} detect+landmarks+pose+align {args.size}: {wall:6.1f} ms wall, {cpu:6.1f} ms CPU (target <= {target} ms)")
    img = cases[0][1]
    lm = detect_faces(img)[0].landmarks
    from stylegan_inversion.align import ffhq_align

    wall, cpu = median_ms(lambda: ffhq_align(img, lm, 1024, 4096), max(3, args.repeats // 5))
    print(f"{'astronaut 4096 -> 1024 (FFHQ)':32s} align only: {wall:6.1f} ms wall, {cpu:6.1f} ms CPU")
    print(f"load average during the run: {' '.join(f'{v:.1f}' for v in os.getloadavg())} ({os.cpu_count()} CPUs)")

    for clip in clips:
        yaws, missing = [], 0
        for _, frame in clip_frames(clip):
            res = align_image(frame, "ffhq", 64)
            if res:
                yaws.append(res[0].pose.yaw)
            else:
                missing += 1
        y = np.array(yaws)
        print(f"{clip.name}: {len(y)} frames (every 5th), no face in {missing}; "
              f"yaw {y.min():+.1f} .. {y.max():+.1f} deg, median {np.median(y):+.1f}")  # fmt: skip


if __name__ == "__main__":
    main()
