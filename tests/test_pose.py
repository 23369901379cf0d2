"""Head pose: conventions, recovery of rendered rotations of the 3D model, and real faces turned and frontal."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from stylegan_inversion import pose as P
from stylegan_inversion.io import load_image
from stylegan_inversion.landmarks import detect_faces

PKG = Path(importlib.util.find_spec("insightface").submodule_search_locations[0])
ASTRONAUT = Path(importlib.util.find_spec("skimage").submodule_search_locations[0]) / "data" / "astronaut.png"
HANKS = PKG / "data" / "images" / "Tom_Hanks_54745.png"
CLIPS = Path(__file__).resolve().parents[2] / "shared" / "data" / "celebvhq-clips"
TURNED_CLIP, FRONTAL_CLIP = "0xjr1vVzFKY_0.mp4", "0tx4o3yXM64_0.mp4"


def grace_hopper() -> Path:
    import matplotlib.cbook

    return Path(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))


def render(yaw: float, pitch: float, roll: float, size=(512, 512), centre=None, depth=6.0) -> np.ndarray:
    """68 landmarks [68, 2] of the 3D mean face posed (relative to the line of sight) and projected."""
    K = P.camera_matrix(*size)
    if centre is None:
        centre = ((size[0] - 1) / 2, (size[1] - 1) / 2)
    ray = np.linalg.inv(K) @ np.array([centre[0], centre[1], 1.0])
    t = ray / ray[2] * depth
    R = P.line_of_sight_rotation(t).T @ P.rotation_from_euler(yaw, pitch, roll)
    return P.project(P.mean_face(), R, t, K)


def mirror(landmarks: np.ndarray, width: int) -> np.ndarray:
    """Landmarks of the left-right mirrored image, renumbered so they are again in iBUG-68 order."""
    flipped = landmarks * [-1, 1] + [width - 1, 0]
    return flipped[P.MIRROR_68]


# ---------------------------------------------------------------- conventions


def test_euler_round_trip():
    """euler_from_rotation inverts rotation_from_euler over the range of head poses."""
    for yaw in (-80, -35, 0, 12, 60):
        for pitch in (-50, -5, 0, 30):
            for roll in (-40, 0, 7, 45):
                R = P.rotation_from_euler(yaw, pitch, roll)
                np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-12)
                np.testing.assert_allclose(P.euler_from_rotation(R), (yaw, pitch, roll), atol=1e-9)


def test_signs_mean_what_the_docstring_says():
    """yaw > 0 moves the nose tip right of the eyes, pitch > 0 moves it up, roll > 0 lowers the image-right eye."""

    def nose_from_eyes(lm: np.ndarray) -> np.ndarray:
        return lm[30] - lm[36:48].mean(axis=0)

    base = nose_from_eyes(render(0, 0, 0))
    assert abs(base[0]) < 1e-6
    assert nose_from_eyes(render(20, 0, 0))[0] > base[0] + 5
    assert nose_from_eyes(render(-20, 0, 0))[0] < base[0] - 5
    assert nose_from_eyes(render(0, 20, 0))[1] < base[1] - 5
    rolled = render(0, 0, 15)
    left, right = rolled[36:42].mean(axis=0), rolled[42:48].mean(axis=0)
    assert np.degrees(np.arctan2(right[1] - left[1], right[0] - left[0])) == pytest.approx(15, abs=1.0)


def test_mean_face_is_symmetric_and_mirror_is_an_involution():
    """The model is exactly left-right symmetric, so a frontal face has yaw = roll = 0."""
    assert sorted(P.MIRROR_68.tolist()) == list(range(68))
    np.testing.assert_array_equal(P.MIRROR_68[P.MIRROR_68], np.arange(68))
    m = P.mean_face()
    np.testing.assert_allclose(m[P.MIRROR_68] * [-1, 1, 1], m, atol=1e-12)
    assert m[36:42, 0].mean() < 0 < m[42:48, 0].mean()  # iBUG 36-41 is the eye on the image left


# ---------------------------------------------------------------- recovery


@pytest.mark.parametrize("yaw,pitch,roll", [(0, 0, 0), (30, 0, 0), (-45, 10, 0), (15, -20, 25), (-60, 5, -10), (70, 0, 0)])
def test_recovers_rendered_rotations(yaw, pitch, roll):
    """Landmarks rendered from the model at a known pose give that pose back."""
    lm = render(yaw, pitch, roll)
    hp = P.estimate_pose(lm, (512, 512))
    np.testing.assert_allclose((hp.yaw, hp.pitch, hp.roll), (yaw, pitch, roll), atol=0.2)
    assert hp.reprojection_error < 0.05


def test_recovers_rotations_from_noisy_landmarks():
    """With 1.5 px landmark noise on a 100 px wide face the pose is still within a few degrees."""
    rng = np.random.default_rng(1)
    for yaw, pitch, roll in [(0, 0, 0), (35, 5, -5), (-40, -10, 8)]:
        errs = []
        for _ in range(10):
            lm = render(yaw, pitch, roll) + rng.normal(0, 1.5, (68, 2))
            hp = P.estimate_pose(lm, (512, 512))
            errs.append(np.subtract((hp.yaw, hp.pitch, hp.roll), (yaw, pitch, roll)))
        assert np.abs(np.median(errs, axis=0)).max() < 3.0


def test_off_centre_face_looking_into_the_lens_is_frontal():
    """Angles are relative to the line of sight: a face in the corner of a wide photo looking at the camera is frontal."""
    size = (1600, 1000)
    lm = render(0, 0, 0, size=size, centre=(150, 120))
    hp = P.estimate_pose(lm, size)
    np.testing.assert_allclose((hp.yaw, hp.pitch, hp.roll), (0, 0, 0), atol=0.2)
    lm = render(25, -10, 5, size=size, centre=(1450, 880))
    hp = P.estimate_pose(lm, size)
    np.testing.assert_allclose((hp.yaw, hp.pitch, hp.roll), (25, -10, 5), atol=0.2)


# ---------------------------------------------------------------- real faces


def pose_of(img: Image.Image) -> P.HeadPose:
    faces = detect_faces(img)
    assert faces, "no face found"
    return P.estimate_pose(faces[0].landmarks, img.size)


def test_frontal_photos_have_small_yaw_and_mirroring_negates_yaw_and_roll():
    """Astronaut and Grace Hopper look into the lens (|yaw| < 8); a mirrored photo has opposite yaw and roll."""
    for path in (ASTRONAUT, grace_hopper()):
        img = load_image(path)
        hp = pose_of(img)
        assert abs(hp.yaw) < 8 and abs(hp.pitch) < 12
        lm = detect_faces(img)[0].landmarks
        hm = P.estimate_pose(mirror(lm, img.size[0]), img.size)
        assert hm.yaw == pytest.approx(-hp.yaw, abs=0.5) and hm.roll == pytest.approx(-hp.roll, abs=0.5)
        assert hm.pitch == pytest.approx(hp.pitch, abs=0.5)


def test_turned_head_has_large_yaw_with_the_right_sign():
    """Tom Hanks faces the image right (yaw > 15); his mirror image faces left (yaw < -15)."""
    img = load_image(HANKS)
    assert pose_of(img).yaw > 15
    assert pose_of(ImageOps.mirror(img)).yaw < -15


def clip_yaws(name: str, step: int = 5, limit: int = 60) -> list[float]:
    """Yaw of the largest face in every step-th frame of a clip (first `limit` frames)."""
    import imageio_ffmpeg

    gen = imageio_ffmpeg.read_frames(str(CLIPS / name))
    meta = next(gen)
    w, h = meta["size"]
    yaws = []
    for i, buf in enumerate(gen):
        if i >= limit:
            break
        if i % step == 0:
            frame = Image.fromarray(np.frombuffer(buf, np.uint8).reshape(h, w, 3))
            yaws.append(pose_of(frame).yaw)
    gen.close()
    return yaws


@pytest.mark.skipif(not (CLIPS / TURNED_CLIP).is_file(), reason="CelebV-HQ clips not present in ../shared/data")
def test_yaw_separates_the_turned_clip_from_the_frontal_clip():
    """Every 5th frame: the turned head's |yaw| exceeds 25 degrees, the frontal one's stays below 20."""
    turned = clip_yaws(TURNED_CLIP)
    frontal = clip_yaws(FRONTAL_CLIP)
    assert len(turned) == len(frontal) == 12
    assert max(np.abs(frontal)) < 20 and min(np.abs(turned)) > 25
    assert all(y < 0 for y in turned)  # the subject faces the image left throughout
