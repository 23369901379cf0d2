"""File-level stage functions called by the thin scripts: each reads inputs, writes its
outputs atomically with a stage CSV, and records (rather than raises on) bad inputs."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from .io import STATUS_OK, InputError, StageRecorder, load_image, resolve_inputs, save_png_atomic, atomic_path, write_csv_atomic
from .study import derive_seed

log = logging.getLogger(__name__)


def display_name(path: Path) -> str:
    """Stable per-image name for seeding: the stem, or '<source>/<item>' for workflow item folders."""
    path = Path(path)
    if path.stem == "image" and path.parent.parent.name:
        return f"{path.parent.parent.name}/{path.parent.name}"
    return path.stem


# ------------------------------------------------------------------ generate


def ingest_files(paths: list[Path], out_dir: Path, max_pixels: int, out_stem: str | None = None) -> list[dict]:
    """Normalise images (EXIF, modes, size limit) to RGB PNGs in out_dir with a generate.csv."""
    from .generate import ingest_image

    rec = StageRecorder(out_dir, "generate", ["output", "width", "height"])
    for p in paths:
        p = Path(p)
        rec.add(ingest_image(p, Path(out_dir) / f"{out_stem or p.stem}.png", max_pixels))
    rec.finish()
    return rec.rows


def sample_items(weights: Path, seeds: list[int], out_dir: Path, truncation: float, device="auto", stem: str | None = None) -> list[dict]:
    """Generator samples as PNGs plus .npz ground truth (z, w, seeds) and a generate.csv."""
    from .generate import generate_sample
    from .stylegan2 import load_generator

    G = load_generator(weights, device=device)
    rec = StageRecorder(out_dir, "generate", ["output", "seed", "truncation", "generator", "stand_in"])
    stand_in = bool((G.meta or {}).get("stand_in", False))
    for s in seeds:
        img, truth = generate_sample(G, s, truncation)
        name = stem or f"seed{s:06d}"
        save_png_atomic(img, Path(out_dir) / f"{name}.png")
        with atomic_path(Path(out_dir) / f"{name}.npz") as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, **truth)
        rec.add({"input": str(weights), "output": f"{name}.png", "status": STATUS_OK, "reason": "", "seed": s,
                 "truncation": truncation, "generator": str(weights), "stand_in": stand_in})
    rec.finish()
    return rec.rows


# ------------------------------------------------------------------- degrade


def degrade_files(paths: list[Path], op: str, level: float, seed: int, out_dir: Path) -> list[dict]:
    """Degrade each image (seed derived per image from ``seed`` and its name); writes degrade.csv."""
    from . import degrade as deg

    deg.validate(op, level)
    out_dir = Path(out_dir)
    rec = StageRecorder(out_dir, "degrade", ["output", "op", "level", "seed", "psnr_vs_input", "params"])
    for inp in resolve_inputs(paths):
        base = {"input": str(inp.path), "op": op, "level": level}
        if inp.skip_status:
            rec.add(base | {"status": inp.skip_status, "reason": inp.skip_reason})
            continue
        try:
            img = load_image(inp.path)
        except InputError as e:
            rec.add(base | {"status": e.status, "reason": e.reason})
            continue
        s = derive_seed(seed, op, level, display_name(inp.path))
        out = deg.apply(img, op, level, s)
        save_png_atomic(out.image, out_dir / f"{inp.path.stem}.png")
        rec.add(base | {"output": f"{inp.path.stem}.png", "status": STATUS_OK, "reason": "", "seed": s,
                        "psnr_vs_input": round(deg.psnr_uint8(img, out.image), 4), "params": out.params})
    rec.finish()
    return rec.rows


# ------------------------------------------------------------------- project


def project_files(
    paths: list[Path],
    out_dir: Path,
    weights: Path,
    cfg,
    lpips_net: str = "vgg",
    lpips_backbone: str = "pretrained",
    device="auto",
    batch_size: int = 1,
    identity: Path | None = None,
    tune_cpu_memory: bool = False,
) -> list[dict]:
    """Project each target image into the generator; writes <stem>.png/.npz/_trace.csv and project.csv.

    ``identity`` is the identity network file the id losses need (ArcFace IR-SE50 or a stand-in);
    ``tune_cpu_memory`` lets glibc reuse freed activation memory on the CPU (process-wide, for CLIs).
    Inputs skipped upstream are recorded without loading torch or any network.
    """
    from .projection_settings import LOSS_TERMS

    out_dir = Path(out_dir)
    rec = StageRecorder(out_dir, "project", ["output", "generator", "resolution", "stand_in", "stand_in_reason", "loss", "latent",
                                              "steps", "seconds", "device", "lpips_net", "lpips_backbone", "params"])
    todo, images = [], []
    for inp in resolve_inputs(paths):
        if inp.skip_status:
            rec.add({"input": str(inp.path), "status": inp.skip_status, "reason": inp.skip_reason})
            continue
        try:
            images.append(load_image(inp.path))
            todo.append(inp)
        except InputError as e:
            rec.add({"input": str(inp.path), "status": e.status, "reason": e.reason})
    if not todo:
        rec.finish()
        return rec.rows

    import torch

    from .device import resolve_device
    from .images import pil_to_tensor, tensor_to_pil
    from .losses import load_lpips
    from .projector import project
    from .stylegan2 import load_generator, tune_cpu_allocator

    dev = resolve_device(device)
    if tune_cpu_memory and dev.type == "cpu":
        tune_cpu_allocator()
    G = load_generator(weights, device=dev)
    stand_in_g = bool((G.meta or {}).get("stand_in", False))
    reasons = []
    if stand_in_g:
        reasons.append("tiny random stand-in generator")
    lp = None
    if "lpips" in LOSS_TERMS[cfg.loss]:
        lp = load_lpips(lpips_net, lpips_backbone, device=dev, seed=cfg.seed)
        if lpips_backbone == "random":
            reasons.append(f"LPIPS-{lpips_net} with a random backbone (not LPIPS)")
    id_model = None
    if "id" in LOSS_TERMS[cfg.loss]:
        if identity is None:
            raise ValueError(f"loss {cfg.loss!r} needs an identity network (--identity FILE)")
        from .identity import load_irse50

        id_model = load_irse50(identity, device=dev)
        if id_model.stand_in:
            reasons.append(f"stand-in identity network ({id_model.description})")
    common = {"generator": str(weights), "resolution": G.resolution, "stand_in": bool(reasons), "stand_in_reason": "; ".join(reasons),
              "loss": cfg.loss, "latent": cfg.latent, "steps": cfg.steps, "device": str(dev), "lpips_net": lpips_net,
              "lpips_backbone": lpips_backbone, "params": cfg.to_dict()}
    for start in range(0, len(todo), batch_size):
        chunk = todo[start : start + batch_size]
        target = torch.stack([pil_to_tensor(img, G.resolution) for img in images[start : start + batch_size]])
        res = project(G, target, cfg, lpips_model=lp, id_model=id_model, device=dev)
        per = res.seconds / len(chunk)
        for i, inp in enumerate(chunk):
            stem = inp.path.stem
            save_png_atomic(tensor_to_pil(res.images[i]), out_dir / f"{stem}.png")
            with atomic_path(out_dir / f"{stem}.npz") as tmp:
                with open(tmp, "wb") as f:
                    np.savez_compressed(
                        f, ws=res.ws[i].cpu().numpy().astype(np.float32),
                        **{f"noise_{k}": nz[i, 0].cpu().numpy().astype(np.float16) for k, nz in enumerate(res.noises)},
                    )
            write_csv_atomic(out_dir / f"{stem}_trace.csv", res.trace)
            final = {f"final_{k}": round(v, 6) for k, v in res.final[i].items()}
            rec.add({"input": str(inp.path), "output": f"{stem}.png", "status": STATUS_OK, "reason": "", "seconds": round(per, 3)} | common | final)
    rec.finish()
    return rec.rows


def read_stage_row(item_dir: Path, stage: str) -> dict:
    """The single row of a workflow item folder's ``<stage>.csv`` (status 'missing' if there is none)."""
    from .io import read_csv

    path = Path(item_dir) / f"{stage}.csv"
    rows = read_csv(path) if path.is_file() else []
    return dict(rows[0]) if rows else {"status": "missing", "reason": f"no {stage} record in {item_dir}"}

