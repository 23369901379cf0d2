"""Small builders shared by the tests (tiny models and images made in the test, never downloaded)."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
DEMO_CONFIG = REPO / "tests" / "demo.yaml"
REAL_CONFIG = REPO / "config.yaml"


def demo_config() -> dict:
    """A fresh copy of the offline demo's config."""
    with open(DEMO_CONFIG) as f:
        return copy.deepcopy(yaml.safe_load(f))


def real_config() -> dict:
    with open(REAL_CONFIG) as f:
        return yaml.safe_load(f)


def face_photo() -> Image.Image:
    """skimage's astronaut: a real 512x512 photo with one face."""
    from stylegan_inversion.generate import bundled_photo_path
    from stylegan_inversion.io import load_image

    return load_image(bundled_photo_path("astronaut"))


def textured_image(size: int = 64, seed: int = 0) -> Image.Image:
    """A smooth random RGB texture (has structure at several scales)."""
    rng = np.random.default_rng(seed)
    base = rng.uniform(0, 255, size=(size // 8, size // 8, 3)).astype(np.uint8)
    img = Image.fromarray(base).resize((size, size), Image.Resampling.BICUBIC)
    noise = rng.normal(0, 12, size=(size, size, 3))
    return Image.fromarray(np.clip(np.asarray(img, dtype=np.float64) + noise, 0, 255).astype(np.uint8))


def tiny_generator_file(path: Path, resolution: int = 16, seed: int = 0) -> Path:
    """A tiny random generator written through the real save path (rosinality format)."""
    from stylegan_inversion.weights import make_stand_in

    chans = {4: 32, 8: 32, 16: 16, 32: 8, 64: 8}
    return make_stand_in(path, resolution, 32, 2, {k: v for k, v in chans.items() if k <= resolution}, seed)
