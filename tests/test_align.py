"""FFHQ alignment geometry, padding, modes, records and the align CLI, on faces shipped in installed packages."""

from __future__ import annotations

import csv
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.ndimage
from PIL import Image

from stylegan_inversion import align as A
from stylegan_inversion.io import load_image
from stylegan_inversion.landmarks import detect_faces

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "align.py"
ASTRONAUT = Path(importlib.util.find_spec("skimage").submodule_search_locations[0]) / "data" / "astronaut.png"
T1 = Path(importlib.util.find_spec("insightface").submodule_search_locations[0]) / "data" / "images" / "t1.jpg"
REQUIRED_COLUMNS = ["input", "face_index", "status", "reason", "yaw", "pitch", "roll", "eye_distance_px", "face_box", "landmarks",
                    "output", "mode", "size", "transform_size"]  # fmt: skip


@pytest.fixture(scope="module")
def astronaut():
    """skimage's astronaut (512x512, one face) and its detected face."""
    img = load_image(ASTRONAUT)
    faces = detect_faces(img)
    assert len(faces) == 1
    return img, faces[0]


def eye_centres(lm: np.ndarray) -> np.ndarray:
    """[2, 2]: mean of landmarks 36-41 and 42-47."""
    return np.stack([lm[36:42].mean(axis=0), lm[42:48].mean(axis=0)])


def synthetic_landmarks(eye_l, eye_r, mouth_l, mouth_r) -> np.ndarray:
    """68 landmarks whose eye centres and mouth corners are the given points (the rest unused by FFHQ)."""
    lm = np.zeros((68, 2))
    lm[36:42], lm[42:48], lm[48], lm[54] = eye_l, eye_r, mouth_l, mouth_r
    lm[49:54] = np.linspace(mouth_l, mouth_r, 7)[1:-1]
    return lm


def rotate_points(pts: np.ndarray, deg: float, centre) -> np.ndarray:
    """Rotate points about centre by deg (clockwise on screen, image y down)."""
    t = np.radians(deg)
    R = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
    return (np.asarray(pts) - centre) @ R.T + centre


# ---------------------------------------------------------------- geometry


@pytest.mark.parametrize("angle", [0.0, 23.0, -40.0])
def test_quad_is_the_ffhq_square(angle):
    """The quad is a square centred just below the eyes, sized by eye and mouth distances, turned with the face."""
    c = np.array([300.0, 250.0])
    pts = rotate_points([[250, 230], [350, 230], [265, 320], [335, 320]], angle, c)
    lm = synthetic_landmarks(*pts)
    quad, qsize = A.ffhq_quad(lm)
    sides = np.linalg.norm(np.roll(quad, -1, axis=0) - quad, axis=1)
    np.testing.assert_allclose(sides, qsize, rtol=1e-12)
    np.testing.assert_allclose(np.dot(quad[1] - quad[0], quad[3] - quad[0]), 0.0, atol=1e-9)
    eye_mid, mouth_mid = (pts[0] + pts[1]) / 2, (pts[2] + pts[3]) / 2
    np.testing.assert_allclose(quad.mean(axis=0), eye_mid + 0.1 * (mouth_mid - eye_mid), atol=1e-9)
    assert qsize == pytest.approx(max(4.0 * 100.0, 3.6 * 90.0))
    top_edge = quad[3] - quad[0]
    assert np.degrees(np.arctan2(top_edge[1], top_edge[0])) == pytest.approx(angle, abs=1e-9)


def test_mouth_dominated_face_uses_the_mouth_distance():
    """A long face (mouth far below close eyes) is framed by 1.8x the eye-to-mouth distance."""
    lm = synthetic_landmarks([280, 200], [320, 200], [285, 330], [315, 330])
    _, qsize = A.ffhq_quad(lm)
    assert qsize == pytest.approx(3.6 * 130.0)


def blob_image(size, centres, value=255, sigma=2.0) -> Image.Image:
    """Grey image with bright Gaussian blobs at the given (x, y) pixel centres."""
    w, h = size
    y, x = np.mgrid[:h, :w]
    arr = np.full((h, w), 100.0)
    for cx, cy in centres:
        arr += (value - 100) * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * sigma**2))
    return Image.fromarray(np.uint8(np.clip(np.rint(arr), 0, 255))).convert("RGB")


