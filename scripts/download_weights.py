#!/usr/bin/env python
"""Fetch network weights: checksum-verified, resumable, from a local mirror first; extract/convert as asked.

URL form:      download_weights.py --url URL [--url URL2] --sha256 HEX --out FILE [--convert nvidia_pkl]
Registry form: download_weights.py --registry config.yaml --name ffhq1024 [--out FILE]
Mirror folders (--mirror DIR, $STYLEGAN_INVERSION_MIRROR, the config's `mirror:` key) are searched
for the file (by URL file name or sha256) before the network. Progress goes to stderr.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stylegan_inversion.cli import run, setup_logging  # noqa: E402
from stylegan_inversion.download import (  # noqa: E402
    DEFAULT_BACKOFF,
    DEFAULT_RETRIES,
    DEFAULT_STALL_TIMEOUT,
    EXTRACT_KINDS,
    MIRROR_ENV,
)

ENTRY_FLAGS = ("sha256", "size", "filename", "convert", "extract", "member", "member_sha256", "licence")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line arguments; the URL form and the registry form exclude each other."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = ap.add_argument_group("what to fetch (one of)")
    src.add_argument("--url", action="append", default=[], help="where the file is published (repeat for fallbacks, tried in order)")
    src.add_argument("--registry", type=Path, default=None, help="YAML config whose registry has an entry --name")
    ap.add_argument("--section", default="weights", help="registry mapping in the config (default: weights)")
    ap.add_argument("--name", default=None, help="asset name (registry key; also used in messages)")
    ap.add_argument("--sha256", default=None, help="expected SHA-256 of the downloaded file")
    ap.add_argument("--size", type=int, default=None, help="expected size in bytes of the downloaded file")
    ap.add_argument("--out", type=Path, default=None, help="file to write (the converted/extracted file when asked)")
    ap.add_argument("--convert", choices=["nvidia_pkl"], default=None, help="convert the download to a rosinality checkpoint")
    ap.add_argument("--extract", choices=list(EXTRACT_KINDS), default=None, help="decompress a .bz2 or take one member of a .zip")
    ap.add_argument("--member", default=None, help="file inside the zip to extract (needed when it holds several)")
    ap.add_argument("--member-sha256", default=None, help="expected SHA-256 of the extracted file")
    ap.add_argument("--filename", default=None, help="the file's name in a mirror folder when the URL does not end in it")
    ap.add_argument("--licence", default=None, help="licence note, logged before the download")
    ap.add_argument("--mirror", action="append", default=[], type=Path,
                    help=f"local folder searched before the network (repeatable; also ${MIRROR_ENV})")
    ap.add_argument("--stall-timeout", type=float, default=DEFAULT_STALL_TIMEOUT,
                    help="seconds without receiving a byte before an attempt counts as stalled (default %(default)s)")
    ap.add_argument("--retries", type=int, default=DEFAULT_RETRIES, help="retries after transient errors (default %(default)s)")
    ap.add_argument("--backoff", type=float, default=DEFAULT_BACKOFF,
                    help="first retry delay in seconds, doubled each retry (default %(default)s)")
    ap.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    args = ap.parse_args(argv)
    if bool(args.url) == bool(args.registry):
        ap.error("give either --url (with --out) or --registry with --name")
    if args.registry:
        if not args.name:
            ap.error("--registry needs --name")
        given = [f"--{f.replace('_', '-')}" for f in ENTRY_FLAGS if getattr(args, f) is not None]
        if given:
            ap.error(f"{', '.join(given)} come from the registry entry; edit the registry instead")
    elif args.out is None:
        ap.error("--url needs --out")
    if args.stall_timeout <= 0 or args.retries < 0 or args.backoff < 0:
        ap.error("--stall-timeout must be > 0, --retries and --backoff >= 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging(args.verbose)
    from stylegan_inversion.weights import default_output, ensure_weights, load_registry

    mirrors = list(args.mirror)
    if args.registry:
        registry, cfg = load_registry(args.registry, args.section)
        if args.name not in registry:
            from stylegan_inversion.weights import WeightsError

            raise WeightsError(f"{args.registry}: no entry '{args.name}' under '{args.section}:' (have: {', '.join(registry)})")
        entry = dict(registry[args.name] or {})
        if cfg.get("mirror"):
            mirrors.append(Path(cfg["mirror"]))
        name = args.name
        out = args.out or default_output(name, entry)
    else:
        entry = {"kind": "url", "url": args.url[0], "urls": args.url[1:], **{f: getattr(args, f) for f in ENTRY_FLAGS}}
        name = args.name or args.out.stem
        out = args.out
    out = ensure_weights(name, entry, out, mirrors=mirrors, stall_timeout=args.stall_timeout, retries=args.retries,
                         backoff=args.backoff)
    print(f"weights ready: {out}")
    return 0


if __name__ == "__main__":
    run(main)
