"""Figures of the study: per question, a montage like the seed study's tables and a plot of
each metric against the question's levels with bootstrap 95% confidence intervals."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from .io import DIR_MODE, STATUS_OK, InputError, load_image, write_csv_atomic
from .stats import bootstrap_ci
from .study import IMAGE, INPUT, Question, Study

log = logging.getLogger(__name__)

PLOT_METRICS = [
    ("lpips_target", "LPIPS to the input (lower is better)"),
    ("psnr_target", "PSNR to the input, dB (higher is better)"),
    ("ssim_target", "SSIM to the input (higher is better)"),
    ("lpips_clean", "LPIPS to the clean aligned face (lower is better)"),
    ("id_sim_target", "identity similarity to the input (ArcFace cosine, higher is better)"),
    ("dlib_id_target", "dlib identity distance to the input (< 0.6: same person)"),
]
STAND_IN_BANNER = "STAND-IN RUN (not a finding)"


def question_rows(df: pd.DataFrame, q: Question) -> pd.DataFrame:
    """Rows of the metrics table that belong to question q, with a 'level' column in level order."""
    parts = []
    for lv in q.levels:
        sub = df[(df["condition"] == lv.condition.id) & (df["source"].isin(q.sources))].copy()
        sub["level"] = lv.label
        parts.append(sub)
    out = pd.concat(parts, ignore_index=True) if parts else df.iloc[0:0].assign(level=[])
    if q.yaw_bins:
        yaw = out["yaw"].astype(float).abs()
        out["level"] = pd.cut(yaw, bins=q.yaw_bins, labels=level_order(q), include_lowest=True).astype(object)
        out["level"] = out["level"].fillna("yaw unknown")
    return out


def level_order(q: Question) -> list[str]:
    """Level labels of a question in plotting order (|yaw| bins for the pose question)."""
    if q.yaw_bins:
        e = q.yaw_bins
        return [f"|yaw| {e[i]:g}-{e[i + 1]:g}°" for i in range(len(e) - 1)]
    return [lv.label for lv in q.levels]


def summarize(df: pd.DataFrame, study: Study, n_boot: int = 2000, ci: float = 0.95) -> pd.DataFrame:
    """Mean and bootstrap CI per question x level x metric, with counts of used and skipped images."""
    rows = []
    for q in study.questions.values():
        sub = question_rows(df, q)
        for level in level_order(q):
            lv = sub[sub["level"] == level]
            ok = lv[lv["status"] == STATUS_OK]
            for metric, _ in PLOT_METRICS + [("w_error", "")]:
                if metric not in ok:
                    continue
                vals = ok[metric].astype(float).tolist()
                if not any(np.isfinite(vals)):
                    continue
                mean, lo, hi = bootstrap_ci(vals, n_boot=n_boot, ci=ci, seed=study.item_seed("bootstrap", q.name, level, metric))
                rows.append({"question": q.name, "level": level, "metric": metric, "mean": mean, "ci_low": lo, "ci_high": hi,
                             "ci": ci, "n": int(np.isfinite(vals).sum()), "n_skipped": int((lv["status"] != STATUS_OK).sum())})
    return pd.DataFrame(rows, columns=["question", "level", "metric", "mean", "ci_low", "ci_high", "ci", "n", "n_skipped"])


def _title(study: Study, text: str, stand_in: bool) -> str:
    text = f"{study.config.get('study', 'study')}: {text}"
    return f"{STAND_IN_BANNER}: {text}" if stand_in else text


def plot_question(df: pd.DataFrame, summary: pd.DataFrame, study: Study, q: Question, out_png: Path, stand_in: bool) -> None:
    """One panel per metric: mean and 95% CI per level, individual images as dots."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sub = question_rows(df, q)
    ok = sub[sub["status"] == STATUS_OK]
    metrics = [(m, lab) for m, lab in PLOT_METRICS if m in ok and np.isfinite(ok[m].astype(float)).any()]
    levels = level_order(q)
    fig, axes = plt.subplots(1, max(1, len(metrics)), figsize=(4.2 * max(1, len(metrics)), 3.8), squeeze=False)
    rng = np.random.default_rng(0)
    for ax, (m, label) in zip(axes[0], metrics):
        s = summary[(summary["question"] == q.name) & (summary["metric"] == m)].set_index("level")
        xs = np.arange(len(levels))
        for x, level in zip(xs, levels):
            vals = ok[ok["level"] == level][m].astype(float)
            vals = vals[np.isfinite(vals)]
            ax.scatter(x + rng.uniform(-0.12, 0.12, len(vals)), vals, s=10, alpha=0.35, color="tab:gray")
            if level in s.index:
                r = s.loc[level]
                ax.errorbar(x, r["mean"], yerr=[[r["mean"] - r["ci_low"]], [r["ci_high"] - r["mean"]]], fmt="o", color="tab:blue", capsize=4)
        ax.set_xticks(xs, levels, rotation=30, ha="right", fontsize=8)
        ax.set_xlabel(q.factor, fontsize=8)
        ax.set_ylabel(label, fontsize=8)
        ax.grid(alpha=0.3)
    if not metrics:
        axes[0][0].text(0.5, 0.5, "no successful inversions", ha="center", va="center")
    n = len(ok)
    fig.suptitle(_title(study, f"{q.title}  (n={n} image x level; mean and 95% bootstrap CI)", stand_in), fontsize=10,
                 color="darkred" if stand_in else "black")
    fig.tight_layout()
    _save_fig(fig, out_png)
    plt.close(fig)