@pytest.mark.parametrize("angle,output,transform", [(0.0, 256, 256), (31.0, 256, 1024), (-17.0, 512, 512)])
def test_eye_centres_land_at_the_canonical_positions(angle, output, transform):
    """Blobs drawn at the eye centres end up level, 1/8 of the side either side of centre, where the point map says."""
    c = np.array([320.0, 260.0])
    pts = rotate_points([[270, 240], [370, 240], [285, 330], [355, 330]], angle, c)
    img = blob_image((640, 520), pts[:2])
    lm = synthetic_landmarks(*pts)
    out = np.asarray(A.ffhq_align(img, lm, output_size=output, transform_size=transform).convert("L"), dtype=np.float64)
    labels, n = scipy.ndimage.label(out > 160)
    assert n == 2
    found = np.array(scipy.ndimage.center_of_mass(out - 100.0, labels, [1, 2]))[:, ::-1]  # (x, y)
    found = found[np.argsort(found[:, 0])]
    expected = A.canonical_eye_centres(lm, output)
    np.testing.assert_allclose(found, expected, atol=0.1)
    # e2e = 100 > 0.9 * e2m = 81, so the eyes sit at 3/8 and 5/8 of the width, level, 0.0225 above centre.
    np.testing.assert_allclose(expected[:, 0], [0.375 * output - 0.5, 0.625 * output - 0.5], atol=1e-6)
    np.testing.assert_allclose(expected[:, 1], (0.5 - 0.1 * 90 / 400) * output - 0.5, atol=1e-6)


def test_real_face_comes_out_level_and_at_the_canonical_eyes(astronaut):
    """Re-detecting landmarks on the aligned astronaut (also when rotated 20 degrees first) finds level eyes in place."""
    img, face = astronaut
    rotated = img.rotate(20, resample=Image.Resampling.BICUBIC, center=(223, 127), fillcolor=(128, 128, 128))
    for src in (img, rotated):
        lm = detect_faces(src)[0].landmarks
        out = A.ffhq_align(src, lm, output_size=512, transform_size=512)
        again = detect_faces(out)
        assert len(again) == 1
        eyes = eye_centres(again[0].landmarks)
        np.testing.assert_allclose(eyes, A.canonical_eye_centres(lm, 512), atol=512 * 0.02)
        d = eyes[1] - eyes[0]
        assert abs(np.degrees(np.arctan2(d[1], d[0]))) < 2.0


def test_alignment_is_deterministic_and_4096_to_1024_agrees_with_512(astronaut):
    """Same input -> identical output; the FFHQ default and the seed study's 512/512 show the same crop."""
    img, face = astronaut
    a = A.ffhq_align(img, face.landmarks, output_size=512, transform_size=512)
    b = A.ffhq_align(img, face.landmarks, output_size=512, transform_size=512)
    assert np.array_equal(np.asarray(a), np.asarray(b))
    big = A.ffhq_align(img, face.landmarks)  # 4096 -> 1024
    assert big.size == (1024, 1024) and a.size == (512, 512)
    diff = np.abs(np.asarray(big.resize((256, 256), Image.Resampling.LANCZOS), dtype=float)
                  - np.asarray(a.resize((256, 256), Image.Resampling.LANCZOS), dtype=float))  # fmt: skip
    assert diff.mean() < 2.0


def test_padding_blurs_beyond_the_border_and_keeps_the_face(astronaut):
    """A face near the left border is reflect-padded and blurred there; with padding off the outside is black."""
    img, face = astronaut
    crop = img.crop((165, 30, 512, 512))  # face box starts 14 px from the left edge
    lm = face.landmarks - [165, 30]
    padded = np.asarray(A.ffhq_align(crop, lm, 256, 256), dtype=np.int16)
    plain = np.asarray(A.ffhq_align(crop, lm, 256, 256, enable_padding=False), dtype=np.int16)
    assert (plain[:, :8] == 0).all()  # outside the image, nothing
    assert padded[:, :8].mean() > 40  # filled
    assert np.abs(np.diff(padded[:, :8], axis=0)).mean() < 3  # and smooth (blurred)
    np.testing.assert_array_equal(padded[90:170, 100:200], plain[90:170, 100:200])  # the face is untouched


