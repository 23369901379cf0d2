"""Conversions between PIL images and tensors in the generator's [-1, 1] range."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image


def pil_to_tensor(img: Image.Image, size: int | None = None) -> torch.Tensor:
    """PIL RGB -> float tensor [3, H, W] in [-1, 1], optionally resized (Lanczos) to size x size."""
    img = img.convert("RGB")
    if size is not None and img.size != (size, size):
        img = img.resize((size, size), Image.Resampling.LANCZOS)
    a = torch.from_numpy(np.asarray(img, dtype=np.float32).copy()).permute(2, 0, 1)
    return a / 127.5 - 1.0


def tensor_to_pil(x: torch.Tensor) -> Image.Image:
    """Tensor [3, H, W] in about [-1, 1] -> PIL RGB (clipped, rounded)."""
    a = ((x.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return Image.fromarray(a.permute(1, 2, 0).numpy())


def area_downsample(x: torch.Tensor, size: int) -> torch.Tensor:
    """Average-pool [N, C, H, W] down to size x size (H a multiple of size), else bilinear antialiased."""
    h = x.shape[-1]
    if h == size:
        return x
    if h > size and h % size == 0:
        return F.avg_pool2d(x, h // size)
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
