"""File handling shared by every stage: atomic writes, robust image loading, per-item records.

Every stage writes, next to its images, a CSV named after the stage (``align.csv``,
``degrade.csv`` ...) with one row per input and at least ``input, status, reason``.
A stage given an image whose upstream stage skipped it (no image, a record with a
non-``ok`` status) records ``skipped`` with the upstream reason instead of failing,
so one bad photo never stops a batch.
"""

from __future__ import annotations

import contextlib
import csv
import json
import logging
import os
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

log = logging.getLogger(__name__)

STATUS_OK = "ok"
DEFAULT_MAX_PIXELS = 100_000_000  # 100 MP: above this a file is refused as a decompression bomb
NEUTRAL_BACKGROUND = (128, 128, 128)


class InputError(Exception):
    """An input that cannot be used; ``status`` is a short code, the message the reason."""

    def __init__(self, status: str, reason: str):
        super().__init__(reason)
        self.status = status
        self.reason = reason


# ---------------------------------------------------------------- atomic writing


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


FILE_MODE = 0o666 & ~_umask()  # what open() would give a new file (mkstemp makes 0600 files)
DIR_MODE = 0o777 & ~_umask()  # what mkdir() would give a new folder (mkdtemp makes 0700 ones)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + path.suffix, dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if tmp_path.exists():
            os.chmod(tmp_path, FILE_MODE)
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write text to path atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json_atomic(path: str | Path, obj) -> None:
    """Write JSON (sorted keys, indented) atomically."""
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def save_png_atomic(image: Image.Image, path: str | Path) -> None:
    """Save a PIL image as PNG atomically (no partial file under the final name)."""
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG")


def write_csv_atomic(path: str | Path, rows: list[dict], columns: list[str] | None = None) -> None:
    """Write rows as CSV atomically; columns default to the union of keys in first-seen order."""
    if columns is None:
        columns = []
        for r in rows:
            columns += [k for k in r if k not in columns]
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
            w.writeheader()
            for r in rows:
                w.writerow({k: _csv_cell(r.get(k, "")) for k in columns})


def _csv_cell(v):
    if isinstance(v, (dict, list, tuple)):
        return json.dumps(v, default=_json_default)
    if v is None:
        return ""
    return v


def read_csv(path: str | Path) -> list[dict]:
    """Read a CSV into a list of dicts (strings)."""
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


# ---------------------------------------------------------------- image loading


def _to_rgb(img: Image.Image, background=NEUTRAL_BACKGROUND) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB; transparency is composited on ``background``."""
    mode = img.mode
    if mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
        mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(img).astype(np.float64)
        hi = 65535.0 if mode.startswith("I;16") or arr.max(initial=0) > 255 else 255.0
        if mode == "F" and arr.max(initial=0) <= 1.0:
            hi = 1.0
        arr = np.clip(np.round(arr / hi * 255.0), 0, 255).astype(np.uint8)
        return Image.fromarray(arr, mode="L").convert("RGB")
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        bg = Image.new("RGBA", rgba.size, tuple(background) + (255,))
        return Image.alpha_composite(bg, rgba).convert("RGB")
    if mode == "RGB":
        return img
    return img.convert("RGB")  # L, 1, CMYK, YCbCr, LAB, HSV


def load_image(path: str | Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Open an image file as upright 8-bit RGB, or raise InputError naming the reason.

    Applies the EXIF orientation, composites transparency on neutral grey, rescales
    16-bit data, converts CMYK/palette/greyscale, and refuses images above
    ``max_pixels`` before decoding them (decompression bombs).
    """
    path = Path(path)
    if not path.exists():
        raise InputError("unreadable", "no such file")
    if path.is_dir():
        raise InputError("unreadable", "is a directory, not an image file")
    if path.stat().st_size == 0:
        raise InputError("unreadable", "empty file (0 bytes)")
    old_limit = Image.MAX_IMAGE_PIXELS
    old_truncated = ImageFile.LOAD_TRUNCATED_IMAGES
    try:
        Image.MAX_IMAGE_PIXELS = None  # we check the size ourselves, before decoding
        ImageFile.LOAD_TRUNCATED_IMAGES = False
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                img = Image.open(path)
            except UnidentifiedImageError:
                raise InputError("unreadable", "not an image file (format not recognised)") from None
            except (OSError, ValueError, SyntaxError) as e:
                raise InputError("unreadable", f"cannot open image: {e}") from None
            w, h = img.size
            if w * h > max_pixels:
                raise InputError("too_large", f"{w}x{h} = {w * h} pixels exceeds the limit of {max_pixels} (possible decompression bomb)")
            if w == 0 or h == 0:
                raise InputError("unreadable", f"image has zero size {w}x{h}")
            try:
                img.load()
                img = ImageOps.exif_transpose(img) or img
                rgb = _to_rgb(img)
                rgb.load()
            except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
                raise InputError("unreadable", f"cannot decode image (truncated or corrupt): {e}") from None
    finally:
        Image.MAX_IMAGE_PIXELS = old_limit
        ImageFile.LOAD_TRUNCATED_IMAGES = old_truncated
    return rgb


