"""Registry entries -> files: download, extraction, conversion and the download_weights.py CLI, on a 127.0.0.1 server."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

from helpers import REPO, tiny_generator_file
from stylegan_inversion.download import MIRROR_ENV
from stylegan_inversion.weights import (
    WeightsError,
    default_output,
    ensure_weights,
    entry_urls,
    load_registry,
    torch_hub_path,
)
from test_download import closed_port_url, payload, sha

FAST = {"retries": 0, "backoff": 0.01, "stall_timeout": 5.0}
CLI = [sys.executable, str(REPO / "scripts" / "download_weights.py")]


def run_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    e = {k: v for k, v in os.environ.items() if k != MIRROR_ENV}
    e.update(env or {})
    return subprocess.run([*CLI, *args, "--retries", "0", "--backoff", "0.01", "--stall-timeout", "5"],
                          capture_output=True, text=True, env=e, timeout=120)


def test_plain_url_entry_is_downloaded_and_verified(server, tmp_path):
    data = payload()
    entry = {"kind": "url", "url": server.add("/vgg16-397923af.pth", data), "sha256": sha(data), "size": len(data),
             "licence": "BSD-3-Clause (torchvision)"}
    out = ensure_weights("lpips-vgg", entry, tmp_path / "hub" / "checkpoints" / "vgg16-397923af.pth", **FAST)
    assert out.read_bytes() == data
    assert ensure_weights("lpips-vgg", entry, out, **FAST) == out  # second call: no request
    assert len(server.requests) == 1


def test_convert_entry_downloads_then_writes_a_rosinality_checkpoint(server, tmp_path):
    # NVIDIA pickles cannot be made here; a rosinality .pt exercises the same download -> load -> save path.
    src = tiny_generator_file(tmp_path / "src" / "g.pt", resolution=16, seed=3)
    data = src.read_bytes()
    entry = {"kind": "url", "url": server.add("/nets/g.pt", data), "sha256": sha(data), "convert": "nvidia_pkl"}
    out = ensure_weights("tiny", entry, tmp_path / "weights" / "tiny.pt", **FAST)
    assert (tmp_path / "weights" / "downloads" / "g.pt").read_bytes() == data  # raw download kept for re-runs
    import torch

    from stylegan_inversion.stylegan2 import load_generator

    ckpt = torch.load(out, map_location="cpu", weights_only=False)
    assert "g_ema" in ckpt
    a, b = load_generator(src, device="cpu"), load_generator(out, device="cpu")
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    n = len(server.requests)
    ensure_weights("tiny", entry, out, **FAST)
    assert len(server.requests) == n  # finished file present: nothing fetched


def test_zip_entry_extracts_the_named_member(server, tmp_path):
    model = payload(5000, 7)
    zpath = tmp_path / "pack.zip"
    with zipfile.ZipFile(zpath, "w") as z:
        z.writestr("buffalo_l/det_10g.onnx", b"detector")
        z.writestr("buffalo_l/w600k_r50.onnx", model)
    data = zpath.read_bytes()
    entry = {"kind": "url", "url": server.add("/v0.7/buffalo_l.zip", data), "sha256": sha(data), "extract": "zip",
             "member": "w600k_r50.onnx", "member_sha256": sha(model)}
    out = ensure_weights("arcface-r50", entry, tmp_path / "w" / "arcface-r50.onnx", **FAST)
    assert out.read_bytes() == model
    assert (tmp_path / "w" / "downloads" / "buffalo_l.zip").is_file()


def test_bz2_entry_is_decompressed(server, tmp_path):
    import bz2

    raw = payload(4000, 9)
    data = bz2.compress(raw)
    entry = {"kind": "url", "url": server.add("/shape.dat.bz2", data), "sha256": sha(data), "extract": "bz2"}
    assert ensure_weights("dlib68", entry, tmp_path / "shape.dat", **FAST).read_bytes() == raw


def test_offline_error_names_asset_url_and_both_places(tmp_path):
    url = closed_port_url("/stylegan2-ada-pytorch/pretrained/ffhq.pkl")
    entry = {"kind": "url", "url": url, "sha256": "ab" * 32, "convert": "nvidia_pkl"}
    out = tmp_path / "weights" / "ffhq1024.pt"
    with pytest.raises(WeightsError) as e:
        ensure_weights("ffhq1024", entry, out, **FAST)
    msg = str(e.value)
    assert "weights 'ffhq1024'" in msg and url in msg
    assert os.path.abspath(tmp_path / "weights" / "downloads" / "ffhq.pkl") in msg  # where the raw .pkl goes
    assert f"after conversion) at {out}" in msg and MIRROR_ENV in msg
    assert not out.exists()


@pytest.mark.parametrize("entry,match", [
    ({"kind": "torrent"}, "unknown kind 'torrent'"),
    ({"kind": "url"}, "needs 'url'"),
    ({"kind": "url", "url": "URL", "convert": "onnx"}, "unknown conversion 'onnx'"),
    ({"kind": "url", "url": "URL", "extract": "rar"}, "unknown archive kind 'rar'"),
])
def test_bad_entries_are_refused_before_any_request(server, tmp_path, entry, match):
    entry = {k: (server.url("/x") if v == "URL" else v) for k, v in entry.items()}
    with pytest.raises(WeightsError, match=match):
        ensure_weights("x", entry, tmp_path / "x.pt", **FAST)
    assert server.requests == []


def test_stand_in_entry_still_builds_a_generator(tmp_path):
    entry = {"kind": "stand_in", "resolution": 16, "style_dim": 32, "n_mlp": 2, "channels": "4:16,8:16,16:8", "seed": 1}
    out = ensure_weights("demo", entry, tmp_path / "demo.pt")
    from stylegan_inversion.stylegan2 import load_generator

    assert load_generator(out, device="cpu").meta.get("stand_in") is True


def test_registry_helpers(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    assert entry_urls({"url": "a", "urls": ["b", "a", "c"]}) == ["a", "b", "c"]
    assert default_output("lpips-vgg", {"kind": "url", "url": "u/vgg16-397923af.pth", "torch_hub": "vgg16-397923af.pth"}) \
        == torch_hub_path("vgg16-397923af.pth")
    assert default_output("ffhq1024", {"kind": "url", "url": "u/ffhq.pkl", "convert": "nvidia_pkl"}) == Path("data/weights/ffhq1024.pt")
    assert default_output("arc", {"kind": "url", "url": "u/buffalo_l.zip", "extract": "zip", "member": "w600k_r50.onnx"}) \
        == Path("data/weights/arc.onnx")
    cfg = tmp_path / "c.yaml"
    cfg.write_text("weights: [1, 2]\n")
    with pytest.raises(WeightsError, match="no 'weights:' mapping"):
        load_registry(cfg)
    with pytest.raises(WeightsError, match="cannot read"):
        load_registry(tmp_path / "absent.yaml")


def test_default_output_of_extracted_member_without_convert():
    assert default_output("dlib68", {"kind": "url", "url": "u/shape.dat.bz2", "extract": "bz2"}) == Path("data/weights/dlib68.dat")


# ---------------------------------------------------------------- the CLI


def test_cli_url_form_downloads(server, tmp_path):
    data = payload()
    out = tmp_path / "w" / "model.pth"
    r = run_cli("--name", "m", "--url", server.add("/model.pth", data), "--sha256", sha(data), "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert "weights ready" in r.stdout and out.read_bytes() == data
    assert "MB/s" in r.stderr  # progress lines (stderr is not a terminal here)


def test_cli_failure_is_one_error_line_without_traceback(server, tmp_path):
    url = server.url("/gone/ffhq.pkl")
    r = run_cli("--name", "ffhq1024", "--url", url, "--sha256", "cd" * 32, "--out", str(tmp_path / "ffhq1024.pt"),
                "--convert", "nvidia_pkl")
    assert r.returncode == 1
    assert "Traceback" not in r.stderr
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("error: ")]
    assert len(errors) == 1 and "ffhq1024" in errors[0] and url in errors[0] and "HTTP 404" in errors[0]
    assert not (tmp_path / "ffhq1024.pt").exists()


def test_cli_registry_form_uses_the_config_mirror_without_network(server, tmp_path):
    data = payload()
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "vgg16-397923af.pth").write_bytes(data)
    cfg = {"mirror": str(mirror), "weights": {"lpips-vgg": {
        "kind": "url", "url": server.url("/models/vgg16-397923af.pth"), "sha256": sha(data), "size": len(data),
        "torch_hub": "vgg16-397923af.pth"}}}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    th = tmp_path / "torch_home"
    r = run_cli("--registry", str(tmp_path / "config.yaml"), "--name", "lpips-vgg", env={"TORCH_HOME": str(th)})
    assert r.returncode == 0, r.stderr
    target = th / "hub" / "checkpoints" / "vgg16-397923af.pth"
    assert target.read_bytes() == data and str(target) in r.stdout
    assert server.requests == []


def test_cli_registry_form_rejects_unknown_name_and_mixed_flags(tmp_path):
    (tmp_path / "c.yaml").write_text(yaml.safe_dump({"weights": {"a": {"kind": "url", "url": "http://127.0.0.1:9/a"}}}))
    r = run_cli("--registry", str(tmp_path / "c.yaml"), "--name", "b")
    assert r.returncode == 1 and "no entry 'b'" in r.stderr and "(have: a)" in r.stderr
    r = run_cli("--registry", str(tmp_path / "c.yaml"), "--name", "a", "--sha256", "ab" * 32)
    assert r.returncode == 2 and "come from the registry entry" in r.stderr
