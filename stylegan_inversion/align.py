"""Align stage: FFHQ face alignment (NVIDIA's recipe), head pose, and one record per input.

``ffhq_align`` follows the steps of NVIDIA's FFHQ alignment (``recreate_aligned_images`` in
NVlabs/ffhq-dataset): an oriented square ("quad") from the eye and mouth landmarks, a shrink of
large images, a crop with a border, reflect padding with blur and a fade to the median colour
where the quad leaves the image, a QUAD transform to ``transform_size`` and a final Lanczos
resize to ``output_size``. The padding step's reflect pad and Gaussian blur run in OpenCV with
SciPy's kernel, border and precision path (several times faster); on 30 test faces (18 of them
padded) the output was identical to the original recipe's, at 4096 -> 1024 and at 512 / 512.

Modes of the stage (``align_image``):

- ``ffhq``: one FFHQ-aligned image per face (the largest face unless ``all_faces``); no face ->
  status ``no_face``.
- ``center``: the largest centred square of the raw image, resized (no alignment); ``ok``
  whenever the image loads, landmarks and pose of the largest face recorded when one is found.
- ``resize``: the input is already aligned (FFHQ images, StyleGAN samples): resized (a
  non-square input is centre-cropped first); ``ok`` whenever the image loads, pose as above.

Everything is deterministic (no random numbers). Landmarks, boxes, the quad and the eye
distance in the records are in pixels of the upright input image.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from PIL import Image

from .io import DEFAULT_MAX_PIXELS, STATUS_OK, InputError, StageRecorder, load_image, resolve_inputs, save_png_atomic
from .errors import UserError
from .landmarks import Face, detect_faces
from .pose import HeadPose, estimate_pose

log = logging.getLogger(__name__)

MODES = ("ffhq", "center", "resize")
STAGE = "align"
COLUMNS = [
    "input", "face_index", "status", "reason", "output", "mode", "size", "transform_size",
    "n_faces", "image_width", "image_height", "yaw", "pitch", "roll", "pose_error_px",
    "eye_distance_px", "face_box", "landmarks", "quad",
]  # fmt: skip
SMALL_FACE_UPSCALE = 4.0  # an ok row notes a face whose FFHQ crop is enlarged more than this
STATUS_NO_FACE = "no_face"
STATUS_ERROR = "error"

_LANCZOS = Image.Resampling.LANCZOS


# ---------------------------------------------------------------- FFHQ recipe


def ffhq_quad(landmarks: np.ndarray) -> tuple[np.ndarray, float]:
    """The FFHQ crop square [4, 2] (top-left, bottom-left, bottom-right, top-right) and its side."""
    lm = np.asarray(landmarks, dtype=np.float64)
    if lm.shape != (68, 2):
        raise ValueError(f"expected landmarks of shape [68, 2], got {lm.shape}")
    eye_l = lm[36:42].mean(axis=0)
    eye_r = lm[42:48].mean(axis=0)
    eye_mid = (eye_l + eye_r) * 0.5
    eye_vec = eye_r - eye_l
    mouth_mid = (lm[48] + lm[54]) * 0.5
    down = mouth_mid - eye_mid
    # Horizontal axis: the eye line plus the eye-to-mouth line turned by -90 degrees (both point right).
    across = eye_vec + np.array([down[1], -down[0]])
    across = across / np.hypot(*across)
    across = across * max(np.hypot(*eye_vec) * 2.0, np.hypot(*down) * 1.8)
    along = np.array([-across[1], across[0]])  # across turned by +90 degrees (image y down)
    centre = eye_mid + down * 0.1
    quad = np.stack([centre - across - along, centre - across + along, centre + across + along, centre + across - along])
    return quad, float(np.hypot(*across) * 2.0)


def _quad_bounds(quad: np.ndarray) -> tuple[int, int, int, int]:
    """Integer bounding box (floor of minima, ceil of maxima) of a quad."""
    return (
        int(np.floor(quad[:, 0].min())),
        int(np.floor(quad[:, 1].min())),
        int(np.ceil(quad[:, 0].max())),
        int(np.ceil(quad[:, 1].max())),
    )


def _gaussian_kernel(sigma: float) -> np.ndarray:
    """SciPy's 1-D Gaussian kernel (truncate 4.0), float64."""
    radius = int(4.0 * sigma + 0.5)
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    kernel = np.exp(-0.5 / (sigma * sigma) * x * x)
    return kernel / kernel.sum()


