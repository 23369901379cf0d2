"""Projection settings, kept free of torch so the projection CLI starts fast for skipped inputs."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

LOSS_TERMS = {
    "lpips": ("lpips",),
    "mse": ("mse",),
    "lpips+mse": ("lpips", "mse"),
    "lpips+id": ("lpips", "id"),
    "id": ("id",),
}


@dataclass
class ProjectorConfig:
    """Projection settings (defaults: rosinality's projector, 1000 steps)."""

    steps: int = 1000
    lr: float = 0.1
    lr_rampup: float = 0.05
    lr_rampdown: float = 0.25
    noise: float = 0.05
    noise_ramp: float = 0.75
    noise_regularize: float = 1e5
    lpips_size: int = 256
    loss: str = "lpips+mse"
    latent: str = "wplus"
    lpips_weight: float = 1.0
    mse_weight: float = 1.0
    id_weight: float = 0.1
    n_mean_latent: int = 10000
    optimize_noise: bool = True
    seed: int = 0
    log_every: int = 50

    def __post_init__(self):
        for f in fields(self):  # coerce numbers given as strings; refuse what is not a number
            value, kind = getattr(self, f.name), type(f.default)
            if kind in (int, float) and not isinstance(value, bool):
                try:
                    setattr(self, f.name, kind(value))
                except (TypeError, ValueError):
                    raise ValueError(f"{f.name} must be a number, got {value!r}") from None
        if self.loss not in LOSS_TERMS:
            raise ValueError(f"loss must be one of {', '.join(LOSS_TERMS)}, got {self.loss!r}")
        if self.latent not in ("w", "wplus"):
            raise ValueError(f"latent must be 'w' or 'wplus', got {self.latent!r}")
        if self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")

    def to_dict(self) -> dict:
        return asdict(self)


def lr_schedule(t: float, lr: float, rampdown: float, rampup: float) -> float:
    """Learning rate at progress t in [0, 1]: cosine ramp-down at the end, linear ramp-up at the start."""
    ramp = min(1.0, (1.0 - t) / rampdown) if rampdown > 0 else 1.0
    ramp = 0.5 - 0.5 * math.cos(ramp * math.pi)
    if rampup > 0:
        ramp = ramp * min(1.0, t / rampup)
    return lr * ramp