def pil_to_array(img: Image.Image) -> np.ndarray:
    """Any PIL image -> C-contiguous uint8 RGB array [H, W, 3] (same conversions as load_image)."""
    return np.ascontiguousarray(np.asarray(_to_rgb(img), dtype=np.uint8))


# ---------------------------------------------------------------- stage records


@dataclass
class StageInput:
    """One input to a stage: its path, display name and, if skipped upstream, why."""

    path: Path
    name: str
    skip_status: str | None = None
    skip_reason: str = ""


STAGES = ("generate", "degrade", "align", "project")  # each writes <stage>.csv next to its images


def find_record(directory: Path) -> tuple[str, list[dict]] | None:
    """The stage CSV of a folder written by a stage: (stage name, rows), or None."""
    for stage in STAGES:
        p = directory / f"{stage}.csv"
        if p.is_file():
            rows = read_csv(p)
            if rows and "status" in rows[0]:
                return stage, rows
    return None


def upstream_row(image_path: Path) -> tuple[str, dict] | None:
    """The row describing ``image_path`` in its folder's stage CSV, if there is one."""
    rec = find_record(image_path.parent)
    if rec is None:
        return None
    stage, rows = rec
    for r in rows:
        if Path(r.get("output", "") or "").name == image_path.name or Path(r.get("input", "")).stem == image_path.stem:
            return stage, r
    if len(rows) == 1:
        return stage, rows[0]
    return None


def resolve_inputs(paths: Iterable[str | Path]) -> list[StageInput]:
    """Turn CLI inputs into StageInputs: a missing image whose folder records a skip is skipped."""
    out = []
    for p in paths:
        p = Path(p)
        name = p.stem
        up = upstream_row(p) if p.suffix.lower() == ".png" else None
        if up and up[1].get("status") != STATUS_OK and not p.exists():
            stage, row = up
            reason = f"{stage}: {row.get('status')}: {row.get('reason', '')}".strip()
            out.append(StageInput(p, name, "skipped", reason))
        else:
            out.append(StageInput(p, name))
    return out


class StageRecorder:
    """Collects one row per input and rewrites the stage CSV atomically after each."""

    def __init__(self, out_dir: str | Path, stage: str, columns: list[str]):
        self.out_dir = Path(out_dir)
        self.path = self.out_dir / f"{stage}.csv"
        self.columns = list(dict.fromkeys(["input", "status", "reason"] + list(columns)))
        self.rows: list[dict] = []

    def add(self, row: dict) -> None:
        for k in row:
            if k not in self.columns:
                self.columns.append(k)
        self.rows.append(row)
        write_csv_atomic(self.path, self.rows, self.columns)

    def finish(self) -> None:
        """Write the CSV even when there were no inputs."""
        write_csv_atomic(self.path, self.rows, self.columns)


def replace_dir_atomic(tmp_dir: Path, final_dir: Path) -> None:
    """Move a finished temporary folder onto its final name."""
    final_dir = Path(final_dir)
    if final_dir.exists():
        shutil.rmtree(final_dir)
    os.replace(tmp_dir, final_dir)
