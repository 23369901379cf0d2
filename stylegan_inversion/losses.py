"""Losses for projection and the LPIPS metric: LPIPS (with an offline-safe loader),
pixel MSE, and the noise-map regulariser of the StyleGAN2 projector."""

from __future__ import annotations

import contextlib
import logging
import os
import warnings

import torch
import torch.nn.functional as F

from .errors import UserError

log = logging.getLogger(__name__)

from .download import torch_hub_dir
from .study import LPIPS_BACKBONE_FILES  # torchvision's file names of the ImageNet backbones LPIPS builds on


class LossSetupError(UserError, RuntimeError):
    """A loss network that cannot be built here (missing weights); the message says what to do."""


@contextlib.contextmanager
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def load_lpips(net: str = "vgg", backbone: str = "pretrained", device="cpu", seed: int = 0):
    """LPIPS network in eval mode with frozen weights.

    backbone='pretrained' needs torchvision's ImageNet weights in $TORCH_HOME (the
    download-weights stage puts them there); backbone='random' builds the same network
    with a seeded random backbone and LPIPS's shipped linear heads: a stand-in whose
    numbers are not LPIPS and are labelled as such.
    """
    import lpips

    if net not in LPIPS_BACKBONE_FILES:
        raise LossSetupError(f"lpips.net must be one of {', '.join(LPIPS_BACKBONE_FILES)}, got {net!r}")
    if backbone == "pretrained":
        f = torch_hub_dir() / LPIPS_BACKBONE_FILES[net]
        if not f.is_file():
            raise LossSetupError(
                f"LPIPS needs torchvision's {net} ImageNet weights at {f} (TORCH_HOME={os.environ.get('TORCH_HOME', '~/.cache/torch')}); "
                f"run the download-weights stage (asset 'lpips-{net}') or copy {LPIPS_BACKBONE_FILES[net]} there, "
                "or set lpips.backbone: random for an offline stand-in"
            )
        with _quiet():
            model = lpips.LPIPS(net=net, verbose=False)
    elif backbone == "random":
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            with _quiet():
                model = lpips.LPIPS(net=net, pnet_rand=True, verbose=False)
    else:
        raise LossSetupError(f"lpips.backbone must be 'pretrained' or 'random', got {backbone!r}")
    model.eval().requires_grad_(False)
    return model.to(device)


LPIPS_MIN_SIZE = 32  # AlexNet's pooling needs at least 32 px; smaller images are upsampled first


def lpips_distance(model, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """LPIPS per image: a, b [N, 3, H, W] in [-1, 1] -> [N] (inputs under 32 px are upsampled)."""
    if min(a.shape[-2:]) < LPIPS_MIN_SIZE:
        a = F.interpolate(a, size=(LPIPS_MIN_SIZE, LPIPS_MIN_SIZE), mode="bilinear", align_corners=False)
        b = F.interpolate(b, size=(LPIPS_MIN_SIZE, LPIPS_MIN_SIZE), mode="bilinear", align_corners=False)
    return model(a, b, normalize=False).view(a.shape[0])


def mse_per_image(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean squared error per image on the [-1, 1] scale -> [N]."""
    return F.mse_loss(a, b, reduction="none").flatten(1).mean(1)


def noise_regularizer(noises: list[torch.Tensor]) -> torch.Tensor:
    """Spatial autocorrelation of each noise map at every octave down to 8x8, summed per image -> [N].

    Penalises noise maps that carry image structure (StyleGAN2 projector, Karras et al. 2020).
    """
    total = 0
    for n in noises:
        x = n
        while True:
            total = total + (x * torch.roll(x, 1, dims=3)).mean(dim=(1, 2, 3)).pow(2)
            total = total + (x * torch.roll(x, 1, dims=2)).mean(dim=(1, 2, 3)).pow(2)
            side = x.shape[2]
            if side <= 8:
                break
            x = x.reshape(x.shape[0], 1, side // 2, 2, side // 2, 2).mean(dim=(3, 5))
    return total


@torch.no_grad()
def normalize_noises_(noises: list[torch.Tensor]) -> None:
    """Re-standardise each noise map per image to zero mean and unit variance, in place."""
    for n in noises:
        mean = n.mean(dim=(1, 2, 3), keepdim=True)
        std = n.std(dim=(1, 2, 3), keepdim=True)
        n.sub_(mean).div_(std + 1e-8)
