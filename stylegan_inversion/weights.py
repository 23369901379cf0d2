"""Network weights of the study: stand-in generators for offline runs, and fetching real ones.

Registry entries (``weights:`` in the config) have a ``kind``:
- ``stand_in``: a tiny randomly initialised StyleGAN2 built from a seed, saved in the
  rosinality checkpoint format and loaded through the same loader as real weights.
  Every output made with it says it is a stand-in.
- ``url``: a file fetched from ``url`` (checked against ``sha256``), converted to the
  rosinality format when ``convert: nvidia_pkl``.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import urllib.error
import urllib.request
from pathlib import Path

from .io import atomic_path

log = logging.getLogger(__name__)


class WeightsError(RuntimeError):
    """Weights that cannot be obtained; the message names the file, where to put it and how."""


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while b := f.read(chunk):
            h.update(b)
    return h.hexdigest()


def parse_channels(text: str | dict) -> dict[int, int]:
    """'4:64,8:64,16:32' (or a dict) -> {4: 64, 8: 64, 16: 32}."""
    if isinstance(text, dict):
        return {int(k): int(v) for k, v in text.items()}
    out = {}
    for part in str(text).split(","):
        r, c = part.split(":")
        out[int(r)] = int(c)
    return out


def make_stand_in(out: str | Path, resolution: int, style_dim: int, n_mlp: int, channels: dict[int, int], seed: int) -> Path:
    """Write a tiny seeded random generator in the rosinality format, marked as a stand-in."""
    from .stylegan2 import GeneratorConfig, make_random_generator, save_generator

    cfg = GeneratorConfig(resolution=resolution, style_dim=style_dim, n_mlp=n_mlp, channels=channels)
    G = make_random_generator(cfg, seed=seed)
    G.mean_w()
    save_generator(G, out, meta={"stand_in": True, "seed": seed, "note": "tiny randomly initialised stand-in generator: not a trained model"})
    return Path(out)


def fetch(url: str, out: str | Path, sha256: str | None = None, name: str = "", timeout: float = 60.0) -> Path:
    """Download url to out (temp file, verify, rename); a present file with the right checksum is kept."""
    out = Path(out)
    label = name or out.name
    if out.is_file() and (not sha256 or sha256_file(out) == sha256):
        log.info("%s: already present at %s", label, out)
        return out
    try:
        with atomic_path(out) as tmp:
            with urllib.request.urlopen(url, timeout=timeout) as r, open(tmp, "wb") as f:
                shutil.copyfileobj(r, f, 1 << 20)
            if sha256:
                got = sha256_file(tmp)
                if got != sha256:
                    raise WeightsError(f"{label}: checksum mismatch for {url}: expected sha256 {sha256}, got {got}; nothing was kept")
    except (urllib.error.URLError, OSError, TimeoutError) as e:
        raise WeightsError(
            f"{label}: cannot download {url} ({getattr(e, 'reason', e)}). "
            f"If this machine is offline, fetch that file elsewhere and place it at {out}, then re-run."
        ) from None
    return out


def ensure_weights(name: str, entry: dict, out: str | Path) -> Path:
    """Make sure the rosinality-format checkpoint for registry entry ``name`` exists at ``out``."""
    out = Path(out)
    kind = entry.get("kind")
    if kind == "stand_in":
        return make_stand_in(out, int(entry["resolution"]), int(entry.get("style_dim", 64)), int(entry.get("n_mlp", 2)),
                             parse_channels(entry["channels"]), int(entry.get("seed", 0)))
    if kind != "url":
        raise WeightsError(f"weights.{name}.kind: unknown kind {kind!r} (stand_in or url)")
    if out.is_file():
        return out
    convert = entry.get("convert")
    raw = out.parent / "downloads" / Path(entry["url"]).name if convert else out
    try:
        fetch(entry["url"], raw, entry.get("sha256"), name=f"weights '{name}'")
    except WeightsError as e:
        hint = f" Or place an already converted rosinality checkpoint at {out}." if convert else ""
        raise WeightsError(f"{e}{hint}") from None
    if convert == "nvidia_pkl":
        from .stylegan2 import load_generator, save_generator

        G = load_generator(raw, device="cpu")
        save_generator(G, out, meta={"converted_from": str(raw), "source_url": entry["url"]})
    return out