def _gaussian_blur_like_scipy(plane: np.ndarray, sigma: float) -> np.ndarray:
    """scipy.ndimage.gaussian_filter(plane, sigma) for a 2-D array, as float32, computed with OpenCV.

    Same kernel, same mirror border and the same precision path as SciPy (axis 0 then axis 1,
    each filtered in float64 and stored as float32), so the results are identical up to float64
    summation order, which does not survive the float32 rounding.
    """
    import cv2

    kernel = _gaussian_kernel(sigma)
    if len(kernel) // 2 >= min(plane.shape):  # OpenCV's mirror border needs the kernel inside the image
        from scipy.ndimage import gaussian_filter

        return gaussian_filter(plane.astype(np.float32), sigma)
    one = np.ones(1, dtype=np.float64)

    def along_rows(a: np.ndarray) -> np.ndarray:
        return cv2.sepFilter2D(a, cv2.CV_64F, kernel, one, borderType=cv2.BORDER_REFLECT)

    # OpenCV's float64 filter is ~2.5x faster along rows than down columns: filter the transpose.
    down = along_rows(np.ascontiguousarray(plane.T, dtype=np.float64)).T.astype(np.float32)
    return along_rows(down.astype(np.float64)).astype(np.float32)


def _reflect_pad(img: Image.Image, pad: Sequence[int]) -> np.ndarray:
    """Mirror-pad (edge not repeated, like numpy 'reflect') by (left, top, right, bottom); uint8 [H, W, 3]."""
    import cv2

    arr = np.asarray(img.convert("RGB"))
    left, top, right, bottom = (int(v) for v in pad)
    h, w = arr.shape[:2]
    if h < 2 or w < 2:
        return np.pad(arr, ((top, bottom), (left, right), (0, 0)), mode="reflect")
    return cv2.copyMakeBorder(arr, top, bottom, left, right, cv2.BORDER_REFLECT_101)


def _zero_run(weight: np.ndarray) -> tuple[int, int]:
    """[start, end) of the indices where a V-shaped 1-D weight is exactly 0 (empty: start == end)."""
    idx = np.flatnonzero(weight == 0.0)
    return (int(idx[0]), int(idx[-1]) + 1) if len(idx) else (0, 0)


def _frame(box: tuple[int, int, int, int], h: int, w: int) -> list[tuple[int, int, int, int]]:
    """Four non-empty strips (row0, row1, col0, col1) covering an h x w array outside box = (x0, y0, x1, y1)."""
    x0, y0, x1, y1 = box
    if x1 <= x0 or y1 <= y0:
        return [(0, h, 0, w)]
    strips = [(0, y0, 0, w), (y1, h, 0, w), (y0, y1, 0, x0), (y0, y1, x1, w)]
    return [(ra, rb, ca, cb) for ra, rb, ca, cb in strips if rb > ra and cb > ca]


def _blur_strip(plane: np.ndarray, sigma: float, strip: tuple[int, int, int, int]) -> np.ndarray:
    """The SciPy-equal Gaussian blur of a 2-D plane, evaluated on one strip (row0, row1, col0, col1).

    The blur runs on a window extended by the kernel radius, so no strip pixel sees a window
    edge that is not an image edge.
    """
    h, w = plane.shape
    ra, rb, ca, cb = strip
    r = len(_gaussian_kernel(sigma)) // 2
    wy0, wy1, wx0, wx1 = max(ra - r, 0), min(rb + r, h), max(ca - r, 0), min(cb + r, w)
    blurred = _gaussian_blur_like_scipy(plane[wy0:wy1, wx0:wx1], sigma)
    return blurred[ra - wy0 : rb - wy0, ca - wx0 : cb - wx0]


