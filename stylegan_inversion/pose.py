"""Head pose (yaw, pitch, roll in degrees) from 68 landmarks by PnP against a 3D mean face.

3D model: ``insightface/data/objects/meanshape_68.pkl`` (68x3 mean face in iBUG-68 order, shipped
in the insightface wheel; read with pickle, nothing of insightface is imported). Its axes are
x to the image right, y down, z toward the viewer; we flip z so the model frame matches the
OpenCV camera frame (x right, y down, z away from the camera) and make the model exactly
left-right symmetric (average with its mirror image), so a frontal symmetric face has yaw and
roll exactly 0 (yaw needs no calibration).

Pitch calibration: fitted to dlib landmarks of near-frontal faces, the model's inner points give
a pitch 8-22 degrees lower than the 68-point fit (whose jaw outline is reliable on frontal faces,
and which gives pitch ~0 there): 22 on skimage's astronaut, 8 on matplotlib's grace_hopper, 9 on
the 146 px low-quality crop, a median 15 over 90 frames of a frontal CelebV-HQ clip. The model is
therefore tilted once by ``MODEL_PITCH_DEG`` (-12, the median over these four subjects). After
it: astronaut -9, grace_hopper +5, the low-quality crop +2, the frontal clip -10 .. +18 (median +4).
Pitch is the least reliable angle (it also absorbs expression and camera height); the study bins
by yaw.

Points used (``POSE_POINTS``): nose bridge and nostrils (27-35), both eyes (36-47), eyebrows
(17-26) and the two mouth corners (48, 54). The jaw line (0-16) is left out on purpose: on a
turned head dlib places it on the visible outline, not on fixed 3D points; with it, the turned
CelebV-HQ clip's yaw came out about half as large (-24 instead of -40 degrees on its first
frame). The inner mouth is left out because it moves with expression.

Camera: a pinhole with focal length ``max(width, height)`` pixels (about 53 degrees field of view
across the long side), principal point at the image centre, square pixels, no lens distortion.
The rotation comes from ``cv2.solvePnP`` (EPnP start, Levenberg-Marquardt refinement). Angles are
reported relative to the line of sight from the camera to the face, not to the optical axis:
a face near the edge of a wide photo that looks into the lens has yaw = pitch = 0, which is what
"frontal" means for the look of the face (and so for inversion).

Sign conventions (from the camera's point of view, image x right, y down):

- yaw > 0: the face points toward the image right (the subject turns to their own left);
- pitch > 0: the face points up (chin raised);
- roll > 0: the face is rotated clockwise in the image (the eye on the image right is lower).

The rotation is ``R = Ry(-yaw) @ Rx(-pitch) @ Rz(roll)`` (camera-from-model; ``Rx``, ``Ry``,
``Rz`` the right-handed basic rotations in the camera frame). So yaw and pitch are the azimuth
and elevation of the direction the face points, and roll turns the head about that direction;
for a frontal face, roll equals the eye line's angle to the image horizontal.
"""

from __future__ import annotations

import functools
import logging
import math
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import SetupError
from .packages import package_dir

log = logging.getLogger(__name__)

# iBUG-68 left-right mirror permutation: point i of a face mirrors to point MIRROR_68[i].
MIRROR_68 = np.array(
    list(range(16, -1, -1))  # jaw
    + list(range(26, 16, -1))  # eyebrows
    + [27, 28, 29, 30]  # nose bridge
    + [35, 34, 33, 32, 31]  # nostrils
    + [45, 44, 43, 42, 47, 46]  # image-left eye <- image-right eye
    + [39, 38, 37, 36, 41, 40]  # image-right eye <- image-left eye
    + [54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55]  # outer mouth
    + [64, 63, 62, 61, 60, 67, 66, 65]  # inner mouth
)
MODEL_PITCH_DEG = -12.0  # see the module docstring
POSE_POINTS = np.array(list(range(17, 27)) + list(range(27, 36)) + list(range(36, 48)) + [48, 54])


@dataclass
class HeadPose:
    """Head pose of one face: Euler angles in degrees plus the PnP solution it came from."""

    yaw: float
    pitch: float
    roll: float
    rotation: np.ndarray  # [3, 3] camera-from-model, relative to the optical axis (before line of sight)
    translation: np.ndarray  # [3] model origin in camera coordinates (model units)
    reprojection_error: float  # RMS over POSE_POINTS, pixels


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Rebuilds numpy arrays only: any other global in the pickle is refused (no code runs on load)."""

    _ALLOWED = {("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "_reconstruct"),
                ("numpy._core.multiarray", "_reconstruct")}

    def find_class(self, module: str, name: str):
        if (module, name) not in self._ALLOWED:
            raise SetupError(f"{mean_face_path()}: refused to unpickle {module}.{name} (only numpy arrays are expected)")
        return super().find_class(module, name)


def mean_face_path() -> Path:
    """Path of insightface's 68-point 3D mean face, found without importing insightface."""
    return package_dir("insightface") / "data" / "objects" / "meanshape_68.pkl"


