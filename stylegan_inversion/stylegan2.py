"""StyleGAN2 generator in pure PyTorch, loading rosinality-format checkpoints and NVIDIA pickles.

The module layout and state-dict keys follow rosinality/stylegan2-pytorch
(``style.*``, ``input.input``, ``conv1``, ``to_rgb1``, ``convs.*``, ``to_rgbs.*``,
``noises.noise_*``) so real converted checkpoints load with strict key checking.
The architecture (resolution, channel table, mapping depth, latent size) is read
from the checkpoint's shapes; users never pass it.

Choices that differ from the reference implementation, all exact in arithmetic
(results agree to float32 rounding):
- modulation scales the activations before a convolution with the one shared weight
  and demodulation scales its output, so no per-sample weight is built and, with the
  weights frozen, the backward pass computes no gradient with respect to any
  convolution weight (the reference's grouped convolution needs one);
- FIR filtering is a depthwise convolution (one pass over memory instead of a
  single-channel convolution over a reshaped tensor), and the 2x FIR upsampling of
  the RGB skip is a depthwise transposed convolution (polyphase: no zero insertion);
- demodulation, the activation gain, noise and bias are folded into two passes
  before the leaky ReLU;
- on the CPU activations are kept channels-last, which oneDNN convolves faster; programs
  that project on the CPU (scripts/project.py) let glibc reuse freed activation memory
  with :func:`tune_cpu_allocator` (a process-wide setting, so the library never does it itself).
Nothing is compiled at import or run time unless ``torch.compile`` is asked for.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import math
import os
import platform
import re
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .device import resolve_device
from .errors import UserError

log = logging.getLogger(__name__)

BLUR_KERNEL = (1.0, 3.0, 3.0, 1.0)
LRELU_SLOPE = 0.2
LRELU_GAIN = math.sqrt(2.0)
FORMAT_VERSION = 1
META_KEY = "stylegan_inversion"


class CheckpointError(UserError, ValueError):
    """A checkpoint file that cannot be turned into a StyleGAN2 generator."""


# --------------------------------------------------------------- CPU allocator

MALLOC_ENV_VAR = "STYLEGAN_INVERSION_CPU_MALLOC"
_malloc_tuned: bool | None = None


def tune_cpu_allocator(mmap_threshold: int = 2**30, trim_threshold: int = 2**31 - 1) -> bool:
    """Let glibc keep large freed blocks for reuse (process-wide; once); returns whether it applied.

    CPU synthesis allocates and frees activations of up to ~130 MB in every layer. By
    default glibc serves each from fresh mmap'd pages, so every step pays a page fault
    per 4 KiB and the kernel's zeroing: about 40% of a 1024 px projection step on the CPU.
    Raising the mmap and trim thresholds reuses the heap instead (peak memory is about the
    same; it is not returned to the system until the process ends). glibc only; set
    $STYLEGAN_INVERSION_CPU_MALLOC=0 to leave the allocator alone.
    """
    global _malloc_tuned
    if _malloc_tuned is not None:
        return _malloc_tuned
    _malloc_tuned = False
    if os.environ.get(MALLOC_ENV_VAR, "1").strip().lower() in ("0", "false", "no", "off"):
        log.debug("CPU allocator left alone ($%s)", MALLOC_ENV_VAR)
        return False
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3  # glibc's mallopt parameter numbers
        ok = libc.mallopt(m_mmap_threshold, ctypes.c_int(mmap_threshold)) == 1
        ok = libc.mallopt(m_trim_threshold, ctypes.c_int(trim_threshold)) == 1 and ok
    except (OSError, AttributeError) as e:
        log.debug("could not tune the CPU allocator: %s", e)
        return False
    _malloc_tuned = ok
    if ok:
        log.debug("glibc malloc: large blocks kept for reuse (mmap threshold %d, trim threshold %d)", mmap_threshold, trim_threshold)
    return ok


# ----------------------------------------------------------------------------- ops


def make_kernel(taps: Sequence[float] | torch.Tensor, gain: float = 1.0) -> torch.Tensor:
    """2-D FIR kernel normalised to sum ``gain``: outer product of 1-D taps, or a 2-D kernel as given."""
    k = torch.as_tensor(taps, dtype=torch.float32)
    if k.ndim == 1:
        k = torch.outer(k, k)
    return k / k.sum() * gain


def _depthwise(kernel: torch.Tensor, channels: int, like: torch.Tensor, flip: bool) -> torch.Tensor:
    """[C, 1, kh, kw] weight of a depthwise convolution with ``kernel`` (optionally flipped)."""
    k = kernel.flip([0, 1]) if flip else kernel
    return k.to(dtype=like.dtype, device=like.device).expand(channels, 1, *k.shape).contiguous()


def upfirdn2d(
    x: torch.Tensor,
    kernel: Sequence[float] | torch.Tensor,
    up: int = 1,
    down: int = 1,
    pad: tuple[int, int] = (0, 0),
    gain: float = 1.0,
) -> torch.Tensor:
    """Upsample (zero insertion), pad (negative: crop), convolve with the FIR kernel, downsample.

    x: [N, C, H, W]; kernel: 1-D taps (applied along both axes) or a 2-D kernel, used as
    given (not normalised) times ``gain``; pad: (before, after) on both axes. The kernel is
    applied flipped, as a true convolution, like the reference ``upfirdn2d``. This is the
    general path; the layers use the faster :func:`blur2d` and :func:`upsample2d`.
    """
    k = torch.as_tensor(kernel, dtype=torch.float32)
    if k.ndim == 1:
        k = torch.outer(k, k)
    k = k * gain
    n, c, h, w = x.shape
    if up > 1:
        z = x.new_zeros(n, c, h * up, w * up)
        z[:, :, ::up, ::up] = x
        x = z
    p0, p1 = pad
    x = F.pad(x, [p0, p1, p0, p1])  # negative pads crop
    x = F.conv2d(x, _depthwise(k, c, x, flip=True), groups=c)
    if down > 1:
        x = x[:, :, ::down, ::down]
    return x


def blur2d(x: torch.Tensor, kernel: torch.Tensor, pad: tuple[int, int]) -> torch.Tensor:
    """FIR filter (true convolution with the 2-D ``kernel``) after padding (before, after)."""
    c = x.shape[1]
    wt = _depthwise(kernel, c, x, flip=True)
    p0, p1 = pad
    if p0 == p1 and p0 >= 0:
        return F.conv2d(x, wt, padding=p0, groups=c)
    return F.conv2d(F.pad(x, [p0, p1, p0, p1]), wt, groups=c)


def upsample2d(x: torch.Tensor, kernel: torch.Tensor, factor: int, pad: tuple[int, int]) -> torch.Tensor:
    """``upfirdn2d(x, kernel, up=factor, pad=pad)`` as a depthwise transposed convolution.

    Polyphase: each output pixel sums only the taps that meet real input samples, so
    no zero-inserted image is built. Output y[i] = sum_m x[m] k[i + K - 1 - p0 - factor*m],
    which is ``conv_transpose2d`` with the unflipped kernel and padding K - 1 - p0.
    """
    c = x.shape[1]
    kh = kernel.shape[0]
    p0, p1 = pad
    padding = kh - 1 - p0
    out_pad = p1 - p0 + factor - 1
    if kernel.shape[0] != kernel.shape[1] or padding < 0 or not 0 <= out_pad < factor:
        return upfirdn2d(x, kernel, up=factor, pad=pad)
    wt = _depthwise(kernel, c, x, flip=False)
    return F.conv_transpose2d(x, wt, stride=factor, padding=padding, output_padding=out_pad, groups=c)


def fused_leaky_relu(x: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """leaky_relu(x + bias, 0.2) * sqrt(2), bias broadcast over channel dim 1."""
    if bias is not None:
        shape = [1, -1] + [1] * (x.ndim - 2)
        x = x + bias.view(shape)
    return F.leaky_relu(x, LRELU_SLOPE) * LRELU_GAIN


# -------------------------------------------------------------------------- layers


class PixelNorm(nn.Module):
    """Normalise each vector to unit mean square."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + 1e-8)