def _pad_blur_fade(img: Image.Image, pad: Sequence[int], qsize: float) -> Image.Image:
    """Reflect-pad, blur towards the borders and fade to the median colour (the FFHQ padding step).

    Per pixel this is the recipe's arithmetic (float32 image, float64 weights); it is only
    evaluated where it changes something: the blur weight is 0 in a central box, the fade
    weight outside the padding.
    """
    left, top, right, bottom = (max(int(v), 1) for v in pad)
    padded = _reflect_pad(img, (left, top, right, bottom))
    h, w, _ = padded.shape
    xs = np.arange(w, dtype=np.float32)
    ys = np.arange(h, dtype=np.float32)
    # 1 at the outer edge, 0 where the original image starts, negative inside (float64, as in the recipe).
    ramp_x = 1.0 - np.minimum(xs / np.int64(left), (w - 1 - xs) / np.int64(right))
    ramp_y = 1.0 - np.minimum(ys / np.int64(top), (h - 1 - ys) / np.int64(bottom))

    def mask(strip: tuple[int, int, int, int]) -> np.ndarray:
        ra, rb, ca, cb = strip
        return np.maximum(ramp_x[None, ca:cb], ramp_y[ra:rb, None])

    x0, x1 = _zero_run(np.clip(ramp_x * 3.0 + 1.0, 0.0, 1.0))
    y0, y1 = _zero_run(np.clip(ramp_y * 3.0 + 1.0, 0.0, 1.0))
    blur_strips = _frame((x0, y0, x1, y1), h, w)
    fade_strips = _frame((left, top, w - right, h - bottom), h, w)
    blur_weights = [np.clip(mask(s) * 3.0 + 1.0, 0.0, 1.0) for s in blur_strips]
    fade_weights = [np.clip(mask(s), 0.0, 1.0) for s in fade_strips]
    sigma = qsize * 0.02
    out = np.empty((h, w, 3), dtype=np.float32)
    for c in range(3):
        source = padded[:, :, c]
        plane = source.astype(np.float32)
        for (ra, rb, ca, cb), weight in zip(blur_strips, blur_weights):
            part = plane[ra:rb, ca:cb]
            part += (_blur_strip(source, sigma, (ra, rb, ca, cb)) - part) * weight
        median = np.median(plane)
        for (ra, rb, ca, cb), weight in zip(fade_strips, fade_weights):
            part = plane[ra:rb, ca:cb]
            part += (median - part) * weight
        out[:, :, c] = plane
    return Image.fromarray(np.uint8(np.clip(np.rint(out), 0, 255)), "RGB")


def ffhq_align(
    image: Image.Image,
    landmarks: np.ndarray,
    output_size: int = 1024,
    transform_size: int = 4096,
    enable_padding: bool = True,
) -> Image.Image:
    """FFHQ-align one face given its 68 dlib-order landmarks [68, 2]; returns an RGB output_size square."""
    if transform_size < output_size:
        raise ValueError(f"transform_size ({transform_size}) must be at least output_size ({output_size})")
    img = image if image.mode == "RGB" else image.convert("RGB")
    quad, qsize = ffhq_quad(landmarks)

    # Shrink: keep at most ~2 input pixels per output pixel before the transform.
    shrink = int(np.floor(qsize / output_size * 0.5))
    if shrink > 1:
        small = (int(np.rint(float(img.size[0]) / shrink)), int(np.rint(float(img.size[1]) / shrink)))
        img = img.resize(small, _LANCZOS)
        quad = quad / shrink
        qsize = qsize / shrink

    # Crop to the quad plus a border.
    border = max(int(np.rint(qsize * 0.1)), 3)
    x0, y0, x1, y1 = _quad_bounds(quad)
    crop = (max(x0 - border, 0), max(y0 - border, 0), min(x1 + border, img.size[0]), min(y1 + border, img.size[1]))
    if crop[2] - crop[0] < img.size[0] or crop[3] - crop[1] < img.size[1]:
        img = img.crop(crop)
        quad = quad - np.array(crop[:2], dtype=np.float64)

    # Pad where the quad (plus border) leaves the image.
    x0, y0, x1, y1 = _quad_bounds(quad)
    pad = (max(-x0 + border, 0), max(-y0 + border, 0), max(x1 - img.size[0] + border, 0), max(y1 - img.size[1] + border, 0))
    if enable_padding and max(pad) > border - 4:
        pad = tuple(max(p, int(np.rint(qsize * 0.3))) for p in pad)
        img = _pad_blur_fade(img, pad, qsize)
        quad = quad + np.array(pad[:2], dtype=np.float64)

    out = img.transform((transform_size, transform_size), Image.Transform.QUAD, tuple((quad + 0.5).flatten()), Image.Resampling.BILINEAR)
    if output_size < transform_size:
        out = out.resize((output_size, output_size), _LANCZOS)
    return out


