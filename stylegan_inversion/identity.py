"""Face identity: an ArcFace IR-SE network as a differentiable loss, and dlib's descriptor as a metric.

Two tools for two jobs:

- ``IdentityModel`` wraps an IR-SE ArcFace backbone (the 50-layer "ir_se" network of TreB1eN's
  InsightFace_Pytorch, whose ``model_ir_se50.pth`` pSp / e4e use as their ``id_loss``).
  ``embed`` takes FFHQ-aligned faces [N, 3, H, W] in [-1, 1] and returns L2-normalised
  embeddings [N, 512], differentiable w.r.t. the input; the projector's loss is ``1 - cos``.
  The network is frozen and always in eval mode.
- ``dlib_identity_distance`` compares two FFHQ-aligned PIL images with dlib's 128-D face
  descriptor (``dlib_face_recognition_resnet_model_v1.dat``, shipped by the pip package
  face-recognition-models): a real identity metric that works offline. Below
  ``DLIB_SAME_PERSON_THRESHOLD`` (0.6) dlib calls two faces the same person.

Preprocessing for the network (pSp's ``IDLoss.extract_feats``): the face is brought to 256 px,
cropped to rows 35:223 and columns 32:220 (``CROP_BOX_256``, a 188 px square around the inner
face), and adaptive-average-pooled to 112 px. Sizes above 256 are adaptive-average-pooled to 256
first (pSp's ``face_pool``; an exact box average for 512 and 1024); sizes below 256 are
upsampled bilinearly, so ``crop_box(size)`` is the same region at every size. Pixels stay in
[-1, 1] and RGB order, as pSp feeds them (TreB1eN normalised with mean 0.5 and std 0.5; its
training images were read in BGR order, which pSp ignores; ``bgr=True`` flips the channels).

Checkpoints: ``load_irse50`` reads either a plain state dict with TreB1eN's key names
(``input_layer.*``, ``body.N.*``, ``output_layer.*``: the pSp file) or a file written by
``save_identity`` (``{"state_dict": ..., "stylegan_inversion_identity": {config, stand_in, ...}}``),
which is how the offline stand-in travels through the workflow like a downloaded asset. Keys are
checked strictly; only ``*.num_batches_tracked`` (not saved by PyTorch < 0.4.1, unused in eval)
may be absent.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

from .device import resolve_device
from .errors import SetupError
from .packages import face_recognition_models_dir
from .io import pil_to_array
from .stylegan2 import CheckpointError, describe_keys, load_checkpoint_dict
from .weights import WeightsError

log = logging.getLogger(__name__)

ASSET_PATH = "data/weights/arcface-irse50.pt"  # where the download-weights stage puts the IR-SE50
ASSET_SOURCE = "model_ir_se50.pth of pixel2style2pixel (TreB1eN InsightFace_Pytorch ArcFace IR-SE50)"
META_KEY = "stylegan_inversion_identity"
FORMAT_VERSION = 1

ARCFACE_SIZE = 112  # the network's input side
CROP_REFERENCE = 256  # the side at which pSp crops
CROP_BOX_256 = (32, 35, 220, 223)  # (left, top, right, bottom) at 256 px: pSp's x[:, :, 35:223, 32:220]

DLIB_SAME_PERSON_THRESHOLD = 0.6
# dlib HOG box of the face in an FFHQ-aligned image, as fractions of (width, height, width, height).
# Measured: mean HOG box of 8 faces (skimage astronaut, Grace Hopper, 6 in insightface t1.jpg)
# aligned with the FFHQ recipe at 256, 512 and 1024 px (per-edge std 0.03-0.05; the HOG pyramid
# quantises box sizes). Centre (0.50, 0.58), side 0.60: FFHQ puts the eyes at y ~ 0.48, 0.25 apart.
FFHQ_FACE_BOX = (0.20, 0.28, 0.80, 0.88)
DLIB_MIN_SIDE = 32  # smaller images get NaN: too few pixels for a 150 px face chip
DLIB_MIN_IOU = 0.3  # a HOG box overlapping FFHQ_FACE_BOX less than this is not the aligned face
DLIB_UPSAMPLE_MAX_SIDE = 512  # HOG x2 upsampling is retried only up to this image side
DLIB_DESCRIPTOR_FILE = "dlib_face_recognition_resnet_model_v1.dat"
DLIB_PREDICTOR_FILE = "shape_predictor_5_face_landmarks.dat"


# ================================================================= IR-SE network


@dataclass(frozen=True)
class IRSEConfig:
    """Shape of an IR-SE backbone; ``irse50()`` is ArcFace IR-SE50 (TreB1eN get_blocks(50))."""

    stem: int = 64  # channels of the 3x3 stem (input_layer)
    channels: tuple[int, ...] = (64, 128, 256, 512)  # depth of each stage
    units: tuple[int, ...] = (3, 4, 14, 3)  # bottlenecks per stage; the first of each has stride 2
    embedding_dim: int = 512
    se_reduction: int = 16  # squeeze-excite bottleneck: channels // se_reduction
    input_size: int = ARCFACE_SIZE
    dropout: float = 0.6  # pSp's drop_ratio; a no-op in eval mode

    def __post_init__(self):
        object.__setattr__(self, "channels", tuple(int(c) for c in self.channels))
        object.__setattr__(self, "units", tuple(int(u) for u in self.units))
        if len(self.channels) != len(self.units) or not self.channels:
            raise ValueError(f"channels {self.channels} and units {self.units} must be non-empty and of equal length")
        if min(self.units) < 1 or min(self.channels) < 1 or self.stem < 1 or self.embedding_dim < 1:
            raise ValueError(f"channels, units, stem and embedding_dim must be positive: {self}")
        if min(self.channels) // self.se_reduction < 1:
            raise ValueError(f"se_reduction {self.se_reduction} leaves no squeeze channels for {min(self.channels)} channels")
        if self.input_size % 2 ** len(self.channels):
            raise ValueError(f"input_size {self.input_size} is not divisible by 2**{len(self.channels)} stages")

    @classmethod
    def irse50(cls) -> "IRSEConfig":
        """ArcFace IR-SE50: 24 bottlenecks (3, 4, 14, 3), 64-512 channels, 112 px in, 512-D out."""
        return cls()

    @property
    def final_size(self) -> int:
        """Side of the last feature map (7 for 112 px and four stages)."""
        return self.input_size // 2 ** len(self.channels)

    def to_dict(self) -> dict:
        """Plain dict (lists for tuples), as stored in checkpoints."""
        d = asdict(self)
        d["channels"], d["units"] = list(self.channels), list(self.units)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "IRSEConfig":
        """Inverse of ``to_dict``; unknown keys are an error."""
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown IR-SE config keys: {', '.join(sorted(unknown))}")
        return cls(**d)


class SqueezeExcite(nn.Module):
    """Channel gate x * sigmoid(fc2(relu(fc1(mean(x))))) with bias-free 1x1 convs (keys fc1, fc2)."""

    def __init__(self, channels: int, reduction: int):
        super().__init__()
        self.fc1 = nn.Conv2d(channels, channels // reduction, kernel_size=1, bias=False)
        self.fc2 = nn.Conv2d(channels // reduction, channels, kernel_size=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [N, C, H, W]
        gate = self.fc2(F.relu(self.fc1(x.mean(dim=(2, 3), keepdim=True))))
        return x * torch.sigmoid(gate)


class BottleneckIRSE(nn.Module):
    """Improved-residual unit with squeeze-excite: BN-conv-PReLU-conv-BN-SE plus a shortcut."""

    def __init__(self, in_channels: int, depth: int, stride: int, se_reduction: int):
        super().__init__()
        if in_channels == depth:
            self.shortcut_layer: nn.Module = nn.MaxPool2d(1, stride)  # plain subsampling, no weights
        else:
            self.shortcut_layer = nn.Sequential(nn.Conv2d(in_channels, depth, 1, stride, bias=False), nn.BatchNorm2d(depth))
        self.res_layer = nn.Sequential(
            nn.BatchNorm2d(in_channels),
            nn.Conv2d(in_channels, depth, 3, 1, 1, bias=False),
            nn.PReLU(depth),
            nn.Conv2d(depth, depth, 3, stride, 1, bias=False),
            nn.BatchNorm2d(depth),
            SqueezeExcite(depth, se_reduction),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.res_layer(x) + self.shortcut_layer(x)


class IRSE(nn.Module):
    """ArcFace IR-SE backbone with TreB1eN's module names: [N, 3, 112, 112] -> L2-normalised [N, D]."""

    def __init__(self, config: IRSEConfig):
        super().__init__()
        self.config = config
        c = config
        self.input_layer = nn.Sequential(nn.Conv2d(3, c.stem, 3, 1, 1, bias=False), nn.BatchNorm2d(c.stem), nn.PReLU(c.stem))
        units: list[nn.Module] = []
        in_ch = c.stem
        for depth, n in zip(c.channels, c.units):
            for i in range(n):
                units.append(BottleneckIRSE(in_ch, depth, 2 if i == 0 else 1, c.se_reduction))
                in_ch = depth
        self.body = nn.Sequential(*units)
        self.output_layer = nn.Sequential(
            nn.BatchNorm2d(in_ch),
            nn.Dropout(c.dropout),
            nn.Flatten(),  # channel-major, as TreB1eN's view(N, -1)
            nn.Linear(in_ch * c.final_size**2, c.embedding_dim),
            nn.BatchNorm1d(c.embedding_dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [N, 3, input_size, input_size] -> [N, embedding_dim], unit length."""
        s = self.config.input_size
        if x.ndim != 4 or x.shape[1] != 3 or x.shape[2] != s or x.shape[3] != s:
            raise ValueError(f"IR-SE expects [N, 3, {s}, {s}], got {list(x.shape)}")
        return F.normalize(self.output_layer(self.body(self.input_layer(x))), dim=1, eps=1e-12)


# ================================================================= preprocessing


def crop_box(size: int) -> tuple[float, float, float, float]:
    """(left, top, right, bottom) in input pixels of the region ``embed`` looks at, for a size x size face."""
    k = size / CROP_REFERENCE
    return tuple(v * k for v in CROP_BOX_256)  # type: ignore[return-value]


def arcface_crop(img: torch.Tensor, size: int = ARCFACE_SIZE) -> torch.Tensor:
    """FFHQ-aligned faces [N, 3, H, H] -> pSp's inner-face crop [N, 3, size, size] (differentiable)."""
    if img.ndim != 4 or img.shape[1] != 3 or img.shape[2] != img.shape[3]:
        raise ValueError(f"expected square images [N, 3, H, H], got {list(img.shape)}")
    h = img.shape[2]
    if h > CROP_REFERENCE:
        img = F.adaptive_avg_pool2d(img, CROP_REFERENCE)
    elif h < CROP_REFERENCE:
        img = F.interpolate(img, size=(CROP_REFERENCE, CROP_REFERENCE), mode="bilinear", align_corners=False)
    left, top, right, bottom = CROP_BOX_256
    return F.adaptive_avg_pool2d(img[:, :, top:bottom, left:right], size)


# ================================================================= wrapper


class IdentityModel(nn.Module):
    """A frozen identity network: ``embed`` for the projector's loss, ``similarity`` for reports."""

    def __init__(self, net: IRSE, *, stand_in: bool, description: str, bgr: bool = False, source: str | None = None):
        super().__init__()
        self.net = net
        self.stand_in = bool(stand_in)
        self.description = description
        self.bgr = bool(bgr)
        self.source = source
        self.net.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> "IdentityModel":
        """Always eval: batch-norm statistics and dropout must never change (``mode`` is ignored)."""
        return super().train(False)

    @property
    def device(self) -> torch.device:
        """Device of the network's weights."""
        return next(self.net.parameters()).device

    @property
    def config(self) -> IRSEConfig:
        """The backbone's architecture."""
        return self.net.config

    def preprocess(self, img: torch.Tensor) -> torch.Tensor:
        """[N, 3, H, H] in [-1, 1] -> the network's input [N, 3, 112, 112] on its device."""
        x = arcface_crop(img.to(self.device, torch.float32), self.config.input_size)
        return x.flip(1) if self.bgr else x

    def embed(self, img: torch.Tensor) -> torch.Tensor:
        """FFHQ-aligned faces [N, 3, H, H] in [-1, 1] -> L2-normalised embeddings [N, D], differentiable."""
        return self.net(self.preprocess(img))

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        """Same as ``embed``."""
        return self.embed(img)

    def similarity(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Cosine similarity per image pair: a, b [N, 3, H, H] (sizes may differ) -> [N]."""
        if a.shape[0] != b.shape[0]:
            raise ValueError(f"batch sizes differ: {a.shape[0]} vs {b.shape[0]}")
        return (self.embed(a) * self.embed(b)).sum(dim=1)

    def extra_repr(self) -> str:
        return f"stand_in={self.stand_in}, description={self.description!r}"


# ================================================================= stand-in


def stand_in_config(width: int = 16) -> IRSEConfig:
    """A small IR-SE of the same family: stages of width, 2, 4, 8 x width with 1, 1, 2, 1 units."""
    if width < 4:
        raise ValueError(f"stand-in width must be at least 4, got {width}")
    return IRSEConfig(stem=width, channels=(width, 2 * width, 4 * width, 8 * width), units=(1, 1, 2, 1),
                      embedding_dim=512, se_reduction=4, dropout=0.0)


def _smooth_noise(n: int, size: int, generator: torch.Generator) -> torch.Tensor:
    """[n, 3, size, size] in [-1, 1]: random textures at several scales (batch-norm calibration)."""
    out = torch.zeros(n, 3, size, size)
    for cells in (2, 4, 8, 16):
        coarse = torch.rand(n, 3, cells, cells, generator=generator) * 2 - 1
        out += F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False) / 2
    return out.clamp(-1, 1)


def make_stand_in_identity(seed: int = 0, width: int = 16, device: str | torch.device | None = "cpu") -> IdentityModel:
    """A small randomly initialised IR-SE (seeded), batch-norm statistics calibrated on random textures.

    Not a face recogniser: its similarities check the pipeline, they are not identity measurements.
    """
    cfg = stand_in_config(width)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = IRSE(cfg)
    # Calibrate running statistics (cumulative average) so activations are normalised, not exploding.
    g = torch.Generator().manual_seed(seed + 1)
    calib = _smooth_noise(32, cfg.input_size, g)
    for m in net.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            m.reset_running_stats()
            m.momentum = None
    net.train()
    with torch.no_grad():
        net(calib)
    for m in net.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            m.momentum = 0.1
    desc = f"STAND-IN identity network: randomly initialised IR-SE (width {width}, seed {seed}); not a face recogniser"
    return IdentityModel(net, stand_in=True, description=desc, source=None).to(resolve_device(device))


# ================================================================= checkpoints


def irse_from_state_dict(state: dict, config: IRSEConfig, source: str = "<state dict>") -> IRSE:
    """Build an IRSE of ``config`` and load ``state`` with strict key and shape checking."""
    if not isinstance(state, dict) or not all(isinstance(k, str) for k in state):
        raise CheckpointError(f"{source}: expected a state dict of tensors")
    bad = [k for k, v in state.items() if not torch.is_tensor(v)]
    if bad:
        raise CheckpointError(f"{source}: entries that are not tensors: {describe_keys(bad, 6)}")
    if state and all(k.startswith("module.") for k in state):  # saved from nn.DataParallel
        state = {k[len("module."):]: v for k, v in state.items()}
    net = IRSE(config)
    own = net.state_dict()
    missing = [k for k in own if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in own]
    if missing or unexpected:
        parts = ([f"missing keys: {describe_keys(missing, 6)}"] if missing else []) + (
            [f"unexpected keys: {describe_keys(unexpected, 6)}"] if unexpected else [])
        raise CheckpointError(f"{source}: not an IR-SE network of the expected architecture ({'; '.join(parts)})")
    wrong = [f"{k} {list(state[k].shape)} != {list(v.shape)}" for k, v in own.items() if k in state and state[k].shape != v.shape]
    if wrong:
        raise CheckpointError(f"{source}: tensor shapes do not fit the IR-SE architecture: {describe_keys(wrong, 4)}")
    full = {k: (state[k] if k in state else v) for k, v in own.items()}
    net.load_state_dict({k: v if k.endswith("num_batches_tracked") else v.float() for k, v in full.items()}, strict=True)
    return net


def load_irse50(path: str | Path, device: str | torch.device | None = "auto", bgr: bool = False) -> IdentityModel:
    """Load the identity network from ``path``: pSp's plain IR-SE50 state dict or a ``save_identity`` file."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(
            f"{path}: identity network weights not found. Expected the ArcFace IR-SE50 ({ASSET_SOURCE}), "
            f"which the download-weights stage fetches to {ASSET_PATH}. On an offline machine download "
            f"model_ir_se50.pth elsewhere and place it at {path}, then re-run."
        )
    ckpt = load_checkpoint_dict(path)
    meta = ckpt.get(META_KEY)
    if isinstance(meta, dict):
        state = ckpt.get("state_dict")
        try:
            config = IRSEConfig.from_dict(dict(meta.get("config") or {}))
        except (TypeError, ValueError) as e:
            raise CheckpointError(f"{path}: bad identity network config in {META_KEY}: {e}") from None
        stand_in = bool(meta.get("stand_in", False))
        description = str(meta.get("description") or f"IR-SE identity network from {path}")
        bgr = bool(meta.get("bgr", bgr))
    else:
        state, config, stand_in = ckpt, IRSEConfig.irse50(), False
        description = f"ArcFace IR-SE50 ({ASSET_SOURCE}) from {path}"
    net = irse_from_state_dict(state, config, source=str(path))
    model = IdentityModel(net, stand_in=stand_in, description=description, bgr=bgr, source=str(path))
    log.info("identity network: %s", description)
    return model.to(resolve_device(device))


def save_identity(model: IdentityModel, path: str | Path, meta: dict | None = None) -> Path:
    """Write the network (state dict + config + stand-in flag) atomically, readable by ``load_irse50``."""
    from .io import atomic_path

    info = {"format_version": FORMAT_VERSION, "config": model.config.to_dict(), "stand_in": model.stand_in,
            "description": model.description, "bgr": model.bgr}
    info.update(meta or {})
    ckpt = {"state_dict": {k: v.detach().cpu() for k, v in model.net.state_dict().items()}, META_KEY: info}
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(ckpt, tmp)
    return path


def write_stand_in_identity(path: str | Path, seed: int = 0, width: int = 16) -> Path:
    """Write a stand-in identity network file (the offline counterpart of the IR-SE50 download)."""
    return save_identity(make_stand_in_identity(seed, width, device="cpu"), path, meta={"seed": seed, "width": width})


# ================================================================= dlib metric


def dlib_model_dir() -> Path:
    """Folder of the face-recognition-models files, found without importing the package."""
    return face_recognition_models_dir()


@functools.lru_cache(maxsize=1)
def _dlib_models():
    """(HOG detector, 5-point shape predictor, face recognition net), loaded once per process."""
    import dlib

    folder = dlib_model_dir()
    paths = [folder / DLIB_PREDICTOR_FILE, folder / DLIB_DESCRIPTOR_FILE]
    for p in paths:
        if not p.is_file():
            raise SetupError(f"{p}: dlib model file not found (reinstall face-recognition-models)")
    log.debug("loading %s and %s", *paths)
    return dlib.get_frontal_face_detector(), dlib.shape_predictor(str(paths[0])), dlib.face_recognition_model_v1(str(paths[1]))


@dataclass
class FaceDescriptor:
    """dlib's 128-D descriptor of one face (``vector`` None when it could not be computed)."""

    vector: np.ndarray | None
    box: tuple[int, int, int, int] | None = None  # (left, top, right, bottom) given to the landmark predictor
    box_source: str = ""  # "hog" (detected) or "ffhq_box" (FFHQ_FACE_BOX of the image)
    reason: str = ""  # why vector is None
    landmarks: np.ndarray | None = field(default=None, repr=False)  # [5, 2]


def _iou(a: Sequence[float], b: Sequence[float]) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def ffhq_face_box(width: int, height: int) -> tuple[int, int, int, int]:
    """FFHQ_FACE_BOX in pixels (left, top, right, bottom; right/bottom exclusive) of a width x height image."""
    fx0, fy0, fx1, fy1 = FFHQ_FACE_BOX
    return round(fx0 * width), round(fy0 * height), round(fx1 * width), round(fy1 * height)


def dlib_face_descriptor(image: Image.Image, detect: bool = True) -> FaceDescriptor:
    """dlib descriptor of the FFHQ-aligned face in ``image``; never raises for a bad image.

    The face box is the HOG detection overlapping ``FFHQ_FACE_BOX`` most (IoU >= ``DLIB_MIN_IOU``;
    x2 upsampling retried for images up to ``DLIB_UPSAMPLE_MAX_SIDE``), else ``FFHQ_FACE_BOX``
    itself (also when ``detect`` is False). Then 5 landmarks, then the 128-D descriptor.
    """
    import dlib

    detector, predictor, recogniser = _dlib_models()
    try:
        if not isinstance(image, Image.Image):
            return FaceDescriptor(None, reason=f"not a PIL image ({type(image).__name__})")
        w, h = image.size
        if min(w, h) < DLIB_MIN_SIDE:
            return FaceDescriptor(None, reason=f"image is {w}x{h}, below {DLIB_MIN_SIDE} px per side")
        arr = pil_to_array(image)
        if (arr == arr[:1, :1]).all():
            return FaceDescriptor(None, reason="image is uniform (a single colour): no face")
        canon = ffhq_face_box(w, h)
        box, source = canon, "ffhq_box"
        if detect:
            dets = list(detector(arr, 0))
            if not dets and max(w, h) <= DLIB_UPSAMPLE_MAX_SIDE:
                dets = list(detector(arr, 1))
            boxes = [(d.left(), d.top(), d.right() + 1, d.bottom() + 1) for d in dets]
            if boxes:
                best = max(boxes, key=lambda b: _iou(b, canon))
                if _iou(best, canon) >= DLIB_MIN_IOU:
                    box, source = best, "hog"
                else:
                    log.debug("HOG boxes %s do not overlap the FFHQ face box %s; using the latter", boxes, canon)
        rect = dlib.rectangle(int(box[0]), int(box[1]), int(box[2]) - 1, int(box[3]) - 1)
        shape = predictor(arr, rect)
        landmarks = np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64)
        vec = np.asarray(recogniser.compute_face_descriptor(arr, shape), dtype=np.float64)
        if vec.shape != (128,) or not np.all(np.isfinite(vec)):
            return FaceDescriptor(None, box, source, reason=f"dlib returned an invalid descriptor (shape {vec.shape})")
        return FaceDescriptor(vec, tuple(int(v) for v in box), source, landmarks=landmarks)
    except Exception as e:  # dlib and Pillow raise many types for odd inputs; a bad image must not stop a batch
        return FaceDescriptor(None, reason=f"{type(e).__name__}: {e}")


def dlib_identity_distance(img_a: Image.Image, img_b: Image.Image, detect: bool = True) -> float:
    """Euclidean distance of dlib descriptors of two FFHQ-aligned faces (< 0.6: same person); NaN if not computable."""
    da = dlib_face_descriptor(img_a, detect=detect)
    db = dlib_face_descriptor(img_b, detect=detect)
    for name, d in (("first", da), ("second", db)):
        if d.vector is None:
            log.warning("dlib identity distance is NaN: %s image: %s", name, d.reason)
            return float("nan")
    return float(np.linalg.norm(da.vector - db.vector))