class EqualLinear(nn.Module):
    """Linear layer with equalised learning rate (weight scaled at run time)."""

    def __init__(self, in_dim: int, out_dim: int, bias_init: float = 0.0, lr_mul: float = 1.0, activation: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_dim, in_dim) / lr_mul)
        self.bias = nn.Parameter(torch.full((out_dim,), float(bias_init)))
        self.scale = (1.0 / math.sqrt(in_dim)) * lr_mul
        self.lr_mul = lr_mul
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # bias*lr_mul + scale * x @ W^T in one op: the weight is never rescaled per call.
        out = torch.addmm(self.bias * self.lr_mul, x, self.weight.t(), alpha=self.scale)
        if self.activation:
            return F.leaky_relu(out, LRELU_SLOPE) * LRELU_GAIN
        return out


class Blur(nn.Module):
    """FIR low-pass used after the transposed convolution of an upsampling layer."""

    def __init__(self, taps: Sequence[float], pad: tuple[int, int], gain: float = 1.0):
        super().__init__()
        # Stored as a 2-D buffer named like the reference (``*.blur.kernel``) for key parity;
        # a loaded checkpoint's kernel is the one used.
        self.register_buffer("kernel", make_kernel(taps, gain))
        self.pad = pad

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return blur2d(x, self.kernel, self.pad)


