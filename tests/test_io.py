"""Shared file handling: atomic writes, image loading, stage records and skip propagation."""

import numpy as np
import pytest
from PIL import Image

from stylegan_inversion.io import InputError, StageRecorder, atomic_path, load_image, read_csv, resolve_inputs, save_png_atomic


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half-writ")
            raise RuntimeError("crash mid-write")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]
    with atomic_path(target) as tmp:
        tmp.write_text("new")
    assert target.read_text() == "new" and len(list(tmp_path.iterdir())) == 1


@pytest.mark.parametrize(
    "mode, make",
    [
        ("RGBA", lambda: Image.new("RGBA", (8, 8), (255, 0, 0, 0))),
        ("LA", lambda: Image.new("LA", (8, 8), (200, 0))),
        ("L", lambda: Image.new("L", (8, 8), 77)),
        ("CMYK", lambda: Image.new("CMYK", (8, 8), (0, 0, 0, 0))),
        ("I;16", lambda: Image.fromarray(np.full((8, 8), 65535, dtype=np.uint16))),
        ("P", lambda: Image.new("P", (8, 8), 3)),
    ],
)
def test_every_mode_becomes_rgb(tmp_path, mode, make):
    p = tmp_path / "x.png" if mode != "CMYK" else tmp_path / "x.jpg"
    make().save(p)
    img = load_image(p)
    assert img.mode == "RGB" and img.size == (8, 8)
    a = np.asarray(img)
    if mode in ("RGBA", "LA"):  # fully transparent -> the neutral grey background
        assert (a == 128).all()
    if mode == "I;16":
        assert (a == 255).all()
    if mode == "L":
        assert (a == 77).all()


def test_exif_orientation_is_applied(tmp_path):
    img = Image.new("RGB", (40, 20), (0, 0, 0))
    img.paste((255, 255, 255), (0, 0, 10, 20))  # white strip on the left
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    p = tmp_path / "phone.jpg"
    img.save(p, exif=exif, quality=95)
    up = load_image(p)
    assert up.size == (20, 40)
    a = np.asarray(up).mean(axis=2)
    assert a[:10].mean() > 200 and a[-10:].mean() < 50  # the strip is now on top


@pytest.mark.parametrize(
    "content, status, words",
    [
        (b"", "unreadable", "0 bytes"),
        (b"GIF89a garbage", "unreadable", "not an image"),
        (b"plain text file", "unreadable", "not an image"),
    ],
)
def test_bad_files_raise_input_error(tmp_path, content, status, words):
    p = tmp_path / "bad.png"
    p.write_bytes(content)
    with pytest.raises(InputError) as e:
        load_image(p)
    assert e.value.status == status and words in e.value.reason


def test_truncated_png_is_unreadable(tmp_path):
    p = tmp_path / "cut.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(p)
    p.write_bytes(p.read_bytes()[:2000])
    with pytest.raises(InputError) as e:
        load_image(p)
    assert e.value.status == "unreadable" and "truncated" in e.value.reason


def test_pixel_limit_refuses_before_decoding(tmp_path):
    p = tmp_path / "big.png"
    Image.new("RGB", (300, 300)).save(p)
    with pytest.raises(InputError) as e:
        load_image(p, max_pixels=300 * 299)
    assert e.value.status == "too_large" and "90000" in e.value.reason


def test_stage_recorder_and_skip_propagation(tmp_path):
    item = tmp_path / "aligned" / "x"
    rec = StageRecorder(item, "align", ["output", "yaw"])
    rec.add({"input": "in.png", "output": "", "status": "no_face", "reason": "no face found", "yaw": ""})
    rows = read_csv(item / "align.csv")
    assert rows[0]["status"] == "no_face"
    inputs = resolve_inputs([item / "image.png", tmp_path / "elsewhere.png"])
    assert inputs[0].skip_status == "skipped" and "align: no_face: no face found" == inputs[0].skip_reason
    assert inputs[1].skip_status is None  # no record: the stage itself will report the missing file
    save_png_atomic(Image.new("RGB", (4, 4)), item / "image.png")
    assert resolve_inputs([item / "image.png"])[0].skip_status is None


def test_atomic_files_get_normal_permissions(tmp_path):
    import os

    mask = os.umask(0)
    os.umask(mask)
    with atomic_path(tmp_path / "x.txt") as tmp:
        tmp.write_text("shared with the group, like any new file")
    assert (tmp_path / "x.txt").stat().st_mode & 0o777 == 0o666 & ~mask
