"""StyleGAN2 generator in pure PyTorch, loading rosinality-format checkpoints.

The module layout and state-dict keys follow rosinality/stylegan2-pytorch
(``style.*``, ``input.input``, ``conv1``, ``to_rgb1``, ``convs.*``, ``to_rgbs.*``,
``noises.noise_*``) so real converted checkpoints load with strict key checking.
The architecture (resolution, channel table, mapping depth, latent size) is read
from the checkpoint's shapes; users never pass it.

Two choices differ from the reference implementation, both exact in arithmetic:
- modulation scales the activations before a convolution with the shared frozen
  weight and demodulation scales the output after it, so no per-sample weight is
  built and the backward pass needs no gradient with respect to conv weights;
- FIR up/down-sampling uses separable shifted adds instead of a 2-D convolution.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .device import resolve_device

log = logging.getLogger(__name__)

BLUR_KERNEL = (1.0, 3.0, 3.0, 1.0)
LRELU_SLOPE = 0.2
LRELU_GAIN = math.sqrt(2.0)
FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint file that cannot be turned into a StyleGAN2 generator."""


# ----------------------------------------------------------------------------- ops


def fir_kernel_1d(taps: Sequence[float] = BLUR_KERNEL) -> torch.Tensor:
    """Normalised 1-D FIR kernel; its outer product with itself is the 2-D kernel."""
    k = torch.tensor(taps, dtype=torch.float32)
    return k / k.sum()


def _fir_1d(x: torch.Tensor, k: Sequence[float], dim: int) -> torch.Tensor:
    """Valid correlation of x with k along dim (x already padded), as shifted adds."""
    n = x.shape[dim] - len(k) + 1
    out = x.narrow(dim, 0, n) * k[0]
    for j in range(1, len(k)):
        out = out + x.narrow(dim, j, n) * k[j]
    return out


def upfirdn2d(
    x: torch.Tensor,
    kernel: Sequence[float],
    up: int = 1,
    down: int = 1,
    pad: tuple[int, int] = (0, 0),
    gain: float = 1.0,
) -> torch.Tensor:
    """Upsample (zero insertion), pad, filter with the separable kernel, downsample.

    x: [N, C, H, W]; kernel: 1-D taps, applied along both axes (2-D kernel is the
    outer product). ``gain`` multiplies the 2-D kernel (e.g. up**2 for upsampling).
    The kernel is applied flipped, as a true convolution, like the reference op.
    """
    n, c, h, w = x.shape
    if up > 1:
        z = x.new_zeros(n, c, h * up, w * up)
        z[:, :, ::up, ::up] = x
        x = z
    p0, p1 = pad
    if p0 < 0 or p1 < 0:
        x = x[:, :, max(-p0, 0) : x.shape[2] - max(-p1, 0), max(-p0, 0) : x.shape[3] - max(-p1, 0)]
    if p0 > 0 or p1 > 0:
        x = F.pad(x, [max(p0, 0), max(p1, 0), max(p0, 0), max(p1, 0)])
    taps = [float(t) for t in reversed(list(kernel))]
    g = math.sqrt(gain)
    taps = [t * g for t in taps]
    x = _fir_1d(x, taps, 2)
    x = _fir_1d(x, taps, 3)
    if down > 1:
        x = x[:, :, ::down, ::down]
    return x


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
        if self.activation:
            return fused_leaky_relu(F.linear(x, self.weight * self.scale), self.bias * self.lr_mul)
        return F.linear(x, self.weight * self.scale, self.bias * self.lr_mul)


class Blur(nn.Module):
    """FIR low-pass used after the transposed convolution of an upsampling layer."""

    def __init__(self, taps: Sequence[float], pad: tuple[int, int], gain: float = 1.0):
        super().__init__()
        k = torch.tensor(taps, dtype=torch.float32)
        k2 = torch.outer(k, k)
        # Stored as a 2-D buffer named like the reference (``*.blur.kernel``) for key parity.
        self.register_buffer("kernel", k2 / k2.sum() * gain)
        self.taps = [float(t) for t in (k / k.sum()).tolist()]
        self.pad = pad
        self.gain = gain

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return upfirdn2d(x, self.taps, pad=self.pad, gain=self.gain)


