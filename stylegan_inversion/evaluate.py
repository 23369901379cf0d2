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
from .study import FACTORS, IMAGE, INPUT, Study

log = logging.getLogger(__name__)

METRIC_COLUMNS = ["lpips_target", "psnr_target", "ssim_target", "lpips_clean", "psnr_clean", "ssim_clean",
                  "id_sim_target", "dlib_id_target", "w_error"]
POSE_COLUMNS = ["yaw", "pitch", "roll"]


def _float(v) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


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
    arow = read_stage_row(clean_dir, "align")
    for k in POSE_COLUMNS:
        row[k] = _float(arow.get(k))
    prow = read_stage_row(proj_dir, "project")
    row["status"] = prow.get("status", "missing")
    row["reason"] = prow.get("reason", "")
    row["projection_seconds"] = _float(prow.get("seconds"))
    row.update({k: _float(v) for k, v in prow.items() if k.startswith("final_")})
    for k in METRIC_COLUMNS:
        row[k] = math.nan
    if row["status"] != STATUS_OK:
        return row
    pred, target, clean = (_load_pil(d / IMAGE) for d in (proj_dir, target_dir, clean_dir))
    if pred is None or target is None:
        row.update(status="missing", reason=f"image missing in {proj_dir if pred is None else target_dir}")
        return row
    from .metrics import image_metrics

    pred_t = pil_to_tensor(pred, metric_size).unsqueeze(0)
    for ref, suffix in ((target, "target"), (clean, "clean")):
        if ref is None:
            continue
        m = image_metrics(pred_t, pil_to_tensor(ref, metric_size).unsqueeze(0), lpips_model)
        for k, v in m.items():
            row[f"{k}_{suffix}"] = float(v[0])
    if id_model is not None:
        size = max(112, metric_size)
        with torch.no_grad():
            a, b = (pil_to_tensor(x, size).unsqueeze(0).to(id_model.device) for x in (pred, target))
            row["id_sim_target"] = float(id_model.similarity(a, b)[0])
    if dlib_identity:
        from .identity import dlib_identity_distance

        row["dlib_id_target"] = dlib_identity_distance(pred, target)
    src = study.sources[source]
    if src.kind == "samples" and src.spec.get("generator") == c.generator:
        truth = Path(INPUT.format(source=source, item=item)) / "image.npz"
        latent = proj_dir / "image.npz"
        if truth.is_file() and latent.is_file():
            w_true = np.load(truth)["w"]
            ws = np.load(latent)["ws"]
            row["w_error"] = float(np.linalg.norm(ws - w_true[None, :], axis=1).mean() / math.sqrt(w_true.size))
    return row


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
    reasons = study.stand_in_reasons()  # every row, skipped ones included, says when numbers are not findings
    df["stand_in"] = bool(reasons)
    df["stand_in_reason"] = "; ".join(reasons)
    cols = ["condition", "source", "item", *FACTORS, "status", "reason", *POSE_COLUMNS, *METRIC_COLUMNS]
    return df[[c for c in cols if c in df] + [c for c in df if c not in cols]]
