"""Network weights of the study: stand-in networks for offline runs, and fetching real ones.

Registry entries (``weights:`` in the config) have a ``role`` (generator, lpips, identity) and a ``kind``:
- ``stand_in``: a small randomly initialised network built from a seed — a StyleGAN2 generator
  (rosinality checkpoint format) or an IR-SE identity network — loaded through the same
  loader as the real weights. Every output made with it says it is a stand-in.
- ``url``: a file fetched from ``url`` (or the first of ``urls`` that works), checked against
  ``sha256`` (and ``size``), through ``stylegan_inversion.download`` (resume, retries, stall
  timeout, local mirror folder). Optional post-processing, in this order:
  ``extract: bz2|zip`` (``member`` names the file inside a zip, ``member_sha256`` checks it) and
  ``convert: nvidia_pkl`` (NVIDIA pickle -> rosinality checkpoint). With post-processing the
  download is kept under ``<out dir>/downloads/`` so a re-run needs no network.
  ``torch_hub: <file name>`` marks a torchvision backbone whose default place is
  ``$TORCH_HOME/hub/checkpoints/<file name>``; ``licence`` is a note shown in the log.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import IO, Iterable

from .errors import UserError

from .download import (
    DEFAULT_BACKOFF,
    DEFAULT_RETRIES,
    DEFAULT_STALL_TIMEOUT,
    EXTRACT_KINDS,
    DownloadError,
    download,
    extract,
    sha256_file,
    torch_hub_path,
    url_basename,
)

__all__ = [
    "CONVERT_KINDS", "EXTRACT_KINDS", "WeightsError", "default_output", "ensure_weights", "entry_urls",
    "load_registry", "make_stand_in", "parse_channels", "sha256_file", "torch_hub_path",
]

log = logging.getLogger(__name__)


CONVERT_KINDS = ("nvidia_pkl",)
ENTRY_KINDS = ("stand_in", "url")


class WeightsError(UserError, RuntimeError):
    """Weights that cannot be obtained; the message names the file, where to put it and how."""


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


def entry_urls(entry: dict) -> list[str]:
    """The URLs of a registry entry, in the order to try them (``url`` then ``urls``)."""
    urls = []
    if entry.get("url"):
        urls.append(str(entry["url"]))
    extra = entry.get("urls") or []
    if isinstance(extra, str):
        extra = [extra]
    urls += [str(u) for u in extra if u]
    return list(dict.fromkeys(urls))


def default_output(name: str, entry: dict, weights_dir: str | Path = "data/weights", torch_home: str | Path | None = None) -> Path:
    """Where an entry's final file goes when no --out is given: the torch hub cache for backbones, else weights_dir/<name>.pt."""
    if entry.get("torch_hub"):
        return torch_hub_path(str(entry["torch_hub"]), torch_home)
    if entry.get("kind") == "stand_in" or entry.get("convert"):
        suffix = ".pt"
    else:
        source = entry.get("member") or entry.get("filename") or url_basename((entry_urls(entry) or [""])[0])
        if entry.get("extract") == "bz2" and source.endswith(".bz2"):
            source = source[: -len(".bz2")]
        suffix = Path(source).suffix
    return Path(weights_dir) / f"{name}{suffix or '.pt'}"


def _check_entry(name: str, entry: dict) -> None:
    """Refuse registry entries with unknown kinds or post-processing, before any download."""
    kind = entry.get("kind")
    if kind not in ENTRY_KINDS:
        raise WeightsError(f"weights.{name}.kind: unknown kind {kind!r} ({' or '.join(ENTRY_KINDS)})")
    if kind != "url":
        return
    if not entry_urls(entry):
        raise WeightsError(f"weights.{name}: kind url needs 'url' (or 'urls')")
    if entry.get("convert") not in (None, *CONVERT_KINDS):
        raise WeightsError(f"weights.{name}.convert: unknown conversion {entry['convert']!r} ({', '.join(CONVERT_KINDS)})")
    if entry.get("extract") not in (None, *EXTRACT_KINDS):
        raise WeightsError(f"weights.{name}.extract: unknown archive kind {entry['extract']!r} ({', '.join(EXTRACT_KINDS)})")


def ensure_weights(name: str, entry: dict, out: str | Path, *, mirrors: str | Path | Iterable[str | Path] | None = None,
                   stall_timeout: float = DEFAULT_STALL_TIMEOUT, retries: int = DEFAULT_RETRIES, backoff: float = DEFAULT_BACKOFF,
                   progress_stream: IO[str] | None = None) -> Path:
    """Make sure the file for registry entry ``name`` exists at ``out`` (downloaded, extracted, converted as the entry says)."""
    out = Path(out)
    _check_entry(name, entry)
    if entry["kind"] == "stand_in":
        if entry.get("role", "generator") == "identity":
            from .identity import write_stand_in_identity

            return write_stand_in_identity(out, seed=int(entry.get("seed", 0)), width=int(entry.get("width", 16)))
        return make_stand_in(out, int(entry["resolution"]), int(entry.get("style_dim", 64)), int(entry.get("n_mlp", 2)),
                             parse_channels(entry["channels"]), int(entry.get("seed", 0)))
    urls = entry_urls(entry)
    convert, kind_extract = entry.get("convert"), entry.get("extract")
    label = f"weights '{name}'"
    if entry.get("licence"):
        log.info("%s: licence: %s", label, entry["licence"])
    post = bool(convert or kind_extract)
    if post and out.is_file():
        log.info("%s: already present at %s", label, out)
        return out
    raw = out.parent / "downloads" / (entry.get("filename") or url_basename(urls[0])) if post else out
    try:
        download(urls, raw, sha256=entry.get("sha256"), size=entry.get("size"), name=label, mirrors=mirrors,
                 filename=entry.get("filename"), stall_timeout=stall_timeout, retries=retries, backoff=backoff,
                 progress_stream=progress_stream)
        src = raw
        if kind_extract:
            target = out if not convert else raw.with_name(entry.get("member") or raw.stem)
            src = extract(raw, target, kind_extract, member=entry.get("member"), sha256=entry.get("member_sha256"))
    except DownloadError as e:
        steps = " and ".join(s for s, on in (("extraction", kind_extract), ("conversion", convert)) if on)
        hint = f" Or place the finished file (after {steps}) at {out}." if post else ""
        raise WeightsError(f"{e}{hint}") from None
    if convert == "nvidia_pkl":
        from .stylegan2 import convert_checkpoint

        convert_checkpoint(src, out, meta={"source_url": urls[0], "source_sha256": entry.get("sha256")})
    return out


def load_registry(path: str | Path, section: str = "weights") -> tuple[dict, dict]:
    """Read a YAML config: (its ``section`` mapping of assets by name, the whole config)."""
    import yaml

    path = Path(path)
    try:
        with open(path) as f:
            cfg = yaml.safe_load(f) or {}
    except OSError as e:
        raise WeightsError(f"{path}: cannot read the registry ({e.strerror or e})") from None
    except yaml.YAMLError as e:
        raise WeightsError(f"{path}: not valid YAML ({e})") from None
    reg = cfg.get(section) if isinstance(cfg, dict) else None
    if not isinstance(reg, dict):
        raise WeightsError(f"{path}: no '{section}:' mapping of assets by name")
    return reg, cfg
