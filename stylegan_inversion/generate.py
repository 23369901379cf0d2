"""Inputs of the study: frames from videos, photos that ship inside installed packages,
user folders, and samples drawn from a generator with their latents as ground truth."""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image

from .io import InputError, atomic_path, load_image, save_png_atomic
from .errors import UserError
from .packages import MissingPackageError, package_dir

log = logging.getLogger(__name__)


class GenerateError(UserError, RuntimeError):
    """A video or generator that cannot produce inputs; the message names it."""


# --------------------------------------------------------------- bundled photos


def _package_dir(name: str) -> Path:
    try:
        return package_dir(name)
    except MissingPackageError as e:
        raise GenerateError(f"{e}; install the project's requirements") from None


def bundled_photo_path(name: str) -> Path:
    """Path of a face photo shipped inside an installed package (no download)."""
    if name == "astronaut":
        return _package_dir("skimage") / "data" / "astronaut.png"
    if name == "camera":  # no face: exercises the no_face path
        return _package_dir("skimage") / "data" / "camera.png"
    if name == "coffee":
        return _package_dir("skimage") / "data" / "coffee.png"
    if name == "grace_hopper":
        return _package_dir("matplotlib") / "mpl-data" / "sample_data" / "grace_hopper.jpg"
    if name == "t1":
        return _package_dir("insightface") / "data" / "images" / "t1.jpg"
    if name == "tom_hanks":
        return _package_dir("insightface") / "data" / "images" / "Tom_Hanks_54745.png"
    raise GenerateError(f"unknown bundled photo {name!r} (one of {', '.join(BUNDLED_PHOTOS)})")


BUNDLED_PHOTOS = ("astronaut", "grace_hopper", "t1", "tom_hanks", "camera", "coffee", "corrupt")