def ffhq_point_map(landmarks: np.ndarray, output_size: int) -> np.ndarray:
    """Affine map [2, 3] from input pixel coordinates to FFHQ output pixel coordinates (pixel centres at integers).

    Exact when the shrink step is not taken (quad side below 4x output_size); otherwise the shrink's
    rounding of the image size moves points by a fraction of an input pixel.
    """
    quad, _ = ffhq_quad(landmarks)
    origin, left_bottom, _, right_top = quad
    # The QUAD transform samples input pixel origin + basis @ (u + 0.5, v + 0.5) for output pixel (u, v).
    basis = np.stack([right_top - origin, left_bottom - origin], axis=1) / output_size
    inv = np.linalg.inv(basis)
    return np.concatenate([inv, (-inv @ origin - 0.5)[:, None]], axis=1)


def canonical_eye_centres(landmarks: np.ndarray, output_size: int) -> np.ndarray:
    """Where the two eye centres (image-left, image-right) land in the FFHQ output [2, 2]."""
    lm = np.asarray(landmarks, dtype=np.float64)
    eyes = np.stack([lm[36:42].mean(axis=0), lm[42:48].mean(axis=0)])
    A = ffhq_point_map(lm, output_size)
    return eyes @ A[:, :2].T + A[:, 2]


# ---------------------------------------------------------------- other modes


def center_square(image: Image.Image, size: int) -> Image.Image:
    """The largest centred square of the image, resized to size x size (Lanczos)."""
    w, h = image.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    square = image.crop((left, top, left + side, top + side))
    return square if side == size else square.resize((size, size), _LANCZOS)


# ---------------------------------------------------------------- stage


@dataclass
class FaceResult:
    """One output of align_image: the image written for a face (or the whole input) and its measurements."""

    face_index: int | None
    image: Image.Image
    face: Face | None
    pose: HeadPose | None
    quad: np.ndarray | None
    n_faces: int


def align_image(
    image: Image.Image,
    mode: str = "ffhq",
    size: int = 512,
    transform_size: int | None = None,
    all_faces: bool = False,
    faces: list[Face] | None = None,
) -> list[FaceResult]:
    """Align an upright RGB image; [] in ffhq mode when no face is found (transform_size defaults to size)."""
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; expected one of {', '.join(MODES)}")
    if size < 1:
        raise ValueError(f"size must be positive, got {size}")
    transform_size = size if transform_size is None else transform_size
    if faces is None:
        faces = detect_faces(image)
    poses = [estimate_pose(f.landmarks, image.size) for f in faces]
    if mode != "ffhq":
        out = center_square(image, size)  # centre: the raw crop; resize: an aligned input (cropped only if not square)
        face, hp = (faces[0], poses[0]) if faces else (None, None)
        quad = ffhq_quad(face.landmarks)[0] if face is not None else None
        return [FaceResult(0 if face is not None else None, out, face, hp, quad, len(faces))]
    chosen = range(len(faces)) if all_faces else range(min(1, len(faces)))
    results = []
    for k in chosen:
        aligned = ffhq_align(image, faces[k].landmarks, output_size=size, transform_size=transform_size)
        results.append(FaceResult(k, aligned, faces[k], poses[k], ffhq_quad(faces[k].landmarks)[0], len(faces)))
    return results


def _round_list(a: np.ndarray, ndigits: int) -> list:
    return np.round(np.asarray(a, dtype=np.float64), ndigits).tolist()


def _face_columns(res: FaceResult) -> dict:
    """The measurement columns of a record (empty strings when there is no face)."""
    if res.face is None:
        return {}
    f, hp = res.face, res.pose
    cols = {
        "face_index": res.face_index,
        "eye_distance_px": round(f.eye_distance, 2),
        "face_box": json.dumps(_round_list(f.box, 1)),
        "landmarks": json.dumps(_round_list(f.landmarks, 2)),
        "quad": json.dumps(_round_list(res.quad, 2)) if res.quad is not None else "",
    }
    if hp is not None:
        cols.update(yaw=round(hp.yaw, 2), pitch=round(hp.pitch, 2), roll=round(hp.roll, 2), pose_error_px=round(hp.reprojection_error, 2))
    return cols


