#!/usr/bin/env python
"""Metrics of one condition of the study (LPIPS, PSNR, SSIM to the input and to the clean face,
latent error for generator samples): one row per image, written atomically to --out (CSV).
With --collect, concatenates per-condition CSVs into the study's tidy table instead."""

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stylegan_inversion.cli import run, setup_logging  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--config", help="study config: a YAML/JSON file or a JSON string")
    ap.add_argument("--condition", help="condition id")
    ap.add_argument("--items", help='JSON {"source": ["item", ...]}')
    ap.add_argument("--device", default="auto")
    ap.add_argument("--collect", nargs="+", type=Path, help="per-condition CSVs to concatenate")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    setup_logging()
    import pandas as pd

    from stylegan_inversion.io import write_csv_atomic

    if args.collect:
        df = pd.concat([pd.read_csv(p) for p in args.collect], ignore_index=True)
        write_csv_atomic(args.out, df.to_dict("records"), list(df.columns))
        print(f"{args.out}: {len(df)} rows from {len(args.collect)} conditions")
        return 0
    if not (args.config and args.condition and args.items):
        ap.error("--config, --condition and --items are required (or use --collect)")
    from stylegan_inversion.config import load_config
    from stylegan_inversion.device import resolve_device
    from stylegan_inversion.evaluate import condition_metrics
    from stylegan_inversion.study import Study

    config = load_config(args.config)
    study = Study(config)
    m = config.get("metrics", {})
    from stylegan_inversion.study import WEIGHTS

    identity = Path(WEIGHTS.format(weights=study.identity)) if study.identity else None
    df = condition_metrics(study, args.condition, json.loads(args.items), int(m.get("size", 256)), m.get("lpips_net", "alex"),
                           (config.get("lpips") or {}).get("backbone", "pretrained"), resolve_device(args.device),
                           identity=identity, dlib_identity=bool(m.get("dlib_identity", False)))
    write_csv_atomic(args.out, df.to_dict("records"), list(df.columns))
    print(f"{args.out}: {len(df)} rows ({int((df['status'] == 'ok').sum())} ok)")
    return 0


if __name__ == "__main__":
    run(main)
