"""Image-similarity metrics (PSNR, SSIM, LPIPS) on tensors; confidence intervals are in stats.py."""

from __future__ import annotations


import torch
import torch.nn.functional as F

from .losses import lpips_distance


def psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """PSNR in dB per image for tensors [N, 3, H, W] in [-1, 1] (data range 2)."""
    mse = (a - b).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(4.0 / mse.clamp_min(1e-12))


def _gaussian_window(size: int = 11, sigma: float = 1.5, device=None, dtype=torch.float32) -> torch.Tensor:
    x = torch.arange(size, dtype=dtype, device=device) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def ssim(a: torch.Tensor, b: torch.Tensor, window: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """SSIM per image (Wang et al. 2004: Gaussian window 11/1.5, K1=0.01, K2=0.03), mean over channels.

    a, b: [N, 3, H, W] in [-1, 1]; computed on [0, 1] with 'valid' windows.
    """
    x = (a.double() + 1) / 2
    y = (b.double() + 1) / 2
    c = x.shape[1]
    win = min(window, x.shape[-1], x.shape[-2])
    if win % 2 == 0:
        win -= 1
    g = _gaussian_window(win, sigma, x.device, x.dtype)
    kh = g.view(1, 1, win, 1).repeat(c, 1, 1, 1)
    kw = g.view(1, 1, 1, win).repeat(c, 1, 1, 1)

    def filt(t):
        return F.conv2d(F.conv2d(t, kh, groups=c), kw, groups=c)

    mx, my = filt(x), filt(y)
    sxx = filt(x * x) - mx * mx
    syy = filt(y * y) - my * my
    sxy = filt(x * y) - mx * my
    c1, c2 = 0.01**2, 0.03**2
    s = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
    return s.flatten(1).mean(1).float()


@torch.no_grad()
def image_metrics(pred: torch.Tensor, ref: torch.Tensor, lpips_model=None) -> dict[str, torch.Tensor]:
    """LPIPS, PSNR and SSIM per image between pred and ref [N, 3, H, W] in [-1, 1]."""
    out = {"psnr": psnr(pred, ref), "ssim": ssim(pred, ref)}
    if lpips_model is not None:
        out["lpips"] = lpips_distance(lpips_model, pred, ref)
    return out