def write_bundled_item(name: str, out_png: Path) -> None:
    """Copy a bundled photo (as RGB PNG) to out_png; 'corrupt' writes a truncated JPEG on purpose."""
    if name == "corrupt":
        src = bundled_photo_path("grace_hopper").read_bytes()
        with atomic_path(out_png.with_suffix(".jpg")) as tmp:
            tmp.write_bytes(src[: len(src) // 3])
        return
    save_png_atomic(load_image(bundled_photo_path(name)), out_png)


# ----------------------------------------------------------------------- videos


def _ffmpeg_exe() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def iter_video_frames(path: str | Path, meta_out: dict | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """Yield (index, RGB uint8 frame) for every frame of a video; GenerateError if unreadable.

    ``meta_out``, if given, receives the stream metadata (fps, size, duration) before the first frame.
    """
    import imageio_ffmpeg

    path = Path(path)
    if not path.is_file():
        raise GenerateError(f"{path}: video not found")
    if path.stat().st_size == 0:
        raise GenerateError(f"{path}: video file is empty (0 bytes)")
    try:
        reader = imageio_ffmpeg.read_frames(str(path), pix_fmt="rgb24")
        meta = next(reader)
        if meta_out is not None:
            meta_out.update(meta)
        w, h = meta["size"]
        for i, buf in enumerate(reader):
            yield i, np.frombuffer(buf, dtype=np.uint8).reshape(h, w, 3)
    except GenerateError:
        raise
    except (RuntimeError, OSError, StopIteration, KeyError, ValueError) as e:
        first = str(e).strip().splitlines()
        raise GenerateError(f"{path}: cannot decode video ({first[-1] if first else type(e).__name__})") from None


def extract_frames(
    video: str | Path, out_dir: str | Path, stride: int = 5, max_frames: int | None = None, start: int = 0, fps: float | None = None
) -> list[Path]:
    """Write every ``stride``-th frame from ``start`` (or frames at a target ``fps``) as ``f<index:06d>.png``.

    With ``fps``, frame i is kept when it is the first frame at or after each tick of the target
    rate (i.e. floor(i * fps / source_fps) increases), so a 25 fps clip at fps=5 keeps every 5th frame.
    """
    if stride < 1:
        raise GenerateError(f"stride must be >= 1, got {stride}")
    if fps is not None and fps <= 0:
        raise GenerateError(f"fps must be > 0, got {fps}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    meta: dict = {}
    last_tick = -1
    for i, frame in iter_video_frames(video, meta):
        if i < start:
            continue
        if fps is not None:
            src = float(meta.get("fps") or 0)
            if src <= 0:
                raise GenerateError(f"{video}: the video does not state its frame rate; use a stride instead of fps")
            tick = int(np.floor((i - start) * fps / src + 1e-9))
            if tick == last_tick:
                continue
            last_tick = tick
        elif (i - start) % stride:
            continue
        if max_frames is not None and len(written) >= max_frames:
            break
        p = out_dir / f"f{i:06d}.png"
        save_png_atomic(Image.fromarray(frame), p)
        written.append(p)
    if not written:
        raise GenerateError(f"{video}: no frames decoded (empty or unreadable video)")
    return written


def write_video(frames: list[np.ndarray], path: str | Path, fps: float = 10.0) -> None:
    """Encode RGB frames to an H.264 MP4 atomically."""
    import imageio_ffmpeg

    h, w = frames[0].shape[:2]
    with atomic_path(path) as tmp:
        writer = imageio_ffmpeg.write_frames(
            str(tmp), (w, h), fps=fps, codec="libx264", pix_fmt_out="yuv420p", quality=8, macro_block_size=2, ffmpeg_log_level="error"
        )
        writer.send(None)
        for f in frames:
            writer.send(np.ascontiguousarray(f, dtype=np.uint8))
        writer.close()


def demo_clip_frames(photo: Image.Image, n_frames: int = 30, size: int = 320, max_yaw_like_shift: float = 0.12, max_roll_deg: float = 12.0) -> list[np.ndarray]:
    """A short synthetic 'head motion' clip from one photo: a crop window that sways and tilts."""
    w, h = photo.size
    side = min(w, h) * 0.9
    out = []
    for t in range(n_frames):
        phase = 2 * math.pi * t / max(1, n_frames)
        cx = w / 2 + max_yaw_like_shift * side * math.sin(phase)
        cy = h / 2 + 0.03 * side * math.cos(phase)
        roll = max_roll_deg * math.sin(phase)
        box = photo.rotate(roll, resample=Image.Resampling.BICUBIC, center=(cx, cy), fillcolor=(128, 128, 128))
        crop = box.crop((int(cx - side / 2), int(cy - side / 2), int(cx + side / 2), int(cy + side / 2)))
        out.append(np.asarray(crop.resize((size, size), Image.Resampling.LANCZOS)))
    return out


# -------------------------------------------------------------------- ingesting


def ingest_image(src: str | Path, out_png: str | Path, max_pixels: int) -> dict:
    """Load any image robustly and write it as upright RGB PNG; returns a record row."""
    src = Path(src)
    row = {"input": str(src), "output": Path(out_png).name, "status": "ok", "reason": "", "width": "", "height": ""}
    try:
        img = load_image(src, max_pixels=max_pixels)
    except InputError as e:
        row.update(status=e.status, reason=e.reason, output="")
        log.warning("%s: %s (%s)", src, e.status, e.reason)
        return row
    save_png_atomic(img, out_png)
    row.update(width=img.size[0], height=img.size[1])
    return row


# ---------------------------------------------------------------------- samples


def sample_latent(G, seed: int, truncation: float = 1.0):
    """Draw z from ``seed`` (on the CPU, device-independent) and map it to w; returns (z, w)."""
    import torch

    g = torch.Generator().manual_seed(int(seed))
    z = torch.randn(1, G.z_dim, generator=g)
    with torch.no_grad():
        w = G.mapping(z.to(G.device), truncation=truncation)
    return z, w


def generate_sample(G, seed: int, truncation: float = 1.0):
    """One generator sample with its ground truth: (PIL image, dict of z, w, seed, noise_seed, truncation).

    z and the noise maps are both drawn from ``seed`` (on the CPU, so the same on every device)."""
    import torch

    from .images import tensor_to_pil

    z, w = sample_latent(G, seed, truncation)
    noise_seed = seed
    noise = G.make_noise(batch=1, seed=noise_seed)
    with torch.no_grad():
        img = G.synthesis(w.unsqueeze(1).expand(-1, G.num_ws, -1), noise=noise)
    return tensor_to_pil(img[0]), {
        "z": z[0].cpu().numpy(),
        "w": w[0].cpu().numpy(),
        "seed": int(seed),
        "noise_seed": int(noise_seed),
        "truncation": float(truncation),
    }
