"""Summary statistics and figures from a metrics table (synthetic rows, the real code path)."""

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from helpers import demo_config
from stylegan_inversion.figures import make_figures, question_rows, summarize
from stylegan_inversion.io import save_png_atomic
from stylegan_inversion.study import Study


def fake_metrics(study: Study, rng) -> pd.DataFrame:
    rows = []
    for cid, c in study.conditions.items():
        for source in study.condition_sources(cid):
            for k in range(6):
                bad = source == "photos" and k == 5
                rows.append({"condition": cid, "source": source, "item": f"i{k}", **c.factors(),
                             "status": "skipped" if bad else "ok", "reason": "align: no_face: none" if bad else "",
                             "yaw": float(rng.uniform(-30, 30)), "lpips_target": np.nan if bad else float(rng.uniform(0.1, 0.5)),
                             "psnr_target": np.nan if bad else float(rng.uniform(15, 30)), "ssim_target": np.nan if bad else 0.5,
                             "lpips_clean": np.nan, "w_error": np.nan, "stand_in": True})
    return pd.DataFrame(rows)


@pytest.fixture
def study():
    return Study(demo_config())


def test_question_rows_and_yaw_bins(study):
    df = fake_metrics(study, np.random.default_rng(0))
    q = study.questions["jpeg"]
    rows = question_rows(df, q)
    assert list(dict.fromkeys(rows["level"])) == ["clean", "q30", "q5"]
    assert set(rows["source"]) == {"photos"}
    pose = question_rows(df, study.questions["pose"])
    assert set(pose["level"]) <= {"|yaw| 0-5°", "|yaw| 5-10°", "|yaw| 10-90°", "yaw unknown"}
    inside = pose[pose["level"] == "|yaw| 10-90°"]
    assert (inside["yaw"].abs() > 10).all()


def test_summary_counts_and_intervals(study):
    df = fake_metrics(study, np.random.default_rng(1))
    s = summarize(df, study, n_boot=200)
    row = s[(s["question"] == "jpeg") & (s["level"] == "q5") & (s["metric"] == "psnr_target")].iloc[0]
    assert row["n"] == 5 and row["n_skipped"] == 1
    assert row["ci_low"] <= row["mean"] <= row["ci_high"]
    expect = df[(df["condition"] == study.questions["jpeg"].levels[2].condition.id) & (df["status"] == "ok")]["psnr_target"].mean()
    assert row["mean"] == pytest.approx(expect)


def test_make_figures_writes_everything_and_says_stand_in(study, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    df = fake_metrics(study, np.random.default_rng(2))
    for _, r in df.iterrows():  # the montage reads the images behind each row
        c = study.conditions[r["condition"]]
        for d in (f"results/inputs/{r['source']}/{r['item']}", study.target_dir(c, r["source"], r["item"]),
                  study.projected_dir(r["condition"], r["source"], r["item"])):
            save_png_atomic(Image.new("RGB", (32, 32), (100, 150, 200)), tmp_path / d / "image.png")
    df.to_csv(tmp_path / "metrics.csv", index=False)
    out = tmp_path / "figures"
    out.mkdir()
    (out / "stale.png").write_bytes(b"old figure from an earlier run")
    files = {p.name for p in make_figures(tmp_path / "metrics.csv", study, out, n_boot=100)}
    assert "stale.png" not in files
    for q in study.questions:
        assert {f"{q}_metrics.png", f"{q}_montage.png"} <= files
        assert Image.open(out / f"{q}_metrics.png").size[0] > 200
    summary = pd.read_csv(out / "summary.csv")
    assert summary["stand_in"].all()
    skipped = pd.read_csv(out / "skipped_inputs.csv")
    assert set(skipped["item"]) == {"i5"} and skipped["reason"].str.contains("no_face").all()