class Upsample(nn.Module):
    """2x FIR upsampling of the RGB skip connection."""

    def __init__(self, taps: Sequence[float], factor: int = 2):
        super().__init__()
        k = torch.tensor(taps, dtype=torch.float32)
        k2 = torch.outer(k, k)
        self.register_buffer("kernel", k2 / k2.sum() * factor**2)
        self.taps = [float(t) for t in (k / k.sum()).tolist()]
        self.factor = factor
        p = len(taps) - factor
        self.pad = ((p + 1) // 2 + factor - 1, p // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return upfirdn2d(x, self.taps, up=self.factor, pad=self.pad, gain=self.factor**2)


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

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        s = self.modulation(style)  # [N, Cin]
        w = self.weight[0] * self.scale  # [Cout, Cin, k, k]
        x = x * s.view(n, self.in_channel, 1, 1)
        if self.upsample:
            out = F.conv_transpose2d(x, w.transpose(0, 1), stride=2, padding=0)
            out = self.blur(out)
        else:
            out = F.conv2d(x, w, padding=self.padding)
        if self.demodulate:
            w_sq = w.pow(2).sum(dim=(2, 3))  # [Cout, Cin]
            d = torch.rsqrt(s.pow(2) @ w_sq.t() + 1e-8)  # [N, Cout]
            out = out * d.view(n, self.out_channel, 1, 1)
        return out


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
    """Modulated conv, noise, bias and activation."""

    def __init__(self, in_channel, out_channel, kernel_size, style_dim, upsample=False, blur_kernel=BLUR_KERNEL):
        super().__init__()
        self.conv = ModulatedConv2d(in_channel, out_channel, kernel_size, style_dim, upsample=upsample, blur_kernel=blur_kernel)
        self.noise = NoiseInjection()
        self.activate = FusedLeakyReLU(out_channel)

    def forward(self, x: torch.Tensor, style: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        return self.activate(self.noise(self.conv(x, style), noise))


class ToRGB(nn.Module):
    """1x1 modulated conv to RGB, added to the upsampled skip image."""

    def __init__(self, in_channel: int, style_dim: int, upsample: bool = True, blur_kernel=BLUR_KERNEL):
        super().__init__()
        if upsample:
            self.upsample = Upsample(blur_kernel)
        self.conv = ModulatedConv2d(in_channel, 3, 1, style_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))

    def forward(self, x: torch.Tensor, style: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        out = self.conv(x, style) + self.bias
        if skip is not None:
            out = out + self.upsample(skip)
        return out


# ----------------------------------------------------------------------- generator


@dataclass
class GeneratorConfig:
    """Architecture of a StyleGAN2 generator; ``channels`` maps resolution -> width."""

    resolution: int
    style_dim: int = 512
    n_mlp: int = 8
    channels: dict[int, int] = field(default_factory=dict)
    lr_mlp: float = 0.01
    blur_kernel: tuple[float, ...] = BLUR_KERNEL

    @classmethod
    def standard(cls, resolution: int, channel_multiplier: int = 2, style_dim: int = 512, n_mlp: int = 8) -> "GeneratorConfig":
        """The config-e/f channel table of the paper (config-f: multiplier 2)."""
        table = {4: 512, 8: 512, 16: 512, 32: 512, 64: 256, 128: 128, 256: 64, 512: 32, 1024: 16}
        chans = {r: (c if r <= 32 else c * channel_multiplier) for r, c in table.items() if r <= resolution}
        return cls(resolution=resolution, style_dim=style_dim, n_mlp=n_mlp, channels=chans)

    def __post_init__(self):
        log2 = math.log2(self.resolution)
        if self.resolution < 8 or log2 != int(log2):
            raise ValueError(f"resolution must be a power of two >= 8, got {self.resolution}")
        self.channels = {int(k): int(v) for k, v in self.channels.items()}
        missing = [2**i for i in range(2, int(log2) + 1) if 2**i not in self.channels]
        if missing:
            raise ValueError(f"channel table lacks resolutions {missing}")
        self.blur_kernel = tuple(float(t) for t in self.blur_kernel)

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

    def __init__(self, config: GeneratorConfig):
        super().__init__()
        self.config = config
        c, sd, bk = config.channels, config.style_dim, config.blur_kernel
        mapping = MappingNetwork(sd, config.n_mlp, config.lr_mlp)
        # Registered as ``style`` so keys read style.1.weight ... like the reference.
        self.style = mapping.layers
        self.input = ConstantInput(c[4])
        self.conv1 = StyledConv(c[4], c[4], 3, sd, blur_kernel=bk)
        self.to_rgb1 = ToRGB(c[4], sd, upsample=False)
        self.convs = nn.ModuleList()
        self.to_rgbs = nn.ModuleList()
        self.noises = nn.Module()
        for i, side in enumerate(config.noise_shapes()):
            self.noises.register_buffer(f"noise_{i}", torch.randn(1, 1, side, side))
        in_ch = c[4]
        for i in range(3, config.log_size + 1):
            out_ch = c[2**i]
            self.convs.append(StyledConv(in_ch, out_ch, 3, sd, upsample=True, blur_kernel=bk))
            self.convs.append(StyledConv(out_ch, out_ch, 3, sd, blur_kernel=bk))
            self.to_rgbs.append(ToRGB(out_ch, sd, blur_kernel=bk))
            in_ch = out_ch
        self.register_buffer("w_avg", torch.zeros(sd), persistent=False)
        self.has_w_avg = False

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

    # ---- mapping
    def mapping(self, z: torch.Tensor, truncation: float = 1.0) -> torch.Tensor:
        """z: [N, z_dim] -> w: [N, w_dim], optionally truncated towards the average w."""
        if z.ndim != 2 or z.shape[1] != self.z_dim:
            raise ValueError(f"z must be [N, {self.z_dim}], got {list(z.shape)}")
        w = self.style(z)
        if truncation != 1.0:
            w = self.mean_w().to(w) + truncation * (w - self.mean_w().to(w))
        return w

    @torch.no_grad()
    def mean_w(self, n: int = 10000, seed: int = 0) -> torch.Tensor:
        """Average w: the checkpoint's if stored, else estimated from n z with a fixed seed."""
        if not self.has_w_avg:
            g = torch.Generator().manual_seed(seed)
            z = torch.randn(n, self.z_dim, generator=g).to(self.device)
            self.w_avg.copy_(self.style(z).mean(0))
            self.has_w_avg = True
        return self.w_avg

    @torch.no_grad()
    def w_stats(self, n: int = 10000, seed: int = 0) -> tuple[torch.Tensor, float]:
        """(mean w, scalar std of w) from n z with a fixed seed, as projectors use."""
        g = torch.Generator().manual_seed(seed)
        z = torch.randn(n, self.z_dim, generator=g).to(self.device)
        w = self.style(z)
        mean = self.w_avg if self.has_w_avg else w.mean(0)
        std = ((w - mean).pow(2).sum() / n) ** 0.5
        return mean.clone(), float(std)

    # ---- noise
    def make_noise(self, batch: int = 1, seed: int | None = 0, device=None) -> list[torch.Tensor]:
        """Fresh Gaussian noise maps [batch, 1, r, r], in checkpoint order, seeded on the CPU."""
        g = torch.Generator()
        if seed is None:
            g.seed()
        else:
            g.manual_seed(int(seed))
        dev = device or self.device
        return [torch.randn(batch, 1, s, s, generator=g).to(dev) for s in self.config.noise_shapes()]

    def stored_noise(self, batch: int = 1) -> list[torch.Tensor]:
        """The checkpoint's constant noise buffers expanded to a batch."""
        return [getattr(self.noises, f"noise_{i}").expand(batch, -1, -1, -1) for i in range(self.config.num_layers)]

    # ---- synthesis
    def synthesis(self, ws: torch.Tensor, noise: Sequence[torch.Tensor] | None = None) -> torch.Tensor:
        """ws: [N, num_ws, w_dim] (or [N, w_dim], broadcast) -> images [N, 3, R, R] in about [-1, 1].

        noise: list of [N or 1, 1, r, r] maps in checkpoint order; None uses the stored buffers.
        """
        if ws.ndim == 2:
            ws = ws.unsqueeze(1).expand(-1, self.num_ws, -1)
        if ws.ndim != 3 or ws.shape[1] != self.num_ws or ws.shape[2] != self.w_dim:
            raise ValueError(f"ws must be [N, {self.num_ws}, {self.w_dim}], got {list(ws.shape)}")
        n = ws.shape[0]
        if noise is None:
            noise = self.stored_noise(n)
        if len(noise) != self.config.num_layers:
            raise ValueError(f"expected {self.config.num_layers} noise maps, got {len(noise)}")
        x = self.input(n)
        x = self.conv1(x, ws[:, 0], noise[0])
        skip = self.to_rgb1(x, ws[:, 1])
        i = 1
        for k, to_rgb in enumerate(self.to_rgbs):
            x = self.convs[2 * k](x, ws[:, i], noise[2 * k + 1])
            x = self.convs[2 * k + 1](x, ws[:, i + 1], noise[2 * k + 2])
            skip = to_rgb(x, ws[:, i + 2], skip)
            i += 2
        return skip

    def forward(self, z: torch.Tensor, truncation: float = 1.0, noise=None) -> torch.Tensor:
        """z -> image, with every layer sharing the same w."""
        return self.synthesis(self.mapping(z, truncation), noise=noise)

    def freeze(self) -> "Generator":
        """Turn off gradients of all weights (projection optimises latents only)."""
        for p in self.parameters():
            p.requires_grad_(False)
        return self


# ------------------------------------------------------------------ checkpoint I/O

_CONV_KEY = re.compile(r"^convs\.(\d+)\.conv\.weight$")
_STYLE_KEY = re.compile(r"^style\.(\d+)\.weight$")


def infer_config(state: dict[str, torch.Tensor], lr_mlp: float = 0.01) -> GeneratorConfig:
    """Read the architecture from a rosinality-format state dict's tensor shapes."""
    try:
        style_idx = sorted(int(m.group(1)) for k in state if (m := _STYLE_KEY.match(k)))
        if not style_idx:
            raise CheckpointError("no mapping layers (style.N.weight)")
        style_dim = int(state[f"style.{style_idx[0]}.weight"].shape[1])
        const = state["input.input"]
        channels = {4: int(const.shape[1])}
        conv_idx = sorted(int(m.group(1)) for k in state if (m := _CONV_KEY.match(k)))
        if len(conv_idx) % 2 or conv_idx != list(range(len(conv_idx))):
            raise CheckpointError(f"convs.* layers are not complete pairs: {conv_idx}")
        for j in range(0, len(conv_idx), 2):
            res = 2 ** (3 + j // 2)
            channels[res] = int(state[f"convs.{j}.conv.weight"].shape[1])
        resolution = max(channels)
    except KeyError as e:
        raise CheckpointError(f"missing key {e.args[0]!r}; not a StyleGAN2 generator state dict") from None
    except (AttributeError, IndexError, TypeError) as e:
        raise CheckpointError(f"unexpected tensor shapes ({e}); not a StyleGAN2 generator state dict") from None
    return GeneratorConfig(resolution=resolution, style_dim=style_dim, n_mlp=len(style_idx), channels=channels, lr_mlp=lr_mlp)


def _describe_keys(keys: Sequence[str], limit: int = 8) -> str:
    keys = list(keys)
    shown = ", ".join(keys[:limit])
    return shown + (f", ... ({len(keys)} in all)" if len(keys) > limit else "")


def generator_from_state_dict(state: dict, lr_mlp: float = 0.01, source: str = "<state dict>") -> Generator:
    """Build a Generator whose shapes match ``state`` and load it with strict key checking."""
    if not isinstance(state, dict) or not all(isinstance(k, str) for k in state):
        raise CheckpointError(f"{source}: expected a state dict of tensors")
    bad = [k for k, v in state.items() if not torch.is_tensor(v)]
    if bad:
        raise CheckpointError(f"{source}: entries that are not tensors: {_describe_keys(bad)}")
    try:
        cfg = infer_config(state, lr_mlp=lr_mlp)
    except (CheckpointError, ValueError) as e:
        raise CheckpointError(f"{source}: {e}") from None
    G = Generator(cfg)
    own = G.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing keys: {_describe_keys(missing)}")
        if unexpected:
            parts.append(f"unexpected keys: {_describe_keys(unexpected)}")
        raise CheckpointError(f"{source}: not a StyleGAN2 generator of the inferred shape ({'; '.join(parts)})")
    wrong = [f"{k} {list(state[k].shape)} != {list(v.shape)}" for k, v in own.items() if state[k].shape != v.shape]
    if wrong:
        raise CheckpointError(f"{source}: tensor shapes do not fit a StyleGAN2 generator: {_describe_keys(wrong, 4)}")
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


def load_generator(path: str | Path, device: str | torch.device | None = "auto") -> Generator:
    """Load a StyleGAN2 generator from a rosinality .pt (dict with ``g_ema`` or bare state dict)
    or an NVIDIA stylegan2-ada-pytorch / stylegan3 pickle of a StyleGAN2 generator."""
    path = Path(path)
    if path.suffix == ".pkl":
        from .nvidia_pickle import load_nvidia_generator_state

        state, w_avg, meta = load_nvidia_generator_state(path)
        G = generator_from_state_dict(state, source=str(path))
        if w_avg is not None:
            G.w_avg.copy_(w_avg)
            G.has_w_avg = True
    else:
        ckpt = load_checkpoint_dict(path)
        meta = ckpt.get("stylegan_inversion", {}) if isinstance(ckpt.get("stylegan_inversion"), dict) else {}
        state = ckpt["g_ema"] if "g_ema" in ckpt else ckpt
        lr_mlp = float(meta.get("lr_mlp", 0.01))
        G = generator_from_state_dict(state, lr_mlp=lr_mlp, source=str(path))
        w_avg = ckpt.get("latent_avg")
        if torch.is_tensor(w_avg) and w_avg.numel() == G.w_dim:
            G.w_avg.copy_(w_avg.reshape(-1).float())
            G.has_w_avg = True
    G.meta = dict(meta or {})
    G.source_path = str(path)
    G.eval()
    dev = resolve_device(device)
    return G.to(dev)


def save_generator(G: Generator, path: str | Path, meta: dict | None = None) -> None:
    """Write G in the rosinality format (``g_ema`` + ``latent_avg``) atomically."""
    from .io import atomic_path

    ckpt = {"g_ema": {k: v.detach().cpu() for k, v in G.state_dict().items()}}
    if G.has_w_avg:
        ckpt["latent_avg"] = G.w_avg.detach().cpu().clone()
    info = {"format_version": FORMAT_VERSION, "lr_mlp": G.config.lr_mlp, "config": G.config.to_dict()}
    info.update(meta or {})
    ckpt["stylegan_inversion"] = info
    with atomic_path(path) as tmp:
        torch.save(ckpt, tmp)


def make_random_generator(config: GeneratorConfig, seed: int = 0, noise_strength: float = 0.1, bias_scale: float = 0.1) -> Generator:
    """A randomly initialised generator with non-zero biases and noise strengths (tests, demo)."""
    torch.manual_seed(seed)
    G = Generator(config)
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, p in G.named_parameters():
            if name.endswith("noise.weight"):
                p.copy_(torch.full_like(p, noise_strength) * (1 + torch.rand(p.shape, generator=g)))
            elif name.endswith("activate.bias") or name.endswith("to_rgb1.bias") or re.match(r"to_rgbs\.\d+\.bias", name):
                p.copy_(torch.randn(p.shape, generator=g) * bias_scale)
    return G.eval()
