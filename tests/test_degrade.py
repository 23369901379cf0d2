"""Degradations: worse with the level, byte-identical with the seed, parameters recorded."""

import csv
import io
import json

import numpy as np
import pytest
from PIL import Image

from helpers import face_photo
from stylegan_inversion import degrade as deg
from stylegan_inversion.io import save_png_atomic
from stylegan_inversion.stages import degrade_files

LEVELS = {
    "jpeg": [95, 60, 30, 10, 3],  # quality: lower is worse
    "blur": [0.5, 1, 2, 4, 8],
    "downscale": [1.5, 2, 4, 8, 16],
    "noise": [2, 5, 10, 20, 40],
    "misalign": [0.01, 0.03, 0.06, 0.12, 0.25],
    "realworld": [0.1, 0.3, 0.5, 0.7, 1.0],
}


@pytest.fixture(scope="module")
def face():
    return face_photo().crop((128, 0, 384, 256))


@pytest.mark.parametrize("op", sorted(LEVELS))
def test_psnr_falls_monotonically_with_level(face, op):
    psnrs = [deg.psnr_uint8(face, deg.apply(face, op, lv, seed=3).image) for lv in LEVELS[op]]
    assert all(a > b for a, b in zip(psnrs, psnrs[1:])), psnrs


@pytest.mark.parametrize("op", sorted(LEVELS))
def test_same_seed_is_byte_identical(face, op):
    level = LEVELS[op][2]

    def png(seed):
        buf = io.BytesIO()
        deg.apply(face, op, level, seed=seed).image.save(buf, format="PNG")
        return buf.getvalue()

    assert png(7) == png(7)
    if op in ("noise", "misalign", "realworld"):
        assert png(7) != png(8)


def test_misalign_has_the_stated_magnitude(face):
    p = deg.misalign_params(0.1, 256, seed=1)
    assert np.hypot(p["dx"], p["dy"]) == pytest.approx(25.6)
    assert abs(p["rotation_deg"]) == pytest.approx(9.0)
    assert p["scale"] in (pytest.approx(1.1), pytest.approx(1 / 1.1))
    out, _ = deg.misalign(face, 0.0, seed=1)
    assert np.array_equal(np.asarray(out), np.asarray(face))


def test_pure_shift_moves_content(face):
    # a misalignment's translation moves a bright dot by the drawn shift
    img = Image.new("RGB", (64, 64), (0, 0, 0))
    img.putpixel((32, 32), (255, 255, 255))
    out, p = deg.misalign(img, 0.1, seed=4)
    a = np.asarray(out)[..., 0].astype(float)
    y, x = np.unravel_index(np.argmax(a), a.shape)
    # centre + rotation/scale about the centre + shift: the dot at the centre moves by the shift only
    assert abs((x - 32) - p["dx"]) <= 1.5 and abs((y - 32) - p["dy"]) <= 1.5


def test_realworld_draws_recorded_parameters(face):
    out = deg.apply(face, "realworld", 0.5, seed=11)
    assert set(out.params) >= {"blur_sigma", "downscale_factor", "noise_sigma", "jpeg_quality"}
    assert 0 <= out.params["blur_sigma"] <= 1.5 and 1 <= out.params["downscale_factor"] <= 4.5
    assert deg.apply(face, "realworld", 0.5, seed=11).params == out.params


@pytest.mark.parametrize("op, level", [("jpeg", 0), ("jpeg", 101), ("blur", -1), ("downscale", 0.5), ("noise", -2), ("realworld", 1.5), ("sharpen", 1)])
def test_bad_levels_are_refused(face, op, level):
    with pytest.raises(deg.DegradeError):
        deg.apply(face, op, level)


def test_degrade_files_records_params_and_skips(tmp_path, face):
    good = tmp_path / "in" / "a.png"
    save_png_atomic(face, good)
    bad = tmp_path / "in" / "b.png"
    bad.write_bytes(b"not a png at all")
    rows = degrade_files([good, bad], "jpeg", 20, seed=0, out_dir=tmp_path / "out")
    assert [r["status"] for r in rows] == ["ok", "unreadable"]
    with open(tmp_path / "out" / "degrade.csv") as f:
        recorded = list(csv.DictReader(f))
    assert json.loads(recorded[0]["params"])["quality"] == 20
    assert float(recorded[0]["psnr_vs_input"]) < 40
    assert (tmp_path / "out" / "a.png").is_file() and not (tmp_path / "out" / "b.png").exists()
    # a second run with the same seed writes the same bytes
    first = (tmp_path / "out" / "a.png").read_bytes()
    degrade_files([good], "jpeg", 20, seed=0, out_dir=tmp_path / "again")
    assert (tmp_path / "again" / "a.png").read_bytes() == first


def test_upstream_skip_propagates(tmp_path):
    item = tmp_path / "inputs" / "photos" / "x"
    item.mkdir(parents=True)
    (item / "generate.csv").write_text("input,status,reason,output\nx.jpg,no_face,no face found,\n")
    rows = degrade_files([item / "image.png"], "blur", 2, seed=0, out_dir=tmp_path / "out")
    assert rows[0]["status"] == "skipped"
    assert "no_face" in rows[0]["reason"] and "no face found" in rows[0]["reason"]


def test_per_image_seeds_differ_between_items(tmp_path, face):
    for name in ("p", "q"):
        save_png_atomic(face, tmp_path / "inputs" / "src" / name / "image.png")
    a = degrade_files([tmp_path / "inputs" / "src" / "p" / "image.png"], "noise", 10, 0, tmp_path / "o1")
    b = degrade_files([tmp_path / "inputs" / "src" / "q" / "image.png"], "noise", 10, 0, tmp_path / "o2")
    assert a[0]["seed"] != b[0]["seed"]
