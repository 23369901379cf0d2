"""Every kind of file a real photo folder holds, through the loader and the align stage, never stopping the batch."""

from __future__ import annotations

import csv
import importlib.util
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from stylegan_inversion import align as A
from stylegan_inversion.io import InputError, load_image
from stylegan_inversion.landmarks import detect_faces

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "align.py"
SKIMAGE_DATA = Path(importlib.util.find_spec("skimage").submodule_search_locations[0]) / "data"
ASTRONAUT = SKIMAGE_DATA / "astronaut.png"
T1 = Path(importlib.util.find_spec("insightface").submodule_search_locations[0]) / "data" / "images" / "t1.jpg"
ORIENTATION = 0x0112


def grace_hopper() -> Path:
    import matplotlib.cbook

    return Path(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))


# EXIF orientation -> how to turn an upright picture into the stored (raw) pixels, the inverse of what a viewer does.
TO_RAW = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,  # viewer turns it 90 degrees clockwise
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,  # viewer turns it 90 degrees counter-clockwise
}


def save_with_orientation(upright: Image.Image, path: Path, orientation: int) -> None:
    """Store the picture as a phone does: rotated pixels plus an EXIF orientation tag."""
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    upright.transpose(TO_RAW[orientation]).save(path, quality=95, exif=exif.tobytes())


