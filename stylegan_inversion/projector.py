"""Projection (GAN inversion) by optimisation in W or W+, with the StyleGAN2 projector's
schedule: learning-rate ramp up/down, latent noise that decays, noise-map
regularisation and re-normalisation. Several targets are projected jointly but
independently (per-image losses are summed and Adam is element-wise)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import torch

from .images import area_downsample
from .losses import lpips_distance, mse_per_image, noise_regularizer, normalize_noises_
from .projection_settings import LOSS_TERMS, ProjectorConfig, lr_schedule

__all__ = ["LOSS_TERMS", "ProjectorConfig", "ProjectionResult", "lr_schedule", "project"]

log = logging.getLogger(__name__)

@dataclass
class ProjectionResult:
    ws: torch.Tensor  # [N, num_ws, w_dim], the projected latents (W: the same w in every row)
    noises: list[torch.Tensor]  # per layer [N, 1, r, r]
    images: torch.Tensor  # [N, 3, R, R] synthesised from ws and noises, in [-1, 1]
    final: list[dict]  # per image: the loss terms at the last step
    trace: list[dict] = field(default_factory=list)  # per step: mean loss terms and lr
    seconds: float = 0.0


def project(
    G,
    targets: torch.Tensor,
    cfg: ProjectorConfig,
    *,
    lpips_model=None,
    id_model=None,
    device=None,
) -> ProjectionResult:
    """Project targets [N, 3, H, W] in [-1, 1] (H = W; resized to the loss size) into G.

    The generator is frozen; only the latents (and noise maps unless disabled) are optimised.
    """
    terms = LOSS_TERMS[cfg.loss]
    if "lpips" in terms and lpips_model is None:
        raise ValueError("this loss needs an LPIPS model (lpips_model=...)")
    if "id" in terms and id_model is None:
        raise ValueError("this loss needs an identity network (id_model=...)")
    device = device or G.device
    G.freeze()
    n = targets.shape[0]
    loss_size = min(cfg.lpips_size, G.resolution)
    target = area_downsample(targets.to(device, torch.float32), loss_size)

    w_mean, w_std = G.w_stats(cfg.n_mean_latent, seed=cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    noises = [nz.detach().clone() for nz in G.make_noise(batch=n, seed=cfg.seed + 1, device=device)]
    for nz in noises:
        nz.requires_grad_(cfg.optimize_noise)
    rows = 1 if cfg.latent == "w" else G.num_ws
    latent = w_mean.detach().to(device).view(1, 1, -1).repeat(n, rows, 1).requires_grad_(True)
    params = [latent] + (noises if cfg.optimize_noise else [])
    opt = torch.optim.Adam(params, lr=cfg.lr)
    id_target = id_model.embed(target) if "id" in terms else None

    trace: list[dict] = []
    t0 = time.perf_counter()
    for step in range(cfg.steps):
        t = step / cfg.steps
        lr = lr_schedule(t, cfg.lr, cfg.lr_rampdown, cfg.lr_rampup)
        for g in opt.param_groups:
            g["lr"] = lr
        strength = w_std * cfg.noise * max(0.0, 1.0 - t / cfg.noise_ramp) ** 2
        jitter = torch.randn(latent.shape, generator=gen).to(device) * strength
        ws = (latent + jitter).expand(-1, G.num_ws, -1) if rows == 1 else latent + jitter
        img = area_downsample(G.synthesis(ws, noise=noises), loss_size)
        parts = _loss_terms(img, target, terms, lpips_model, id_model, id_target)
        per_image = sum(_weight(cfg, k) * v for k, v in parts.items())
        nreg = noise_regularizer(noises) if cfg.optimize_noise else torch.zeros(n, device=device)
        loss = (per_image + cfg.noise_regularize * nreg).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if cfg.optimize_noise:
            normalize_noises_(noises)
        rec = {"step": step + 1, "lr": lr, "loss": float(loss.detach()) / n, "noise_reg": float(nreg.detach().mean())}
        rec.update({k: float(v.detach().mean()) for k, v in parts.items()})
        trace.append(rec)
        if cfg.log_every and ((step + 1) % cfg.log_every == 0 or step == 0):
            log.info("step %d/%d %s", step + 1, cfg.steps, " ".join(f"{k}={v:.4g}" for k, v in rec.items() if k != "step"))

    with torch.no_grad():
        ws = latent.detach().expand(-1, G.num_ws, -1).clone() if rows == 1 else latent.detach().clone()
        images = G.synthesis(ws, noise=noises)
        img = area_downsample(images, loss_size)
        parts = _loss_terms(img, target, terms, lpips_model, id_model, id_target)
        final = [{k: float(v[i]) for k, v in parts.items()} for i in range(n)]
    return ProjectionResult(
        ws=ws, noises=[nz.detach() for nz in noises], images=images.detach(), final=final, trace=trace, seconds=time.perf_counter() - t0
    )


def _weight(cfg: ProjectorConfig, term: str) -> float:
    return {"lpips": cfg.lpips_weight, "mse": cfg.mse_weight, "id": cfg.id_weight}[term]


def _loss_terms(img, target, terms, lpips_model, id_model, id_target) -> dict[str, torch.Tensor]:
    parts: dict[str, torch.Tensor] = {}
    if "lpips" in terms:
        parts["lpips"] = lpips_distance(lpips_model, img, target)
    if "mse" in terms:
        parts["mse"] = mse_per_image(img, target)
    if "id" in terms:
        parts["id"] = 1.0 - (id_model.embed(img) * id_target).sum(dim=1)
    return parts
