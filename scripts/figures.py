#!/usr/bin/env python
"""Figures of the study into one folder: per question a montage and metric-vs-level plots with
95% bootstrap CIs, plus summary.csv and skipped_inputs.csv. Written to a temp folder, then renamed."""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stylegan_inversion.cli import run, setup_logging  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--config", required=True, help="study config: a YAML/JSON file or a JSON string")
    ap.add_argument("--metrics", type=Path, required=True, help="results/metrics.csv")
    ap.add_argument("--out", type=Path, required=True, help="folder to write (replaced)")
    args = ap.parse_args()
    setup_logging()
    from stylegan_inversion.config import load_config
    from stylegan_inversion.figures import make_figures
    from stylegan_inversion.study import Study

    config = load_config(args.config)
    m = config.get("metrics", {})
    files = make_figures(args.metrics, Study(config), args.out, n_boot=int(m.get("bootstrap", 2000)), ci=float(m.get("ci", 0.95)))
    print(f"wrote {len(files)} files to {args.out}")
    return 0


if __name__ == "__main__":
    run(main)
