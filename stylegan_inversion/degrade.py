"""Controlled, seeded image degradations; each takes a level where larger means worse.

Operations (level meaning):
- ``jpeg``: JPEG quality 1-100 (lower is worse; the one op whose level runs backwards),
  4:2:0 chroma subsampling as most cameras and web images use.
- ``blur``: Gaussian blur, sigma in pixels (reflect border, kernel truncated at 4 sigma).
- ``downscale``: bicubic (antialiased) down by the factor, then bicubic back to the input size.
- ``noise``: additive Gaussian noise, sigma on the 0-255 scale, clipped.
- ``misalign``: a random similarity transform of an aligned face with a fixed magnitude m:
  shift by m x image size in a random direction, rotate by m x 90 degrees with a random sign,
  scale by (1 + m) or 1 / (1 + m); reflect border. Level 0 is the aligned face itself.
- ``realworld``: blur -> downscale -> noise -> JPEG with parameters drawn per image from
  ranges that grow with the level in [0, 1], as face-restoration training pipelines do.

The same (image, op, level, seed) gives byte-identical output.
"""

from __future__ import annotations

import io as _io
import math
from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy import ndimage

from .errors import UserError

from .study import DEGRADE_OPS, degrade_level_problem


class DegradeError(UserError, ValueError):
    """A degradation that cannot be applied (unknown op, level out of range)."""


@dataclass
class Degraded:
    image: Image.Image
    params: dict


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(int(seed))


def jpeg(img: Image.Image, quality: float) -> Image.Image:
    """Re-encode as JPEG at the given quality (1-100)."""
    q = int(round(quality))
    buf = _io.BytesIO()
    img.convert("RGB").save(buf, format="JPEG", quality=q, subsampling=2, optimize=False)
    buf.seek(0)
    out = Image.open(buf)
    out.load()
    return out.convert("RGB")


def blur(img: Image.Image, sigma: float) -> Image.Image:
    """Gaussian blur with standard deviation ``sigma`` pixels."""
    if sigma == 0:
        return img.copy()
    a = np.asarray(img, dtype=np.float32)
    out = ndimage.gaussian_filter(a, sigma=(sigma, sigma, 0), mode="reflect", truncate=4.0)
    return Image.fromarray(np.clip(np.round(out), 0, 255).astype(np.uint8))


def downscale(img: Image.Image, factor: float) -> Image.Image:
    """Bicubic down by ``factor`` (antialiased), then bicubic back to the original size."""
    w, h = img.size
    small = img.resize((max(1, round(w / factor)), max(1, round(h / factor))), Image.Resampling.BICUBIC, reducing_gap=None)
    return small.resize((w, h), Image.Resampling.BICUBIC)


def noise(img: Image.Image, sigma: float, seed: int) -> Image.Image:
    """Additive Gaussian noise with ``sigma`` on the 0-255 scale."""
    a = np.asarray(img, dtype=np.float32)
    a = a + _rng(seed).normal(0.0, sigma, size=a.shape).astype(np.float32)
    return Image.fromarray(np.clip(np.round(a), 0, 255).astype(np.uint8))


def misalign_params(magnitude: float, size: int, seed: int) -> dict:
    """Draw the direction and signs of a misalignment of fixed ``magnitude``."""
    r = _rng(seed)
    theta = float(r.uniform(0, 2 * math.pi))
    shift = magnitude * size
    return {
        "dx": shift * math.cos(theta),
        "dy": shift * math.sin(theta),
        "rotation_deg": float(magnitude * 90.0 * (1 if r.random() < 0.5 else -1)),
        "scale": float((1 + magnitude) ** (1 if r.random() < 0.5 else -1)),
    }


def misalign(img: Image.Image, magnitude: float, seed: int) -> tuple[Image.Image, dict]:
    """Shift/rotate/scale an aligned face about its centre by a seeded similarity transform."""
    w, h = img.size
    p = misalign_params(magnitude, w, seed)
    if magnitude == 0:
        return img.copy(), p
    a = np.asarray(img, dtype=np.float32)
    ang = math.radians(p["rotation_deg"])
    c, s = math.cos(ang) / p["scale"], math.sin(ang) / p["scale"]
    # output (row, col) -> input: inverse rotation/scale about the centre, minus the shift
    inv = np.array([[c, s], [-s, c]])
    centre = np.array([(h - 1) / 2, (w - 1) / 2])
    shift = np.array([p["dy"], p["dx"]])
    offset = centre - inv @ (centre + shift)
    out = np.stack(
        [ndimage.affine_transform(a[..., ch], inv, offset=offset, order=3, mode="reflect") for ch in range(a.shape[2])],
        axis=-1,
    )
    return Image.fromarray(np.clip(np.round(out), 0, 255).astype(np.uint8)), p


def realworld_params(level: float, seed: int) -> dict:
    """Draw the blur/downscale/noise/JPEG parameters of one 'real-world' degradation."""
    r = _rng(seed)
    return {
        "blur_sigma": float(r.uniform(0, 3.0 * level)),
        "downscale_factor": float(1 + r.uniform(0, 7.0 * level)),
        "noise_sigma": float(r.uniform(0, 20.0 * level)),
        "jpeg_quality": int(round(95 - r.uniform(0, 85.0 * level))),
        "noise_seed": int(r.integers(0, 2**31 - 1)),
    }


def validate(op: str, level: float) -> None:
    """Raise DegradeError unless ``op`` is known and ``level`` is in its range."""
    problem = degrade_level_problem(op, level)
    if problem:
        raise DegradeError(problem)


def apply(img: Image.Image, op: str, level: float, seed: int = 0) -> Degraded:
    """Apply one operation at ``level`` with ``seed``; returns the image and the parameters used."""
    validate(op, level)
    img = img.convert("RGB")
    base = {"op": op, "level": level, "seed": int(seed)}
    if op == "jpeg":
        return Degraded(jpeg(img, level), base | {"quality": int(round(level))})
    if op == "blur":
        return Degraded(blur(img, level), base | {"sigma": level})
    if op == "downscale":
        return Degraded(downscale(img, level), base | {"factor": level})
    if op == "noise":
        return Degraded(noise(img, level, seed), base | {"sigma": level})
    if op == "misalign":
        out, p = misalign(img, level, seed)
        return Degraded(out, base | p)
    if op == "realworld":
        p = realworld_params(level, seed)
        x = blur(img, p["blur_sigma"])
        x = downscale(x, p["downscale_factor"])
        x = noise(x, p["noise_sigma"], p["noise_seed"])
        x = jpeg(x, p["jpeg_quality"])
        return Degraded(x, base | p)
    raise DegradeError(f"unknown degradation {op!r} (one of {', '.join(DEGRADE_OPS)})")


def psnr_uint8(a: Image.Image, b: Image.Image) -> float:
    """PSNR in dB between two same-size 8-bit images (inf when identical)."""
    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    mse = float(np.mean((x - y) ** 2))
    return float("inf") if mse == 0 else 10 * math.log10(255.0**2 / mse)