def png_header_only(path: Path, width: int, height: int) -> None:
    """A PNG that declares width x height pixels but holds almost no data (a decompression-bomb header)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = lambda kind, data: struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))  # noqa: E731
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


# ---------------------------------------------------------------- EXIF orientation


@pytest.mark.parametrize("orientation", [3, 6, 8, 5])
def test_exif_rotated_jpeg_aligns_like_the_upright_jpeg(tmp_path, orientation):
    """A phone JPEG (rotated pixels + EXIF tag) loads upright and aligns like the same photo stored upright."""
    upright_src = astronaut()
    upright_path = tmp_path / "upright.jpg"
    upright_src.save(upright_path, quality=95)
    phone_path = tmp_path / f"phone{orientation}.jpg"
    save_with_orientation(upright_src, phone_path, orientation)

    upright, phone = load_image(upright_path), load_image(phone_path)
    assert phone.size == upright.size
    assert np.abs(np.asarray(phone, float) - np.asarray(upright, float)).mean() < 2.0  # only JPEG noise differs
    fu, fp = detect_faces(upright), detect_faces(phone)  # the mission patch may come and go as a weak detection
    assert np.abs(fu[0].landmarks - fp[0].landmarks).mean() < 1.0
    (quad_u, qsize), (quad_p, _) = A.ffhq_quad(fu[0].landmarks), A.ffhq_quad(fp[0].landmarks)
    assert np.abs(quad_u - quad_p).max() < 0.02 * qsize  # the same crop, up to JPEG-induced landmark jitter
    au = np.asarray(A.ffhq_align(upright, fu[0].landmarks, 256, 256).resize((64, 64), Image.Resampling.BOX), float)
    ap = np.asarray(A.ffhq_align(phone, fp[0].landmarks, 256, 256).resize((64, 64), Image.Resampling.BOX), float)
    assert np.abs(au - ap).mean() < 4.0


@pytest.mark.parametrize("orientation", [2, 6, 7])
def test_exif_orientation_in_a_lossless_png_gives_the_identical_alignment(tmp_path, orientation):
    """Without JPEG noise the portrait phone picture, once upright, is the same pixels and aligns to the same bytes."""
    upright = load_image(grace_hopper())  # 512x600
    path = tmp_path / "phone.png"
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    upright.transpose(TO_RAW[orientation]).save(path, exif=exif.tobytes())
    phone = load_image(path)
    assert np.array_equal(np.asarray(phone), np.asarray(upright))
    ru = A.align_image(upright, "ffhq", 128)[0]
    rp = A.align_image(phone, "ffhq", 128)[0]
    assert np.array_equal(np.asarray(ru.image), np.asarray(rp.image)) and ru.pose.yaw == rp.pose.yaw


def test_ignoring_exif_would_lose_the_face(tmp_path):
    """Without applying the orientation, the sideways pixels hold no face the detector can find."""
    path = tmp_path / "phone.jpg"
    save_with_orientation(load_image(grace_hopper()), path, 6)
    raw = Image.open(path).convert("RGB")
    assert raw.size == (600, 512) and detect_faces(raw) == []
    rows = A.align_files([path], tmp_path / "out", size=64)
    assert rows[0]["status"] == "ok" and (rows[0]["image_width"], rows[0]["image_height"]) == (512, 600)


# ---------------------------------------------------------------- pixel formats


def astronaut() -> Image.Image:
    return Image.open(ASTRONAUT).convert("RGB")


def make_formats(d: Path) -> dict[str, Path]:
    """The astronaut stored in every pixel format and container a folder may hold."""
    a = astronaut()
    arr = np.asarray(a)
    out = {}

    def put(name, save):
        out[name] = d / name
        save(out[name])

    alpha = np.zeros(arr.shape[:2], np.uint8)
    alpha[20:330, 80:420] = 255  # face opaque, the rest transparent
    rgba = a.copy()
    rgba.putalpha(Image.fromarray(alpha))
    put("rgba.png", rgba.save)
    la = a.convert("L")
    la.putalpha(Image.fromarray(alpha))
    put("la.png", la.save)
    put("grey.png", a.convert("L").save)
    put("palette.png", a.convert("P", palette=Image.Palette.ADAPTIVE).save)
    put("palette.gif", a.convert("P", palette=Image.Palette.ADAPTIVE).save)
    put("cmyk.jpg", lambda p: a.convert("CMYK").save(p, quality=95))
    put("cmyk.tif", a.convert("CMYK").save)
    put("grey16.png", Image.fromarray((np.asarray(a.convert("L")).astype(np.uint16) * 257)).save)
    put("progressive.jpg", lambda p: a.save(p, quality=90, progressive=True))
    put("photo.webp", lambda p: a.save(p, quality=95))
    put("photo.bmp", a.save)
    return out


def test_rgb16_png_keeps_its_colours(tmp_path):
    """A 48-bit PNG (16 bits per channel, written by OpenCV) loads as the same 8-bit picture."""
    import cv2

    arr = np.asarray(astronaut())
    path = tmp_path / "rgb16.png"
    cv2.imwrite(str(path), cv2.cvtColor(arr, cv2.COLOR_RGB2BGR).astype(np.uint16) * 257)
    assert np.abs(np.asarray(load_image(path), int) - arr).max() <= 1


def test_every_pixel_format_loads_upright_rgb_and_aligns(tmp_path):
    """Transparency on neutral grey, greyscale/palette/CMYK/16-bit converted: the face is found in each."""
    files = make_formats(tmp_path)
    ref = np.asarray(astronaut(), float)
    grey_ref = np.asarray(astronaut().convert("L").convert("RGB"), float)
    for name, path in files.items():
        img = load_image(path)
        arr = np.asarray(img, float)
        assert img.mode == "RGB" and img.size == (512, 512), name
        expected = grey_ref if name.startswith(("grey", "la")) else ref
        face = (slice(100, 250), slice(150, 300))
        assert np.abs(arr[face] - expected[face]).mean() < 6, name  # colours right (e.g. CMYK not inverted)
        if name in ("rgba.png", "la.png"):
            assert arr[500, 5].tolist() == [128.0, 128.0, 128.0], name  # transparent -> neutral grey
    rows = A.align_files(list(files.values()), tmp_path / "out", size=64)
    assert [r["status"] for r in rows] == ["ok"] * len(files), [(r["input"], r["reason"]) for r in rows]


# ---------------------------------------------------------------- faces: tiny, several, none


def test_tiny_several_and_no_faces(tmp_path):
    """A 14 px eye distance is still found (and flagged), a 40 px thumbnail is no_face, t1 has six faces."""
    canvas = Image.new("RGB", (512, 512), (90, 100, 110))
    canvas.paste(astronaut().resize((170, 170), Image.Resampling.LANCZOS), (300, 200))
    canvas.save(tmp_path / "tiny_face.png")
    astronaut().resize((40, 40), Image.Resampling.LANCZOS).save(tmp_path / "thumbnail.png")
    paths = [tmp_path / "tiny_face.png", tmp_path / "thumbnail.png", T1, SKIMAGE_DATA / "coffee.png"]
    rows = A.align_files(paths, tmp_path / "out", size=256)
    by = {Path(r["input"]).stem: r for r in rows}
    assert by["tiny_face"]["status"] == "ok" and float(by["tiny_face"]["eye_distance_px"]) < 20
    assert by["tiny_face"]["reason"].startswith("small face")
    assert by["thumbnail"]["status"] == "no_face" and by["coffee"]["status"] == "no_face"
    assert by["t1"]["status"] == "ok" and by["t1"]["n_faces"] == 6
    rows = A.align_files([T1], tmp_path / "all", size=64, all_faces=True)
    assert len(rows) == 6 and len(list((tmp_path / "all").glob("t1_*.png"))) == 6


# ---------------------------------------------------------------- broken files


def make_broken(d: Path) -> dict[str, str]:
    """Broken inputs and the status each must get."""
    good = d / "good.jpg"
    astronaut().save(good, quality=90)
    data = good.read_bytes()
    (d / "empty.jpg").write_bytes(b"")
    (d / "truncated.jpg").write_bytes(data[: len(data) // 2])
    png = d / "good.png"
    astronaut().save(png)
    (d / "truncated.png").write_bytes(png.read_bytes()[:5000])
    (d / "notes.jpg").write_text("this is not a picture\n")
    (d / "garbage.png").write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    (d / "folder.png").mkdir()
    png_header_only(d / "bomb.png", 100_000, 100_000)
    return {
        "empty.jpg": "unreadable", "truncated.jpg": "unreadable", "truncated.png": "unreadable",
        "notes.jpg": "unreadable", "garbage.png": "unreadable", "folder.png": "unreadable",
        "missing.jpg": "unreadable", "bomb.png": "too_large", "good.jpg": "ok",
    }  # fmt: skip


def test_loader_names_the_reason(tmp_path):
    """Each broken file raises InputError with its status and a reason a person can act on."""
    expected = make_broken(tmp_path)
    reasons = {}
    for name, status in expected.items():
        if status == "ok":
            continue
        with pytest.raises(InputError) as e:
            load_image(tmp_path / name)
        assert e.value.status == status, name
        reasons[name] = e.value.reason
    assert "0 bytes" in reasons["empty.jpg"] and "truncated" in reasons["truncated.jpg"]
    assert "not an image" in reasons["notes.jpg"] and "directory" in reasons["folder.png"]
    assert "no such file" in reasons["missing.jpg"] and "decompression bomb" in reasons["bomb.png"]


def test_pixel_limit_is_configurable(tmp_path):
    """A normal 512x512 photo is refused as too_large under a 100k-pixel limit."""
    rows = A.align_files([ASTRONAUT], tmp_path, size=64, max_pixels=100_000)
    assert rows[0]["status"] == "too_large" and "262144" in rows[0]["reason"]


def test_cli_batch_of_every_bad_kind_records_all_and_exits_0(tmp_path):
    """One CLI run over all broken files plus good ones: exit 0, no traceback, one row each with its status."""
    src = tmp_path / "src"
    src.mkdir()
    expected = make_broken(src)
    save_with_orientation(load_image(grace_hopper()), src / "phone.jpg", 6)
    expected["phone.jpg"] = "ok"
    names = list(expected)
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, str(SCRIPT), "--size", "64", "--out", str(out), *[str(src / n) for n in names]],
                       capture_output=True, text=True, timeout=120)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr + r.stdout
    assert r.stdout.strip().count("\n") == 0 and f"{len(names)} inputs" in r.stdout
    with open(out / "align.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [Path(row["input"]).name for row in rows] == names
    for row in rows:
        name = Path(row["input"]).name
        assert row["status"] == expected[name], (name, row["reason"])
        assert (row["status"] == "ok") == bool(row["output"])
        if row["status"] != "ok":
            assert row["reason"] and name in r.stderr  # logged with the file name
    assert sorted(p.name for p in out.glob("*.png")) == ["good.png", "phone.png"]


def test_unexpected_failure_is_recorded_and_the_batch_goes_on(tmp_path, monkeypatch):
    """A failure nobody foresaw becomes an 'error' row naming the exception; later inputs still run."""
    real = A.align_image

    def flaky(image, *args, **kwargs):
        if image.size == (600, 400):  # coffee.png
            raise RuntimeError("simulated failure")
        return real(image, *args, **kwargs)

    monkeypatch.setattr(A, "align_image", flaky)
    rows = A.align_files([SKIMAGE_DATA / "coffee.png", ASTRONAUT], tmp_path, size=64)
    assert [r["status"] for r in rows] == ["error", "ok"]
    assert rows[0]["reason"] == "RuntimeError: simulated failure"
    assert sorted(p.name for p in tmp_path.glob("*.png")) == ["astronaut.png"]


def test_center_and_resize_modes_are_ok_without_a_face(tmp_path):
    """center/resize keep every loadable image (status ok), noting when no face was found or the input was not square."""
    rows = A.align_files([SKIMAGE_DATA / "coffee.png"], tmp_path / "c", mode="center", size=32)
    assert rows[0]["status"] == "ok" and rows[0]["reason"] == "no face found (pose not measured)" and "yaw" not in rows[0]
    rows = A.align_files([SKIMAGE_DATA / "coffee.png"], tmp_path / "r", mode="resize", size=32)
    assert rows[0]["status"] == "ok" and rows[0]["reason"].startswith("not square (600x400)")
    assert Image.open(tmp_path / "r" / "coffee.png").size == (32, 32)
