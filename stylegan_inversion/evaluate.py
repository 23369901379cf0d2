"""The metrics stage: one tidy row per image x condition, one column per factor and per metric."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .images import pil_to_tensor
from .io import STATUS_OK, InputError, load_image
from .stages import read_stage_row
from .study import FACTORS, IMAGE, Study

log = logging.getLogger(__name__)

METRIC_COLUMNS = ["lpips_target", "psnr_target", "ssim_target", "lpips_clean", "psnr_clean", "ssim_clean",
                  "id_sim_target", "dlib_id_target", "w_error"]
POSE_COLUMNS = ["yaw", "pitch", "roll"]


def _float(v) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def _load(path: Path, size: int) -> torch.Tensor | None:
    try:
        return pil_to_tensor(load_image(path), size).unsqueeze(0)
    except InputError:
        return None


def _load_pil(path: Path):
    try:
        return load_image(path)
    except InputError:
        return None


def item_metrics(
    study: Study,
    cid: str,
    source: str,
    item: str,
    metric_size: int,
    lpips_model=None,
    id_model=None,
    dlib_identity: bool = False,
) -> dict:
    """Metrics of one item under one condition, or a row saying why it was skipped.

    ``id_sim_target``: cosine similarity of identity-network embeddings (ArcFace, or a stand-in);
    ``dlib_id_target``: dlib face-descriptor distance (< 0.6 is dlib's same-person threshold).
    """
    c = study.conditions[cid]
    row: dict = {"condition": cid, "source": source, "item": item} | c.factors()
    proj_dir = Path(study.projected_dir(cid, source, item))
    target_dir = Path(study.target_dir(c, source, item))
    clean_dir = Path(study.clean_dir(c, source, item))
    arow = read_stage_row(clean_dir)
    for k in POSE_COLUMNS:
        row[k] = _float(arow.get(k))
    prow = read_stage_row(proj_dir)
    row["status"] = prow.get("status", "missing")
    row["reason"] = prow.get("reason", "")
    row["stand_in"] = prow.get("stand_in", "")
    row["stand_in_reason"] = prow.get("stand_in_reason", "")
    row["projection_seconds"] = _float(prow.get("seconds"))
    for k in ("final_lpips", "final_mse"):
        row[k] = _float(prow.get(k))
    for k in METRIC_COLUMNS:
        row[k] = math.nan
    if row["status"] != STATUS_OK:
        return row
    pred = _load(proj_dir / IMAGE, metric_size)
    target = _load(target_dir / IMAGE, metric_size)
    clean = _load(clean_dir / IMAGE, metric_size)
    if pred is None or target is None:
        row.update(status="missing", reason=f"image missing in {proj_dir if pred is None else target_dir}")
        return row
    from .metrics import image_metrics

    for ref, suffix in ((target, "target"), (clean, "clean")):
        if ref is None:
            continue
        m = image_metrics(pred, ref, lpips_model)
        for k, v in m.items():
            row[f"{k}_{suffix}"] = float(v[0])
    if id_model is not None:
        size = max(112, metric_size)
        with torch.no_grad():
            a, b = _load(proj_dir / IMAGE, size), _load(target_dir / IMAGE, size)
            row["id_sim_target"] = float(id_model.similarity(a.to(id_model.device), b.to(id_model.device))[0])
    if dlib_identity:
        from .identity import dlib_identity_distance

        row["dlib_id_target"] = dlib_identity_distance(_load_pil(proj_dir / IMAGE), _load_pil(target_dir / IMAGE))
    src = study.sources[source]
    if src.kind == "samples" and src.spec.get("generator") == c.generator:
        truth = Path(study_input_dir(source, item)) / "image.npz"
        latent = proj_dir / "image.npz"
        if truth.is_file() and latent.is_file():
            w_true = np.load(truth)["w"]
            ws = np.load(latent)["ws"]
            row["w_error"] = float(np.linalg.norm(ws - w_true[None, :], axis=1).mean() / math.sqrt(w_true.size))
    return row


def study_input_dir(source: str, item: str) -> str:
    from .study import INPUT

    return INPUT.format(source=source, item=item)


def condition_metrics(
    study: Study,
    cid: str,
    items: dict[str, list[str]],
    metric_size: int,
    lpips_net: str,
    lpips_backbone: str,
    device="cpu",
    identity: Path | None = None,
    dlib_identity: bool = False,
) -> pd.DataFrame:
    """Rows for every (source, item) of a condition; LPIPS from the configured metric network."""
    from .losses import load_lpips

    lp = load_lpips(lpips_net, lpips_backbone, device=device, seed=study.seed)
    id_model = None
    if identity is not None:
        from .identity import load_irse50

        id_model = load_irse50(identity, device=device)
    rows = [item_metrics(study, cid, s, i, metric_size, lp, id_model, dlib_identity) for s, its in items.items() for i in its]
    df = pd.DataFrame(rows)
    df["lpips_metric"] = f"LPIPS-{lpips_net}" + (" (random backbone: stand-in, not LPIPS)" if lpips_backbone == "random" else "")
    if lpips_backbone == "random":
        _mark_stand_in(df, "metric LPIPS with a random backbone")
    if id_model is not None and id_model.stand_in:
        _mark_stand_in(df, "identity metric from a stand-in network")
    cols = ["condition", "source", "item", *FACTORS, "status", "reason", *POSE_COLUMNS, *METRIC_COLUMNS]
    return df[[c for c in cols if c in df] + [c for c in df if c not in cols]]


def _mark_stand_in(df: pd.DataFrame, reason: str) -> None:
    """Flag every row as a stand-in and append the reason to its stand_in_reason."""
    df["stand_in"] = True
    old = df["stand_in_reason"].fillna("").astype(str) if "stand_in_reason" in df else pd.Series([""] * len(df), index=df.index)
    df["stand_in_reason"] = [f"{r}; {reason}" if r else reason for r in old]