def test_large_image_is_shrunk_first_with_the_same_result(astronaut):
    """A 4x upscaled photo (shrink step taken) aligns to nearly the same 128 px image."""
    img, face = astronaut
    big = img.resize((2048, 2048), Image.Resampling.BICUBIC)
    lm_big = (face.landmarks + 0.5) * 4 - 0.5
    assert int(np.floor(A.ffhq_quad(lm_big)[1] / 128 * 0.5)) > 1
    a = np.asarray(A.ffhq_align(img, face.landmarks, 128, 128), dtype=float)
    b = np.asarray(A.ffhq_align(big, lm_big, 128, 128), dtype=float)
    assert np.abs(a - b).mean() < 4.0


def test_opencv_blur_equals_scipy_in_every_strip():
    """The padding blur (OpenCV, on strips around a central box) equals scipy.ndimage.gaussian_filter bit for bit."""
    rng = np.random.default_rng(0)
    plane = rng.integers(0, 256, (97, 131)).astype(np.uint8)
    sigma = 3.3
    ref = scipy.ndimage.gaussian_filter(plane.astype(np.float32), sigma)
    np.testing.assert_array_equal(A._gaussian_blur_like_scipy(plane, sigma), ref)
    strips = A._frame((40, 30, 100, 70), *plane.shape)
    covered = np.zeros(plane.shape, int)
    for ra, rb, ca, cb in strips:
        np.testing.assert_array_equal(A._blur_strip(plane, sigma, (ra, rb, ca, cb)), ref[ra:rb, ca:cb])
        covered[ra:rb, ca:cb] += 1
    inside = np.zeros(plane.shape, bool)
    inside[30:70, 40:100] = True
    assert (covered[~inside] == 1).all() and (covered[inside] == 0).all()  # the strips tile the frame exactly
    np.testing.assert_array_equal(A._gaussian_blur_like_scipy(plane[:5, :40], 3.3), scipy.ndimage.gaussian_filter(plane[:5, :40].astype(np.float32), 3.3))


def test_reflect_pad_matches_numpy_even_beyond_the_image_size():
    """Padding wider than the image mirrors back and forth exactly like numpy's 'reflect'."""
    arr = np.arange(5 * 7 * 3, dtype=np.uint8).reshape(5, 7, 3)
    out = A._reflect_pad(Image.fromarray(arr), (9, 2, 3, 12))
    np.testing.assert_array_equal(out, np.pad(arr, ((2, 12), (9, 3), (0, 0)), mode="reflect"))


def test_transform_smaller_than_output_is_refused(astronaut):
    """transform_size below output_size is an error, not a silent 512 px image."""
    img, face = astronaut
    with pytest.raises(ValueError, match="transform_size"):
        A.ffhq_align(img, face.landmarks, output_size=512, transform_size=256)


# ---------------------------------------------------------------- modes


def test_center_and_resize_modes():
    """center = largest centred square resized; resize = aligned input resized; both record the face."""
    img = load_image(T1)  # 1280x886
    res = A.align_image(img, "center", 128)
    assert len(res) == 1 and res[0].image.size == (128, 128) and res[0].n_faces == 6
    expected = img.crop((197, 0, 197 + 886, 886)).resize((128, 128), Image.Resampling.LANCZOS)
    assert np.array_equal(np.asarray(res[0].image), np.asarray(expected))
    assert res[0].pose is not None and res[0].face_index == 0
    flat = Image.new("RGB", (300, 300), (50, 60, 70))
    res = A.align_image(flat, "resize", 64)
    assert len(res) == 1 and res[0].face is None and res[0].pose is None
    assert np.asarray(res[0].image).reshape(-1, 3).tolist()[0] == [50, 60, 70]


def test_all_faces_of_t1_largest_first():
    """t1.jpg has six faces; ffhq mode returns the largest by default and all six on request."""
    img = load_image(T1)
    faces = detect_faces(img)
    one = A.align_image(img, "ffhq", 64, faces=faces)
    every = A.align_image(img, "ffhq", 64, all_faces=True, faces=faces)
    assert len(one) == 1 and len(every) == 6
    sides = [r.face.crop_side for r in every]
    assert sides == sorted(sides, reverse=True) and one[0].face is every[0].face
    assert every[0].face.crop_side == pytest.approx(A.ffhq_quad(every[0].face.landmarks)[1])
    assert [r.face_index for r in every] == list(range(6))