def _save_fig(fig, out_png: Path) -> None:
    from .io import atomic_path

    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, format="png", dpi=110)


def _thumb(path: Path, size: int) -> Image.Image:
    """A size x size thumbnail (aspect kept, on white); light grey where there is no image."""
    try:
        img = load_image(path)
    except InputError:
        return Image.new("RGB", (size, size), (235, 235, 235))
    img.thumbnail((size, size), Image.Resampling.LANCZOS)
    canvas = Image.new("RGB", (size, size), (255, 255, 255))
    canvas.paste(img, ((size - img.size[0]) // 2, (size - img.size[1]) // 2))
    return canvas


def montage_question(df: pd.DataFrame, study: Study, q: Question, out_png: Path, stand_in: bool, max_rows: int = 4, thumb: int = 96) -> None:
    """Rows of images: original | (input, inversion) for each level; like the seed study's tables."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sub = question_rows(df, q)
    ok_items = sub[sub["status"] == STATUS_OK]
    if q.yaw_bins:
        picks = []
        for level in level_order(q):
            cand = ok_items[ok_items["level"] == level]
            if len(cand):
                r = cand.iloc[len(cand) // 2]
                picks.append((r["source"], r["item"], [(level, r["condition"])]))
        columns = ["original", "input", "inversion"]
    else:
        counts = ok_items.groupby(["source", "item"]).size().sort_values(ascending=False)
        keys = list(counts.index[:max_rows])
        picks = [(s, i, [(lv.label, lv.condition.id) for lv in q.levels]) for s, i in keys]
        columns = ["original"] + [x for lv in q.levels for x in (f"{lv.label}\ninput", f"{lv.label}\ninversion")]
    ncols = len(columns)
    nrows = max(1, len(picks))
    fig, axes = plt.subplots(nrows, ncols, figsize=(1.25 * ncols + 0.3, 1.35 * nrows + 0.7), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for r, (source, item, lvls) in enumerate(picks):
        axes[r][0].imshow(_thumb(Path(INPUT.format(source=source, item=item)) / IMAGE, thumb))
        axes[r][0].set_title(f"{source}/{item}" if q.yaw_bins is None else f"{lvls[0][0]}", fontsize=6)
        for k, (_label, cid) in enumerate(lvls):
            c = study.conditions[cid]
            axes[r][1 + 2 * k].imshow(_thumb(Path(study.target_dir(c, source, item)) / IMAGE, thumb))
            axes[r][2 + 2 * k].imshow(_thumb(Path(study.projected_dir(cid, source, item)) / IMAGE, thumb))
    for k, name in enumerate(columns):
        axes[0][k].set_title((axes[0][k].get_title() + "\n" if k == 0 and axes[0][k].get_title() else "") + name, fontsize=6)
    if not picks:
        axes[0][0].text(0.5, 0.5, "no successful inversions", ha="center", va="center", fontsize=8)
    fig.suptitle(_title(study, q.title, stand_in), fontsize=9, color="darkred" if stand_in else "black")
    fig.tight_layout()
    _save_fig(fig, out_png)
    plt.close(fig)


def make_figures(metrics_csv: Path, study: Study, out_dir: Path, n_boot: int = 2000, ci: float = 0.95) -> list[Path]:
    """All figures and tables of the study into out_dir (written to a temp folder, then renamed)."""
    import shutil
    import tempfile

    from .io import replace_dir_atomic

    df = pd.read_csv(metrics_csv)
    stand_in = study.is_stand_in() or ("stand_in" in df and df["stand_in"].astype(str).str.lower().eq("true").any())
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    tmp.chmod(DIR_MODE)
    try:
        summary = summarize(df, study, n_boot=n_boot, ci=ci)
        summary.insert(0, "stand_in", stand_in)
        write_csv_atomic(tmp / "summary.csv", summary.to_dict("records"), list(summary.columns))
        cols = ["source", "item", "condition", "status", "reason"]
        skipped = df[df["status"] != STATUS_OK][cols].drop_duplicates(["source", "item", "status", "reason"]).assign(stand_in=stand_in)
        write_csv_atomic(tmp / "skipped_inputs.csv", skipped.to_dict("records"), cols + ["stand_in"])
        for q in study.questions.values():
            plot_question(df, summary, study, q, tmp / f"{q.name}_metrics.png", stand_in)
            montage_question(df, study, q, tmp / f"{q.name}_montage.png", stand_in)
        replace_dir_atomic(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return sorted(out_dir.iterdir())