class Upsample(nn.Module):
    """2x FIR upsampling of the RGB skip connection."""

    def __init__(self, taps: Sequence[float], factor: int = 2):
        super().__init__()
        self.register_buffer("kernel", make_kernel(taps, factor**2))
        self.factor = factor
        p = len(taps) - factor
        self.pad = ((p + 1) // 2 + factor - 1, p // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return upsample2d(x, self.kernel, self.factor, self.pad)


class ModulatedConv2d(nn.Module):
    """Style-modulated convolution (optionally demodulated and 2x upsampling).

    x: [N, Cin, H, W], style: [N, w_dim] -> [N, Cout, H', W'].
    Modulation and demodulation are applied to activations, so the convolution
    uses the one shared weight: identical arithmetic to modulating the weight.
    """

    def __init__(
        self,
        in_channel: int,
        out_channel: int,
        kernel_size: int,
        style_dim: int,
        demodulate: bool = True,
        upsample: bool = False,
        blur_kernel: Sequence[float] = BLUR_KERNEL,
    ):
        super().__init__()
        self.in_channel, self.out_channel, self.kernel_size = in_channel, out_channel, kernel_size
        self.demodulate, self.upsample = demodulate, upsample
        self.weight = nn.Parameter(torch.randn(1, out_channel, in_channel, kernel_size, kernel_size))
        self.scale = 1.0 / math.sqrt(in_channel * kernel_size**2)
        self.padding = kernel_size // 2
        self.modulation = EqualLinear(style_dim, in_channel, bias_init=1.0)
        if upsample:
            factor = 2
            p = (len(blur_kernel) - factor) - (kernel_size - 1)
            self.blur = Blur(blur_kernel, pad=((p + 1) // 2 + factor - 1, p // 2 + 1), gain=factor**2)
        self._cache: tuple | None = None
        self.channels_last = False

    def _scaled_weight(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(scaled conv weight [Cout, Cin, k, k] in the conv's layout, its squared sums [Cout, Cin]).

        Cached while the weight is frozen and unchanged (keyed on its version counter).
        """
        p = self.weight
        # Inference-mode tensors cannot be saved for a later backward pass: keyed separately.
        key = (p.data_ptr(), p._version, p.dtype, p.device, self.channels_last, torch.is_inference_mode_enabled())
        if not p.requires_grad and self._cache is not None and self._cache[0] == key and not _compiling():
            return self._cache[1], self._cache[2]
        w = p[0] * self.scale
        w_sq = w.pow(2).sum(dim=(2, 3))
        if self.upsample:
            w = w.transpose(0, 1)  # conv_transpose2d wants [Cin, Cout, k, k]
        if self.channels_last:
            w = w.contiguous(memory_format=torch.channels_last)
        if not p.requires_grad and not _compiling():
            self._cache = (key, w, w_sq)
        return w, w_sq

    def modulated(self, x: torch.Tensor, style: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(convolution of the modulated input, demodulation coefficients [N, Cout] or None)."""
        n = x.shape[0]
        s = self.modulation(style)  # [N, Cin]
        w, w_sq = self._scaled_weight()
        x = x * s.view(n, self.in_channel, 1, 1)
        if self.upsample:
            out = self.blur(F.conv_transpose2d(x, w, stride=2, padding=0))
        else:
            out = F.conv2d(x, w, padding=self.padding)
        d = torch.rsqrt(s.pow(2) @ w_sq.t() + 1e-8) if self.demodulate else None
        return out, d

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        out, d = self.modulated(x, style)
        if d is not None:
            out = out * d.view(x.shape[0], self.out_channel, 1, 1)
        return out


def _compiling() -> bool:
    """True while torch.compile traces (caches of plain tensors must not be used then)."""
    comp = getattr(torch, "compiler", None)
    return bool(comp is not None and hasattr(comp, "is_compiling") and comp.is_compiling())


class NoiseInjection(nn.Module):
    """Adds per-pixel noise scaled by a learned strength."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        return x + self.weight * noise


class ConstantInput(nn.Module):
    """Learned 4x4 constant that starts synthesis."""

    def __init__(self, channel: int, size: int = 4):
        super().__init__()
        self.input = nn.Parameter(torch.randn(1, channel, size, size))

    def forward(self, batch: int) -> torch.Tensor:
        return self.input.expand(batch, -1, -1, -1)


class FusedLeakyReLU(nn.Module):
    """Bias + leaky ReLU with gain sqrt(2)."""

    def __init__(self, channel: int):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channel))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return fused_leaky_relu(x, self.bias)


class StyledConv(nn.Module):
    """Modulated conv, noise, bias and activation (optionally clamped, as NVIDIA's conv_clamp)."""

    def __init__(self, in_channel, out_channel, kernel_size, style_dim, upsample=False, blur_kernel=BLUR_KERNEL, conv_clamp=None):
        super().__init__()
        self.conv = ModulatedConv2d(in_channel, out_channel, kernel_size, style_dim, upsample=upsample, blur_kernel=blur_kernel)
        self.noise = NoiseInjection()
        self.activate = FusedLeakyReLU(out_channel)
        self.conv_clamp = conv_clamp

    def forward(self, x: torch.Tensor, style: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        out, d = self.conv.modulated(x, style)
        n, c = out.shape[:2]
        # gain * lrelu(out*d + s*noise + b) == lrelu(out*(g*d) + g*s*noise + g*b) for g > 0:
        # two passes before the activation instead of five.
        g = LRELU_GAIN
        y = torch.addcmul((self.activate.bias * g).view(1, c, 1, 1), out, (d * g).view(n, c, 1, 1))
        y = y.add_(noise * (self.noise.weight * g))
        y = F.leaky_relu(y, LRELU_SLOPE, inplace=True)
        if self.conv_clamp is not None:
            y = y.clamp(-self.conv_clamp, self.conv_clamp)
        return y


class ToRGB(nn.Module):
    """1x1 modulated conv to RGB, added to the upsampled skip image."""

    def __init__(self, in_channel: int, style_dim: int, upsample: bool = True, blur_kernel=BLUR_KERNEL, conv_clamp=None):
        super().__init__()
        if upsample:
            self.upsample = Upsample(blur_kernel)
        self.conv = ModulatedConv2d(in_channel, 3, 1, style_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))
        self.conv_clamp = conv_clamp

    def forward(self, x: torch.Tensor, style: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        out = self.conv(x, style) + self.bias
        if self.conv_clamp is not None:
            out = out.clamp(-self.conv_clamp, self.conv_clamp)
        if skip is not None:
            out = out + self.upsample(skip)
        return out


# ----------------------------------------------------------------------- generator


@dataclass
class GeneratorConfig:
    """Architecture of a StyleGAN2 generator; ``channels`` maps resolution -> width.

    ``conv_clamp`` (None for rosinality models) clamps layer outputs to +-X, as NVIDIA
    models trained with ``conv_clamp`` do; it changes nothing for activations inside it.
    """

    resolution: int
    style_dim: int = 512
    n_mlp: int = 8
    channels: dict[int, int] = field(default_factory=dict)
    lr_mlp: float = 0.01
    blur_kernel: tuple[float, ...] = BLUR_KERNEL
    conv_clamp: float | None = None

    @classmethod
    def standard(cls, resolution: int, channel_multiplier: int = 2, style_dim: int = 512, n_mlp: int = 8) -> GeneratorConfig:
        """The config-e/f channel table of the paper (config-f: multiplier 2)."""
        table = {4: 512, 8: 512, 16: 512, 32: 512, 64: 256, 128: 128, 256: 64, 512: 32, 1024: 16}
        chans = {r: (c if r <= 32 else c * channel_multiplier) for r, c in table.items() if r <= resolution}
        return cls(resolution=resolution, style_dim=style_dim, n_mlp=n_mlp, channels=chans)

    @classmethod
    def from_dict(cls, d: dict) -> GeneratorConfig:
        """Inverse of :meth:`to_dict` (unknown keys are ignored)."""
        known = {k: d[k] for k in ("resolution", "style_dim", "n_mlp", "channels", "lr_mlp", "blur_kernel", "conv_clamp") if k in d}
        return cls(**known)

    def __post_init__(self):
        log2 = math.log2(self.resolution) if self.resolution > 0 else -1
        if self.resolution < 8 or log2 != int(log2):
            raise ValueError(f"resolution must be a power of two >= 8, got {self.resolution}")
        self.channels = {int(k): int(v) for k, v in self.channels.items()}
        missing = [2**i for i in range(2, int(log2) + 1) if 2**i not in self.channels]
        if missing:
            raise ValueError(f"channel table lacks resolutions {missing}")
        self.blur_kernel = tuple(float(t) for t in self.blur_kernel)
        self.conv_clamp = None if self.conv_clamp is None else float(self.conv_clamp)

    @property
    def log_size(self) -> int:
        return int(math.log2(self.resolution))

    @property
    def num_ws(self) -> int:
        return self.log_size * 2 - 2

    @property
    def num_layers(self) -> int:
        return (self.log_size - 2) * 2 + 1

    def noise_shapes(self) -> list[int]:
        """Side length of each noise map, in checkpoint order (noise_0 .. noise_k)."""
        return [2 ** ((i + 5) // 2) for i in range(self.num_layers)]

    def to_dict(self) -> dict:
        d = asdict(self)
        d["channels"] = {str(k): v for k, v in self.channels.items()}
        d["blur_kernel"] = list(self.blur_kernel)
        return d


@dataclass
class RuntimeOptions:
    """How synthesis runs (numerics to float32 rounding are the same in every mode).

    channels_last: None = automatic (on for the CPU, where oneDNN is faster with it;
    on CUDA only when asked). tf32: allow TF32 convolutions/matmuls on CUDA (off: strict
    float32, whatever the global PyTorch flags say). compile: wrap synthesis in
    ``torch.compile`` (compiles at first call; off by default).
    """

    channels_last: bool | None = None
    tf32: bool = False
    compile: bool = False
    compile_backend: str = "inductor"
    compile_mode: str | None = None

    @classmethod
    def fast(cls) -> RuntimeOptions:
        """Every optional fast path on (TF32, channels_last, torch.compile)."""
        return cls(channels_last=True, tf32=True, compile=True)


def _precision_flags() -> list[tuple[object, str]]:
    """(object, attribute) pairs that choose float32 vs TF32 for cuDNN convolutions and matmuls."""
    conv = getattr(torch.backends.cudnn, "conv", None)
    if conv is not None and hasattr(conv, "fp32_precision") and hasattr(torch.backends.cuda.matmul, "fp32_precision"):
        return [(conv, "fp32_precision"), (torch.backends.cuda.matmul, "fp32_precision")]
    return [(torch.backends.cudnn, "allow_tf32"), (torch.backends.cuda.matmul, "allow_tf32")]  # PyTorch < 2.9


@contextlib.contextmanager
def _fp32_precision(device: torch.device, tf32: bool) -> Iterator[None]:
    """On CUDA, strict float32 (or TF32 when asked) for cuDNN convolutions and matmuls in the block.

    PyTorch lets cuDNN use TF32 by default; synthesis stays strict unless told otherwise.
    """
    if device.type != "cuda":
        yield
        return
    flags = _precision_flags()
    old = [getattr(obj, name) for obj, name in flags]
    try:
        for obj, name in flags:
            setattr(obj, name, ("tf32" if tf32 else "ieee") if name == "fp32_precision" else tf32)
    except (RuntimeError, ValueError, AttributeError) as e:  # an API this PyTorch does not accept
        log.warning("could not set float32 precision flags (%s); using PyTorch's", e)
    try:
        yield
    finally:
        for (obj, name), value in zip(flags, old):
            setattr(obj, name, value)


class MappingNetwork(nn.Module):
    """z [N, style_dim] -> w [N, style_dim]; index 0 is PixelNorm, as in the reference."""

    def __init__(self, style_dim: int, n_mlp: int, lr_mlp: float):
        super().__init__()
        layers: list[nn.Module] = [PixelNorm()]
        layers += [EqualLinear(style_dim, style_dim, lr_mul=lr_mlp, activation=True) for _ in range(n_mlp)]
        self.layers = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.layers(z)


class Generator(nn.Module):
    """StyleGAN2 generator with separately callable ``mapping`` and ``synthesis``."""

    def __init__(self, config: GeneratorConfig, runtime: RuntimeOptions | None = None):
        super().__init__()
        self.config = config
        c, sd, bk, cc = config.channels, config.style_dim, config.blur_kernel, config.conv_clamp
        mapping = MappingNetwork(sd, config.n_mlp, config.lr_mlp)
        # Registered as ``style`` so keys read style.1.weight ... like the reference.
        self.style = mapping.layers
        self.input = ConstantInput(c[4])
        self.conv1 = StyledConv(c[4], c[4], 3, sd, blur_kernel=bk, conv_clamp=cc)
        self.to_rgb1 = ToRGB(c[4], sd, upsample=False, conv_clamp=cc)
        self.convs = nn.ModuleList()
        self.to_rgbs = nn.ModuleList()
        self.noises = nn.Module()
        for i, side in enumerate(config.noise_shapes()):
            self.noises.register_buffer(f"noise_{i}", torch.randn(1, 1, side, side))
        in_ch = c[4]
        for i in range(3, config.log_size + 1):
            out_ch = c[2**i]
            self.convs.append(StyledConv(in_ch, out_ch, 3, sd, upsample=True, blur_kernel=bk, conv_clamp=cc))
            self.convs.append(StyledConv(out_ch, out_ch, 3, sd, blur_kernel=bk, conv_clamp=cc))
            self.to_rgbs.append(ToRGB(out_ch, sd, blur_kernel=bk, conv_clamp=cc))
            in_ch = out_ch
        self.register_buffer("w_avg", torch.zeros(sd), persistent=False)
        self.has_w_avg = False
        self.meta: dict = {}
        self.source_path: str | None = None
        self._compiled = None
        self.configure_runtime(runtime or RuntimeOptions())

    # ---- shape facts
    @property
    def resolution(self) -> int:
        return self.config.resolution

    @property
    def num_ws(self) -> int:
        return self.config.num_ws

    @property
    def w_dim(self) -> int:
        return self.config.style_dim

    @property
    def z_dim(self) -> int:
        return self.config.style_dim

    @property
    def device(self) -> torch.device:
        return self.input.input.device

    @property
    def dtype(self) -> torch.dtype:
        return self.input.input.dtype

    # ---- runtime
    def configure_runtime(self, runtime: RuntimeOptions | None = None, **changes) -> Generator:
        """Set how synthesis runs (see :class:`RuntimeOptions`); keyword changes override fields."""
        rt = runtime or getattr(self, "runtime", None) or RuntimeOptions()
        if changes:
            rt = RuntimeOptions(**{**asdict(rt), **changes})
        self.runtime = rt
        self._compiled = None
        return self

    def _set_layout(self, channels_last: bool) -> None:
        """Tell the convolutions which memory layout the activations use."""
        if self.conv1.conv.channels_last != channels_last:
            for m in self.modules():
                if isinstance(m, ModulatedConv2d):
                    m.channels_last = channels_last

    def _use_channels_last(self) -> bool:
        cl = self.runtime.channels_last
        return (self.device.type == "cpu") if cl is None else bool(cl)

    # ---- mapping
    def mapping(self, z: torch.Tensor, truncation: float = 1.0) -> torch.Tensor:
        """z: [N, z_dim] -> w: [N, w_dim], optionally truncated towards the average w."""
        if z.ndim != 2 or z.shape[1] != self.z_dim:
            raise ValueError(f"z must be [N, {self.z_dim}], got {list(z.shape)}")
        w = self.style(z)
        if truncation != 1.0:
            w = self.truncate(w, truncation)
        return w

    def truncate(self, w: torch.Tensor, psi: float) -> torch.Tensor:
        """w (any shape ending in w_dim) pulled towards the average w: avg + psi * (w - avg)."""
        avg = self.mean_w().to(w)
        return avg + psi * (w - avg)

    def broadcast_w(self, w: torch.Tensor) -> torch.Tensor:
        """w: [N, w_dim] -> ws: [N, num_ws, w_dim] (the same w for every layer)."""
        if w.ndim != 2 or w.shape[1] != self.w_dim:
            raise ValueError(f"w must be [N, {self.w_dim}], got {list(w.shape)}")
        return w.unsqueeze(1).expand(-1, self.num_ws, -1)

    @torch.no_grad()
    def mean_w(self, n: int = 10000, seed: int = 0) -> torch.Tensor:
        """Average w: the checkpoint's if stored, else estimated from n z with a fixed seed."""
        if not self.has_w_avg:
            g = torch.Generator().manual_seed(seed)
            z = torch.randn(n, self.z_dim, generator=g).to(self.device, self.dtype)
            self.w_avg.copy_(self.style(z).mean(0))
            self.has_w_avg = True
        return self.w_avg

    @torch.no_grad()
    def w_stats(self, n: int = 10000, seed: int = 0) -> tuple[torch.Tensor, float]:
        """(mean w, scalar std of w) from n z with a fixed seed, as projectors use."""
        g = torch.Generator().manual_seed(seed)
        z = torch.randn(n, self.z_dim, generator=g).to(self.device, self.dtype)
        w = self.style(z)
        mean = self.w_avg if self.has_w_avg else w.mean(0)
        std = ((w - mean).pow(2).sum() / n) ** 0.5
        return mean.clone(), float(std)

    # ---- noise
    def make_noise(self, batch: int = 1, seed: int | None = 0, device=None) -> list[torch.Tensor]:
        """Fresh Gaussian noise maps [batch, 1, r, r] in checkpoint order (seeded on the CPU, so the same everywhere)."""
        g = torch.Generator()
        if seed is None:
            g.seed()
        else:
            g.manual_seed(int(seed))
        dev = device or self.device
        return [torch.randn(batch, 1, s, s, generator=g).to(dev, self.dtype) for s in self.config.noise_shapes()]

    def stored_noise(self, batch: int = 1) -> list[torch.Tensor]:
        """The checkpoint's constant noise buffers expanded to a batch."""
        return [getattr(self.noises, f"noise_{i}").expand(batch, -1, -1, -1) for i in range(self.config.num_layers)]

    # ---- synthesis
    def synthesis(self, ws: torch.Tensor, noise: Sequence[torch.Tensor] | None = None) -> torch.Tensor:
        """ws: [N, num_ws, w_dim] (or [N, w_dim], broadcast) -> images [N, 3, R, R] in about [-1, 1].

        noise: list of [N or 1, 1, r, r] maps in checkpoint order; None uses the stored buffers.
        """
        if ws.ndim == 2:
            ws = self.broadcast_w(ws)
        if ws.ndim != 3 or ws.shape[1] != self.num_ws or ws.shape[2] != self.w_dim:
            raise ValueError(f"ws must be [N, {self.num_ws}, {self.w_dim}], got {list(ws.shape)}")
        n = ws.shape[0]
        noise = self.stored_noise(n) if noise is None else list(noise)
        if len(noise) != self.config.num_layers:
            raise ValueError(f"expected {self.config.num_layers} noise maps, got {len(noise)}")
        for i, (nz, side) in enumerate(zip(noise, self.config.noise_shapes())):
            if nz.ndim != 4 or nz.shape[1] != 1 or nz.shape[2:] != (side, side) or nz.shape[0] not in (1, n):
                raise ValueError(f"noise[{i}] must be [{n} or 1, 1, {side}, {side}], got {list(nz.shape)}")
        self._set_layout(self._use_channels_last())
        fn = self._synthesis_impl
        if self.runtime.compile:
            if self._compiled is None:
                log.info("compiling synthesis with torch.compile (backend %s); the first call is slow", self.runtime.compile_backend)
                self._compiled = torch.compile(self._synthesis_impl, backend=self.runtime.compile_backend, mode=self.runtime.compile_mode)
            fn = self._compiled
        with _fp32_precision(ws.device, self.runtime.tf32):
            return fn(ws, noise)

    def _synthesis_impl(self, ws: torch.Tensor, noise: list[torch.Tensor]) -> torch.Tensor:
        """Synthesis proper, on validated inputs."""
        x = self.input(ws.shape[0])
        if self.conv1.conv.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        x = self.conv1(x, ws[:, 0], noise[0])
        skip = self.to_rgb1(x, ws[:, 1])
        i = 1
        for k, to_rgb in enumerate(self.to_rgbs):
            x = self.convs[2 * k](x, ws[:, i], noise[2 * k + 1])
            x = self.convs[2 * k + 1](x, ws[:, i + 1], noise[2 * k + 2])
            skip = to_rgb(x, ws[:, i + 2], skip)
            i += 2
        return skip.contiguous()

    def forward(self, z: torch.Tensor, truncation: float = 1.0, noise=None) -> torch.Tensor:
        """z -> image, with every layer sharing the same w."""
        return self.synthesis(self.mapping(z, truncation), noise=noise)

    def freeze(self) -> Generator:
        """Turn off gradients of all weights (projection optimises latents only)."""
        for p in self.parameters():
            p.requires_grad_(False)
        return self


# ------------------------------------------------------------------ checkpoint I/O

_CONV_KEY = re.compile(r"^convs\.(\d+)\.conv\.weight$")
_STYLE_KEY = re.compile(r"^style\.(\d+)\.weight$")


def infer_config(state: dict[str, torch.Tensor], lr_mlp: float = 0.01, conv_clamp: float | None = None) -> GeneratorConfig:
    """Read the architecture from a rosinality-format state dict's tensor shapes."""
    try:
        style_idx = sorted(int(m.group(1)) for k in state if (m := _STYLE_KEY.match(k)))
        if not style_idx:
            raise CheckpointError("no mapping layers (style.N.weight)")
        style_dim = int(state[f"style.{style_idx[0]}.weight"].shape[1])
        const = state["input.input"]
        channels = {4: int(const.shape[1])}
        conv_idx = sorted(int(m.group(1)) for k in state if (m := _CONV_KEY.match(k)))
        if len(conv_idx) % 2 or conv_idx != list(range(len(conv_idx))) or not conv_idx:
            raise CheckpointError(f"convs.* layers are not complete pairs: {conv_idx}")
        for j in range(0, len(conv_idx), 2):
            res = 2 ** (3 + j // 2)
            channels[res] = int(state[f"convs.{j}.conv.weight"].shape[1])
        resolution = max(channels)
    except KeyError as e:
        raise CheckpointError(f"missing key {e.args[0]!r}; not a StyleGAN2 generator state dict") from None
    except (AttributeError, IndexError, TypeError) as e:
        raise CheckpointError(f"unexpected tensor shapes ({e}); not a StyleGAN2 generator state dict") from None
    return GeneratorConfig(
        resolution=resolution, style_dim=style_dim, n_mlp=len(style_idx), channels=channels, lr_mlp=lr_mlp, conv_clamp=conv_clamp
    )


def describe_keys(keys: Sequence[str], limit: int = 8) -> str:
    """The first ``limit`` keys, comma-separated, with the total when there are more (for error messages)."""
    keys = list(keys)
    shown = ", ".join(keys[:limit])
    return shown + (f", ... ({len(keys)} in all)" if len(keys) > limit else "")


def generator_from_state_dict(
    state: dict, lr_mlp: float = 0.01, source: str = "<state dict>", conv_clamp: float | None = None
) -> Generator:
    """Build a Generator whose shapes match ``state`` and load it with strict key checking."""
    if not isinstance(state, dict) or not all(isinstance(k, str) for k in state):
        raise CheckpointError(f"{source}: expected a state dict of tensors")
    bad = [k for k, v in state.items() if not torch.is_tensor(v)]
    if bad:
        raise CheckpointError(f"{source}: entries that are not tensors: {describe_keys(bad)}")
    try:
        cfg = infer_config(state, lr_mlp=lr_mlp, conv_clamp=conv_clamp)
    except (CheckpointError, ValueError) as e:
        raise CheckpointError(f"{source}: {e}") from None
    G = Generator(cfg)
    own = G.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing keys: {describe_keys(missing)}")
        if unexpected:
            parts.append(f"unexpected keys: {describe_keys(unexpected)}")
        raise CheckpointError(f"{source}: not a StyleGAN2 generator of the inferred shape ({'; '.join(parts)})")
    wrong = [f"{k} {list(state[k].shape)} != {list(v.shape)}" for k, v in own.items() if state[k].shape != v.shape]
    if wrong:
        raise CheckpointError(f"{source}: tensor shapes do not fit a StyleGAN2 generator: {describe_keys(wrong, 4)}")
    nonfinite = [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if nonfinite:
        raise CheckpointError(f"{source}: tensors with NaN or infinite values: {describe_keys(nonfinite)}")
    G.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
    return G


def load_checkpoint_dict(path: str | Path) -> dict:
    """torch.load with weights_only (no code execution) and a clear error naming the file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: file is empty (0 bytes)")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for corrupt/unsafe files
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        if "Unsupported global" in str(e) or "weights_only" in str(e):
            raise CheckpointError(f"{path}: refused to load: the file needs code execution to unpickle ({msg})") from None
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint (truncated or corrupt?): {msg}") from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: expected a dict, found {type(obj).__name__}")
    return obj


# torch.save's legacy format starts with its magic number pickled at protocol 2.
_TORCH_LEGACY_HEAD = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19"


def checkpoint_format(path: str | Path) -> str:
    """'torch' (torch.save zip or legacy file) or 'pickle' (a plain pickle, e.g. NVIDIA's), by content."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError as e:
        raise CheckpointError(f"{path}: cannot read ({e.strerror or e})") from None
    if head.startswith(b"PK\x03\x04"):
        return "torch"
    if head.startswith(_TORCH_LEGACY_HEAD):
        return "torch"
    if head[:1] == b"\x80":
        return "pickle"
    return "pickle" if path.suffix == ".pkl" else "torch"


def load_generator(
    path: str | Path, device: str | torch.device | None = "auto", runtime: RuntimeOptions | None = None
) -> Generator:
    """Load a StyleGAN2 generator from a rosinality .pt (dict with ``g_ema`` or bare state dict)
    or an NVIDIA stylegan2-ada-pytorch / stylegan3 pickle of a StyleGAN2 generator.

    Nothing in either file is executed. ``device``: 'auto' (CUDA if present), 'cpu', 'cuda:0' ...
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    if checkpoint_format(path) == "pickle":
        from .nvidia_pickle import load_nvidia_generator_state

        state, w_avg, meta = load_nvidia_generator_state(path)
        G = generator_from_state_dict(state, lr_mlp=float(meta.get("lr_mlp", 0.01)), source=str(path), conv_clamp=meta.get("conv_clamp"))
        if w_avg is not None:
            G.w_avg.copy_(w_avg.reshape(-1).float())
            G.has_w_avg = True
    else:
        ckpt = load_checkpoint_dict(path)
        meta = ckpt.get(META_KEY, {}) if isinstance(ckpt.get(META_KEY), dict) else {}
        state = ckpt.get("g_ema", ckpt)
        cfg_saved = meta.get("config") if isinstance(meta.get("config"), dict) else {}
        lr_mlp = float(meta.get("lr_mlp", cfg_saved.get("lr_mlp", 0.01)))
        G = generator_from_state_dict(state, lr_mlp=lr_mlp, source=str(path), conv_clamp=cfg_saved.get("conv_clamp"))
        w_avg = ckpt.get("latent_avg")
        if torch.is_tensor(w_avg) and w_avg.numel() == G.w_dim:
            G.w_avg.copy_(w_avg.reshape(-1).float())
            G.has_w_avg = True
    G.meta = dict(meta or {})
    G.source_path = str(path)
    G.eval()
    if runtime is not None:
        G.configure_runtime(runtime)
    dev = resolve_device(device)
    log.info("loaded %s: %d px, %d ws, w_dim %d, on %s", path, G.resolution, G.num_ws, G.w_dim, dev)
    return G.to(dev)


def save_generator(G: Generator, path: str | Path, meta: dict | None = None) -> None:
    """Write G in the rosinality format (``g_ema`` + ``latent_avg``) atomically."""
    from .io import atomic_path

    ckpt = {"g_ema": {k: v.detach().cpu() for k, v in G.state_dict().items()}}
    if G.has_w_avg:
        ckpt["latent_avg"] = G.w_avg.detach().cpu().clone()
    info = {k: v for k, v in (getattr(G, "meta", None) or {}).items() if k not in ("format_version", "lr_mlp", "config")}
    info.update({"format_version": FORMAT_VERSION, "lr_mlp": G.config.lr_mlp, "config": G.config.to_dict()})
    info.update(meta or {})
    ckpt[META_KEY] = info
    with atomic_path(path) as tmp:
        torch.save(ckpt, tmp)


def convert_checkpoint(src: str | Path, dst: str | Path, meta: dict | None = None) -> Generator:
    """Load any supported checkpoint (e.g. an NVIDIA pickle) and write it atomically in the rosinality format."""
    G = load_generator(src, device="cpu")
    save_generator(G, dst, meta={"converted_from": Path(src).name, **(meta or {})})
    log.info("converted %s -> %s", src, dst)
    return G


def make_random_generator(config: GeneratorConfig, seed: int = 0, noise_strength: float = 0.1, bias_scale: float = 0.1) -> Generator:
    """A randomly initialised generator with non-zero biases and noise strengths (tests, demo)."""
    torch.manual_seed(seed)
    G = Generator(config)
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, p in G.named_parameters():
            if name.endswith("noise.weight"):
                p.copy_(torch.full_like(p, noise_strength) * (1 + torch.rand(p.shape, generator=g)))
            elif name.endswith(("activate.bias", "to_rgb1.bias")) or re.match(r"to_rgbs\.\d+\.bias", name):
                p.copy_(torch.randn(p.shape, generator=g) * bias_scale)
    return G.eval()