def _note(res: FaceResult, mode: str, size: int, image_size: tuple[int, int]) -> str:
    """The reason column of an ok row: empty, or notes worth knowing downstream."""
    notes = []
    if mode == "resize" and image_size[0] != image_size[1]:
        notes.append(f"not square ({image_size[0]}x{image_size[1]}): centred square used")
    if res.face is None:
        notes.append("no face found (pose not measured)")
    elif mode == "ffhq" and size / res.face.crop_side > SMALL_FACE_UPSCALE:
        scale = size / res.face.crop_side
        notes.append(f"small face: eye distance {res.face.eye_distance:.1f} px, upscaled {scale:.1f}x")
    return "; ".join(notes)


def _unique_stem(stem: str, used: set[str]) -> str:
    """stem, or stem__2, stem__3 ... if an earlier input of this run already used it."""
    name, k = stem, 1
    while name in used:
        k += 1
        name = f"{stem}__{k}"
    used.add(name)
    return name


def _remove_stale(out_dir: Path, stem: str, all_faces: bool, keep: set[str]) -> None:
    """Delete this stem's outputs of an earlier run that this run did not write."""
    if all_faces:
        pattern = re.compile(re.escape(stem) + r"_\d+\.png")
        stale = [p for p in out_dir.glob("*.png") if pattern.fullmatch(p.name)] + [out_dir / f"{stem}.png"]
    else:
        stale = [out_dir / f"{stem}.png"]
    for p in stale:
        if p.name not in keep:
            p.unlink(missing_ok=True)


def align_files(
    paths: Iterable[str | Path],
    out_dir: str | Path,
    mode: str = "ffhq",
    size: int = 512,
    transform_size: int | None = None,
    all_faces: bool = False,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> list[dict]:
    """Run the align stage on files: write <stem>.png (or <stem>_<k>.png) and align.csv in out_dir."""
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; expected one of {', '.join(MODES)}")
    transform_size = size if transform_size is None else transform_size
    if transform_size < size:
        raise ValueError(f"transform_size ({transform_size}) must be at least size ({size})")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    recorder = StageRecorder(out_dir, STAGE, COLUMNS)
    used: set[str] = set()
    written: set[str] = set()
    for item in resolve_inputs(paths):
        stem = _unique_stem(item.name, used)
        base = {"input": str(item.path), "mode": mode, "size": size, "transform_size": transform_size if mode == "ffhq" else ""}
        rows = []
        item_written: list[str] = []
        if item.skip_status:
            rows.append({**base, "status": item.skip_status, "reason": item.skip_reason})
        else:
            try:
                image = load_image(item.path, max_pixels=max_pixels)
                base.update(image_width=image.size[0], image_height=image.size[1])
                results = align_image(image, mode, size, transform_size, all_faces)
                if not results:
                    rows.append({**base, "status": STATUS_NO_FACE, "reason": "no face found by the HOG detector", "n_faces": 0})
                for res in results:
                    name = f"{stem}_{res.face_index}.png" if (all_faces and mode == "ffhq") else f"{stem}.png"
                    save_png_atomic(res.image, out_dir / name)
                    item_written.append(name)
                    reason = _note(res, mode, size, image.size)
                    rows.append({**base, "status": STATUS_OK, "reason": reason, "output": name, "n_faces": res.n_faces, **_face_columns(res)})
            except InputError as e:
                rows = [{**base, "status": e.status, "reason": e.reason}]
            except (UserError, ImportError, MemoryError):
                raise  # a missing model or package fails the whole batch, not each image in turn
            except Exception as e:  # noqa: BLE001 - one bad input must never stop the batch
                log.debug("%s: unexpected failure", item.path, exc_info=True)
                rows = [{**base, "status": STATUS_ERROR, "reason": f"{type(e).__name__}: {e}"}]
                item_written = []  # a failed input leaves no images behind
        written.update(item_written)
        _remove_stale(out_dir, stem, all_faces and mode == "ffhq", written)
        for row in rows:
            if row["status"] != STATUS_OK:
                log.warning("%s: %s: %s", item.path, row["status"], row["reason"])
            recorder.add(row)
    recorder.finish()
    return recorder.rows