@functools.lru_cache(maxsize=1)
def mean_face() -> np.ndarray:
    """The symmetrised 3D mean face [68, 3] in the camera-aligned model frame (x right, y down, z away)."""
    path = mean_face_path()
    with open(path, "rb") as f:
        raw = np.asarray(_NumpyOnlyUnpickler(f).load(), dtype=np.float64)
    if raw.shape != (68, 3):
        raise SetupError(f"{path}: expected a [68, 3] mean face, got shape {raw.shape}")
    pts = raw * np.array([1.0, 1.0, -1.0])  # z toward viewer -> z away from camera
    mirrored = pts[MIRROR_68] * np.array([-1.0, 1.0, 1.0])
    sym = 0.5 * (pts + mirrored)
    sym[:, 0] -= sym[:, 0].mean()  # exactly 0 by symmetry; keep it explicit
    sym -= sym[POSE_POINTS].mean(axis=0)
    return sym @ rotation_from_euler(0.0, MODEL_PITCH_DEG, 0.0).T


def _rx(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]], dtype=np.float64)


def _ry(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]], dtype=np.float64)


def _rz(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]], dtype=np.float64)


def rotation_from_euler(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """Camera-from-model rotation for yaw, pitch, roll in degrees (conventions in the module docstring)."""
    y, p, r = (math.radians(v) for v in (yaw, pitch, roll))
    return _ry(-y) @ _rx(-p) @ _rz(r)


def euler_from_rotation(rotation: np.ndarray) -> tuple[float, float, float]:
    """(yaw, pitch, roll) in degrees of a camera-from-model rotation; inverse of rotation_from_euler."""
    R = np.asarray(rotation, dtype=np.float64)
    forward = R @ np.array([0.0, 0.0, -1.0])  # where the face points, in camera coordinates
    yaw = math.atan2(forward[0], -forward[2])
    pitch = math.atan2(-forward[1], math.hypot(forward[0], forward[2]))
    rz = _rx(pitch) @ _ry(yaw) @ R
    roll = math.atan2(rz[1, 0], rz[0, 0])
    return math.degrees(yaw), math.degrees(pitch), math.degrees(roll)


def line_of_sight_rotation(translation: np.ndarray) -> np.ndarray:
    """The smallest rotation taking the ray from the camera to ``translation`` onto the optical axis."""
    import cv2

    d = np.asarray(translation, dtype=np.float64).reshape(3)
    d = d / np.linalg.norm(d)
    axis = np.cross(d, [0.0, 0.0, 1.0])
    s = float(np.linalg.norm(axis))
    if s < 1e-12:
        return np.eye(3)
    Q, _ = cv2.Rodrigues(axis / s * math.atan2(s, float(d[2])))
    return Q


def camera_matrix(width: int, height: int) -> np.ndarray:
    """Pinhole intrinsics: focal length max(width, height) px, principal point at the image centre."""
    f = float(max(width, height))
    return np.array([[f, 0, (width - 1) / 2.0], [0, f, (height - 1) / 2.0], [0, 0, 1]], dtype=np.float64)


def project(points: np.ndarray, rotation: np.ndarray, translation: np.ndarray, camera: np.ndarray) -> np.ndarray:
    """Project model points [N, 3] to pixels [N, 2] through the pinhole camera."""
    cam = np.asarray(points, dtype=np.float64) @ np.asarray(rotation).T + np.asarray(translation).reshape(1, 3)
    uvw = cam @ np.asarray(camera).T
    return uvw[:, :2] / uvw[:, 2:3]


def estimate_pose(landmarks: np.ndarray, image_size: tuple[int, int]) -> HeadPose:
    """Head pose from 68 landmarks [68, 2] in an image of size (width, height)."""
    import cv2

    lm = np.asarray(landmarks, dtype=np.float64)
    if lm.shape != (68, 2):
        raise ValueError(f"expected landmarks of shape [68, 2], got {lm.shape}")
    model = mean_face()[POSE_POINTS]
    image_pts = lm[POSE_POINTS]
    K = camera_matrix(*image_size)
    dist = np.zeros(4)
    ok, rvec, tvec = cv2.solvePnP(model, image_pts, K, dist, flags=cv2.SOLVEPNP_EPNP)
    if not ok or tvec[2, 0] <= 0:
        # EPnP can fail on near-degenerate input; start LM from a frontal face in front of the camera.
        scale = np.ptp(image_pts[:, 0]) / max(np.ptp(model[:, 0]), 1e-9)
        rvec = np.zeros((3, 1))
        tvec = np.array([[0.0], [0.0], [K[0, 0] / max(scale, 1e-9)]])
    ok, rvec, tvec = cv2.solvePnP(model, image_pts, K, dist, rvec, tvec, useExtrinsicGuess=True, flags=cv2.SOLVEPNP_ITERATIVE)
    R, _ = cv2.Rodrigues(rvec)
    t = tvec.reshape(3)
    err = float(np.sqrt(np.mean(np.sum((project(model, R, t, K) - image_pts) ** 2, axis=1))))
    yaw, pitch, roll = euler_from_rotation(line_of_sight_rotation(t) @ R)
    return HeadPose(yaw=yaw, pitch=pitch, roll=roll, rotation=R, translation=t, reprojection_error=err)
