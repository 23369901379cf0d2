"""Inputs: frames from a video at a stride, bundled photos, generator samples with ground truth."""

import numpy as np
import pytest
import torch

from helpers import tiny_generator_file
from stylegan_inversion import generate
from stylegan_inversion.io import load_image
from stylegan_inversion.stages import ingest_files, sample_items
from stylegan_inversion.stylegan2 import load_generator


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """A 23-frame clip whose frame index is written into its pixels (so frames can be identified)."""
    path = tmp_path_factory.mktemp("video") / "clip.mp4"
    frames = []
    for i in range(23):
        f = np.zeros((48, 64, 3), dtype=np.uint8)
        f[:, :, 0] = i * 10  # red level encodes the index
        frames.append(f)
    generate.write_video(frames, path, fps=10)
    return path


def test_frames_count_and_stride(clip, tmp_path):
    paths = generate.extract_frames(clip, tmp_path, stride=5)
    assert [p.name for p in paths] == [f"f{i:06d}.png" for i in (0, 5, 10, 15, 20)]
    for p, i in zip(paths, (0, 5, 10, 15, 20)):
        red = np.asarray(load_image(p))[..., 0].mean()
        assert abs(red - i * 10) < 6, (p.name, red)


def test_frames_max_and_start(clip, tmp_path):
    paths = generate.extract_frames(clip, tmp_path, stride=3, max_frames=4, start=2)
    assert [p.name for p in paths] == ["f000002.png", "f000005.png", "f000008.png", "f000011.png"]


def test_frames_at_a_target_fps(clip, tmp_path):
    # the clip is 10 fps; 2.5 fps keeps every 4th frame
    paths = generate.extract_frames(clip, tmp_path, fps=2.5)
    assert [p.name for p in paths] == [f"f{i:06d}.png" for i in (0, 4, 8, 12, 16, 20)]


@pytest.mark.parametrize("content", [None, b"", b"\x00\x01garbage" * 100])
def test_bad_video_names_the_file(tmp_path, content):
    path = tmp_path / "broken.mp4"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(generate.GenerateError, match="broken.mp4"):
        generate.extract_frames(path, tmp_path / "out")


def test_demo_clip_from_bundled_photo(tmp_path):
    photo = load_image(generate.bundled_photo_path("grace_hopper"))
    frames = generate.demo_clip_frames(photo, n_frames=6, size=96)
    assert len(frames) == 6 and frames[0].shape == (96, 96, 3)
    assert not np.array_equal(frames[0], frames[2])  # the window moves
    generate.write_video(frames, tmp_path / "c.mp4")
    assert len(generate.extract_frames(tmp_path / "c.mp4", tmp_path / "f", stride=1)) == 6


@pytest.mark.parametrize("name", ["astronaut", "grace_hopper", "t1", "tom_hanks", "camera"])
def test_bundled_photos_ship_with_packages(name):
    img = load_image(generate.bundled_photo_path(name))
    assert img.mode == "RGB" and min(img.size) >= 100


def test_ingest_records_bad_files(tmp_path):
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "text.png").write_text("hello")
    rows = ingest_files([tmp_path / "empty.jpg", tmp_path / "text.png", generate.bundled_photo_path("astronaut")], tmp_path / "out", 10**8)
    assert [r["status"] for r in rows] == ["unreadable", "unreadable", "ok"]
    assert "0 bytes" in rows[0]["reason"] and "not an image" in rows[1]["reason"]
    assert (tmp_path / "out" / "astronaut.png").is_file()
    small = ingest_files([generate.bundled_photo_path("astronaut")], tmp_path / "o2", max_pixels=1000)
    assert small[0]["status"] == "too_large"


def test_samples_are_seeded_and_carry_ground_truth(tmp_path):
    w = tiny_generator_file(tmp_path / "g.pt")
    sample_items(w, [3], tmp_path / "a", truncation=0.7, device="cpu", stem="image")
    sample_items(w, [3], tmp_path / "b", truncation=0.7, device="cpu", stem="image")
    sample_items(w, [4], tmp_path / "c", truncation=0.7, device="cpu", stem="image")
    a = (tmp_path / "a" / "image.png").read_bytes()
    assert a == (tmp_path / "b" / "image.png").read_bytes()
    assert a != (tmp_path / "c" / "image.png").read_bytes()
    truth = np.load(tmp_path / "a" / "image.npz")
    G = load_generator(w, device="cpu")
    with torch.no_grad():
        w_again = G.mapping(torch.from_numpy(truth["z"])[None], truncation=0.7)[0].numpy()
    assert np.allclose(w_again, truth["w"], atol=1e-5)
    assert float(truth["truncation"]) == pytest.approx(0.7) and int(truth["seed"]) == 3
