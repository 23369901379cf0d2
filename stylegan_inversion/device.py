"""Pick the compute device: CUDA when present, overridable by argument or environment."""

from __future__ import annotations

import os

import torch

from .errors import DeviceError

ENV_VAR = "STYLEGAN_INVERSION_DEVICE"


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """'auto'/None -> $STYLEGAN_INVERSION_DEVICE, else cuda if available, else cpu."""
    if isinstance(device, torch.device):
        return device
    if device in (None, "", "auto"):
        device = os.environ.get(ENV_VAR, "") or "auto"
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise DeviceError(f"device {device!r} requested but CUDA is not available on this machine; use 'cpu' or 'auto'")
    return dev