# ---------------------------------------------------------------- records and CLI


def read_rows(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_align_files_records_and_is_deterministic(tmp_path):
    """Two runs give byte-identical PNGs and CSV; rows carry JSON landmarks and the pose of each face."""
    runs = []
    for k in range(2):
        out = tmp_path / f"run{k}"
        rows = A.align_files([T1], out, size=64, all_faces=True)
        assert [r["status"] for r in rows] == ["ok"] * 6
        runs.append(out)
    names = sorted(p.name for p in runs[0].iterdir())
    assert names == ["align.csv"] + [f"t1_{k}.png" for k in range(6)]
    for name in names:
        assert (runs[0] / name).read_bytes() == (runs[1] / name).read_bytes()
    rows = read_rows(runs[0] / "align.csv")
    assert set(REQUIRED_COLUMNS) <= set(rows[0])
    for k, row in enumerate(rows):
        assert row["face_index"] == str(k) and row["output"] == f"t1_{k}.png" and row["n_faces"] == "6"
        assert np.array(json.loads(row["landmarks"])).shape == (68, 2)
        assert len(json.loads(row["face_box"])) == 4
        assert -90 < float(row["yaw"]) < 90 and float(row["eye_distance_px"]) > 20
        assert (row["mode"], row["size"], row["transform_size"]) == ("ffhq", "64", "64")


def test_workflow_call_and_upstream_skip(tmp_path):
    """<item>/image.png -> <out>/image.png + align.csv; a missing image whose folder records a failure is skipped."""
    good = tmp_path / "inputs" / "good"
    good.mkdir(parents=True)
    Image.open(ASTRONAUT).save(good / "image.png")
    bad = tmp_path / "inputs" / "bad"
    bad.mkdir()
    (bad / "degrade.csv").write_text("input,status,reason,output\nphoto.jpg,unreadable,empty file (0 bytes),image.png\n")
    rows = A.align_files([good / "image.png"], tmp_path / "aligned" / "good", mode="ffhq", size=64)
    assert rows[0]["status"] == "ok" and (tmp_path / "aligned" / "good" / "image.png").is_file()
    rows = A.align_files([bad / "image.png"], tmp_path / "aligned" / "bad", size=64)
    assert rows[0]["status"] == "skipped" and "degrade: unreadable: empty file" in rows[0]["reason"]
    assert not (tmp_path / "aligned" / "bad" / "image.png").exists()
    assert read_rows(tmp_path / "aligned" / "bad" / "align.csv")[0]["status"] == "skipped"


def test_stale_output_is_removed_when_the_input_no_longer_has_a_face(tmp_path):
    """A rerun that finds no face deletes the earlier PNG, so 'no PNG + non-ok record' stays true."""
    src = tmp_path / "photo.png"
    Image.open(ASTRONAUT).save(src)
    out = tmp_path / "out"
    A.align_files([src], out, size=64)
    assert (out / "photo.png").is_file()
    Image.new("RGB", (200, 200), (10, 20, 30)).save(src)
    rows = A.align_files([src], out, size=64)
    assert rows[0]["status"] == "no_face" and not (out / "photo.png").exists()


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=120)


def test_cli_exit_codes(tmp_path):
    """Usage errors exit 2, an output folder that cannot be created exits 1, both without a traceback."""
    r = run_cli("--out", str(tmp_path / "o"))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    r = run_cli("--size", "512", "--transform-size", "256", "--out", str(tmp_path / "o"), str(ASTRONAUT))
    assert r.returncode == 2 and "transform-size" in r.stderr
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    r = run_cli("--out", str(blocker / "sub"), str(ASTRONAUT))
    assert r.returncode == 1 and "cannot write to output folder" in r.stderr and "Traceback" not in r.stderr


def test_cli_center_mode_one_summary_line(tmp_path):
    """The CLI writes <stem>.png and align.csv and prints one summary line."""
    r = run_cli("--mode", "center", "--size", "32", "--out", str(tmp_path), str(ASTRONAUT))
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("\n") == 1 and "1 ok" in r.stdout
    row = read_rows(tmp_path / "align.csv")[0]
    assert row["status"] == "ok" and row["output"] == "astronaut.png" and row["transform_size"] == ""
    assert Image.open(tmp_path / "astronaut.png").size == (32, 32)
