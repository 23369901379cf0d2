"""The whole study DAG: the offline demo end to end, caching, incremental re-runs, bad config."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pandas as pd
import pytest

from helpers import DEMO_CONFIG, REPO

SNAKEMAKE = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile")]


def snakemake(workdir, *args, check=True, timeout=900):
    """Run Snakemake on the repository's workflow with its outputs in workdir."""
    cmd = SNAKEMAKE + ["-d", str(workdir), *args]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}")
    return proc


def planned_jobs(proc) -> dict[str, int]:
    """Job counts per rule from a dry run's 'Job stats' table."""
    text = proc.stdout + proc.stderr
    if "Nothing to be done" in text:
        return {}
    table = text.split("Job stats:")[1].split("\n\n")[0]
    counts = {}
    for line in table.splitlines():
        m = re.match(r"^(\w+)\s+(\d+)$", line.strip())
        if m and m.group(1) != "total":
            counts[m.group(1)] = int(m.group(2))
    return counts


def planned_items(proc) -> set[str]:
    return set(re.findall(r"item=([A-Za-z0-9._-]+)", proc.stdout + proc.stderr))


DEMO = ["--configfile", str(DEMO_CONFIG)]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The offline demo run once (the slow part of the suite, about 2-4 minutes on 2 cores)."""
    wd = tmp_path_factory.mktemp("demo")
    snakemake(wd, "--cores", "2", "results/figures", *DEMO)
    return wd


@pytest.mark.slow
def test_demo_makes_figures_labelled_stand_in(demo):
    figs = demo / "results" / "figures"
    names = {p.name for p in figs.iterdir()}
    for q in ("alignment", "pose", "jpeg", "real_world", "image_size", "latent_space"):
        assert f"{q}_montage.png" in names and f"{q}_metrics.png" in names
    summary = pd.read_csv(figs / "summary.csv")
    assert summary["stand_in"].all()
    assert {"question", "level", "metric", "mean", "ci_low", "ci_high", "n"} <= set(summary.columns)
    ok = summary.dropna(subset=["mean"])
    assert ((ok["ci_low"] <= ok["mean"]) & (ok["mean"] <= ok["ci_high"])).all()


@pytest.mark.slow
def test_demo_metrics_table_is_tidy_and_records_skips(demo):
    df = pd.read_csv(demo / "results" / "metrics.csv")
    for col in ("condition", "source", "item", "generator", "alignment", "size", "degrade", "degrade_order", "loss", "latent",
                "status", "reason", "yaw", "lpips_target", "psnr_target", "ssim_target", "stand_in", "stand_in_reason"):
        assert col in df.columns, col
    assert not df.duplicated(["condition", "source", "item"]).any()
    assert df["stand_in"].astype(str).str.lower().eq("true").all()
    ok = df[df["status"] == "ok"]
    assert len(ok) >= 40 and ok["psnr_target"].notna().all() and ok["lpips_target"].notna().all()
    # the two bad photos are skipped with their reasons, in every condition, and listed for the report
    # (a photo without a face still has a centre crop: only FFHQ alignment needs the face)
    photos = df[df["source"] == "photos"]
    camera = photos[photos["item"] == "camera"]
    aligned = camera["alignment"] == "ffhq"
    assert (camera[aligned]["status"] == "skipped").all() and camera[aligned]["reason"].str.contains("no_face").all()
    assert (camera[~aligned]["status"] == "ok").all() and len(camera[~aligned]) == 1
    corrupt = photos[photos["item"] == "corrupt"]
    assert (corrupt["status"] == "skipped").all() and corrupt["reason"].str.contains("unreadable").all()
    skipped = pd.read_csv(demo / "results" / "figures" / "skipped_inputs.csv")
    assert {"camera", "corrupt"} <= set(skipped["item"])
    # generator samples have a ground-truth latent, so latent error is measured for them
    assert df[(df["source"] == "samples") & (df["status"] == "ok")]["w_error"].notna().all()


@pytest.mark.slow
def test_second_run_has_nothing_to_do(demo):
    proc = snakemake(demo, "-n", "--cores", "2", "results/figures", *DEMO)
    assert planned_jobs(proc) == {}


@pytest.mark.slow
def test_projector_change_reruns_only_projection_and_downstream(demo, tmp_path):
    import yaml

    from helpers import demo_config

    cfg = demo_config()
    cfg["project"]["steps"] += 1
    changed = tmp_path / "demo-steps.yaml"
    changed.write_text(yaml.safe_dump(cfg))
    proc = snakemake(demo, "-n", "--cores", "2", "results/figures", "--configfile", str(changed))
    jobs = planned_jobs(proc)
    assert set(jobs) == {"project_image", "compute_metrics", "collect_metrics", "plot_figures"}, jobs


@pytest.mark.slow
def test_figure_setting_change_reruns_only_figures(demo, tmp_path):
    import yaml

    from helpers import demo_config

    cfg = demo_config()
    cfg["metrics"]["bootstrap"] += 100
    cfg["questions"]["jpeg"]["title"] = "JPEG, retitled"
    changed = tmp_path / "demo-figures.yaml"
    changed.write_text(yaml.safe_dump(cfg))
    proc = snakemake(demo, "-n", "--cores", "2", "results/figures", "--configfile", str(changed))
    assert planned_jobs(proc) == {"plot_figures": 1}


@pytest.mark.slow
def test_adding_an_image_runs_only_its_jobs(demo):
    photos = "[astronaut, grace_hopper, t1, tom_hanks, camera, corrupt, coffee]"
    proc = snakemake(demo, "-n", "--cores", "2", "results/figures", *DEMO,
                     "--config", f"sources={{photos: {{kind: bundled, photos: {photos}}}}}")
    assert planned_items(proc) == {"coffee"}
    jobs = planned_jobs(proc)
    assert jobs["copy_bundled_photo"] == 1 and "make_stand_in_weights" not in jobs and "extract_frames" not in jobs


def test_dry_run_of_demo_builds_whole_dag(tmp_path):
    proc = snakemake(tmp_path, "-n", "--cores", "2", "results/figures", *DEMO)
    jobs = planned_jobs(proc)
    for rule in ("make_stand_in_weights", "copy_bundled_photo", "extract_frames", "generate_sample", "align_face",
                 "degrade_aligned", "degrade_raw", "project_image", "compute_metrics", "plot_figures"):
        assert jobs.get(rule, 0) >= 1, (rule, jobs)


def test_bad_config_value_stops_with_the_key(tmp_path):
    proc = snakemake(tmp_path, "-n", "results/figures", *DEMO, "--config", "project={steps: 0}", check=False)
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "steps" in out and "minimum" in out


def test_real_study_missing_video_is_named(tmp_path):
    proc = snakemake(tmp_path, "-n", "--cores", "1", "results/figures", "--configfile", str(REPO / "config.yaml"), check=False)
    assert proc.returncode != 0
    assert "data/videos/0xjr1vVzFKY_0.mp4 not found" in proc.stdout + proc.stderr


def test_small_factorial_study_expands_to_the_expected_jobs(tmp_path):
    """Hand-counted DAG of a 2-source, 5-condition study (3 photos in a folder, 2 samples)."""
    import yaml
    from PIL import Image

    from helpers import demo_config

    (tmp_path / "data" / "images").mkdir(parents=True)
    for name in ("a", "b", "c"):
        Image.new("RGB", (16, 16)).save(tmp_path / "data" / "images" / f"{name}.png")
    cfg = demo_config()
    cfg["sources"] = {"photos": {"kind": "folder", "path": "data/images"},
                      "samples": {"kind": "samples", "generator": "tiny", "n": 2}}
    cfg["questions"] = {
        "quality": {"title": "q", "sources": ["photos"], "levels": [
            {"label": "clean"}, {"label": "j", "set": {"degrade": "jpeg-10"}}, {"label": "b", "set": {"degrade": "blur-2"}},
            {"label": "r", "set": {"degrade": "realworld-0.5", "degrade_order": "before_align"}}]},
        "latent": {"title": "l", "sources": ["samples", "photos"], "levels": [{"label": "W+"}, {"label": "W", "set": {"latent": "w"}}]},
    }
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(cfg))
    proc = snakemake(tmp_path, "-n", "results/figures", "--configfile", str(tmp_path / "study.yaml"))
    assert planned_jobs(proc) == {
        "make_stand_in_weights": 2, "ingest_image": 3, "generate_sample": 2,
        "degrade_raw": 3, "align_face": 8, "degrade_aligned": 6,
        "project_image": 19, "compute_metrics": 5, "collect_metrics": 1, "plot_figures": 1,
    }


def test_offline_weights_fail_with_one_clear_message(tmp_path):
    """The real study's download stage, pointed at a closed local port: one message, no traceback."""
    import yaml

    from helpers import real_config

    url = "http://127.0.0.1:9/ffhq.pkl"  # the discard port: connection refused, like a machine without network
    cfg = real_config()
    cfg["weights"]["ffhq1024"].update(url=url)
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(cfg))
    proc = snakemake(tmp_path, "--cores", "1", "data/weights/ffhq1024.pt", "--configfile", str(tmp_path / "study.yaml"),
                     check=False, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "ffhq1024" in out and url in out and "data/weights/ffhq1024.pt" in out
    assert "Traceback" not in out
    assert not (tmp_path / "data" / "weights" / "ffhq1024.pt").exists()
