#!/usr/bin/env python
"""How long Snakemake takes to build the study's DAG (dry run) for a large study.

Builds a scratch study of N images in a folder source x C conditions (jpeg levels, blur levels,
misalignment, sizes, ...) and times `snakemake -n` (median of --repeats), next to the offline
demo's dry run. Target (issue 5): 200 images x 20 conditions in under 30 s; demo under 10 s.

    python benchmarks/bench_dag.py [--images 200] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from PIL import Image

REPO = Path(__file__).resolve().parents[1]


def study_config(n_conditions: int) -> dict:
    """A demo-like config whose questions add up to n_conditions distinct conditions."""
    with open(REPO / "tests" / "demo.yaml") as f:
        cfg = yaml.safe_load(f)
    cfg["sources"] = {"photos": {"kind": "folder", "path": "data/images"}}
    ops = [f"jpeg-{q}" for q in (90, 70, 50, 30, 20, 10, 5)] + [f"blur-{s}" for s in (1, 2, 3, 4, 6)]
    ops += [f"noise-{s}" for s in (5, 10, 20)] + [f"misalign-{m}" for m in (0.05, 0.1, 0.2)]
    levels = [{"label": "clean"}] + [{"label": op, "set": {"degrade": op}} for op in ops]
    levels = levels[: n_conditions - 1] + [{"label": "centre", "set": {"alignment": "center"}}]
    cfg["questions"] = {"quality": {"title": "quality", "sources": ["photos"], "levels": levels}}
    return cfg


def dry_run(workdir: Path, configfile: Path) -> tuple[float, str]:
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(workdir), "-n", "results/figures",
                        "--quiet", "all", "--configfile", str(configfile)], capture_output=True, text=True)
    dt = time.perf_counter() - t0
    if p.returncode:
        raise SystemExit(p.stdout[-2000:] + p.stderr[-2000:])
    return dt, p.stdout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=200)
    ap.add_argument("--conditions", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        big = tmp / "big"
        (big / "data" / "images").mkdir(parents=True)
        img = Image.new("RGB", (8, 8))
        for i in range(args.images):
            img.save(big / "data" / "images" / f"img{i:04d}.png")
        cfg_path = tmp / "big.yaml"
        cfg_path.write_text(yaml.safe_dump(study_config(args.conditions)))
        demo = tmp / "demo"
        demo.mkdir()
        big_t = [dry_run(big, cfg_path)[0] for _ in range(args.repeats)]
        demo_t = [dry_run(demo, REPO / "tests" / "demo.yaml")[0] for _ in range(args.repeats)]
    b, d = statistics.median(big_t), statistics.median(demo_t)
    print(f"dry run, {args.images} images x {args.conditions} conditions: median {b:.1f} s (target < 30 s) runs={[round(t, 1) for t in big_t]}")
    print(f"dry run, offline demo:                 median {d:.1f} s (target < 10 s) runs={[round(t, 1) for t in demo_t]}")
    print(f"ratio big/demo: {b / d:.1f}x")


if __name__ == "__main__":
    main()
