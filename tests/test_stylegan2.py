"""StyleGAN2 generator: ops against naive implementations written here, checkpoints, gradients, runtime paths.

The naive versions follow the reference semantics directly (zero-insertion FIR with a
flipped kernel, a per-sample modulated weight convolved sample by sample, the
rosinality layer order); the module must agree with them in float64.
"""

from __future__ import annotations

import dataclasses
import math
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from stylegan_inversion import stylegan2 as sg
from stylegan_inversion.stylegan2 import (
    CheckpointError,
    Generator,
    GeneratorConfig,
    ModulatedConv2d,
    RuntimeOptions,
    blur2d,
    infer_config,
    load_generator,
    make_kernel,
    make_random_generator,
    save_generator,
    upfirdn2d,
    upsample2d,
)

TINY = GeneratorConfig(resolution=16, style_dim=16, n_mlp=2, channels={4: 8, 8: 8, 16: 4})
SMALL = GeneratorConfig(resolution=32, style_dim=32, n_mlp=2, channels={4: 16, 8: 16, 16: 8, 32: 8})
BLUR_4X4 = np.outer([1, 3, 3, 1], [1, 3, 3, 1]) / 64.0


# ------------------------------------------------------------------ naive references


def naive_upfirdn2d(x: torch.Tensor, k: np.ndarray, up: int = 1, down: int = 1, pad: tuple[int, int] = (0, 0)) -> torch.Tensor:
    """Zero insertion, zero pad (negative: crop), true 2-D convolution tap by tap, keep every down-th sample."""
    a = x.detach().double().numpy()
    n, c, h, w = a.shape
    u = np.zeros((n, c, h * up, w * up))
    u[:, :, ::up, ::up] = a
    p0, p1 = pad
    hh, ww = h * up + p0 + p1, w * up + p0 + p1
    v = np.zeros((n, c, hh, ww))
    for i in range(hh):
        for j in range(ww):
            si, sj = i - p0, j - p0
            if 0 <= si < h * up and 0 <= sj < w * up:
                v[:, :, i, j] = u[:, :, si, sj]
    kh, kw = k.shape
    oh, ow = hh - kh + 1, ww - kw + 1
    out = np.zeros((n, c, oh, ow))
    for i in range(oh):
        for j in range(ow):
            patch = v[:, :, i : i + kh, j : j + kw]
            out[:, :, i, j] = (patch * k[::-1, ::-1]).sum(axis=(2, 3))  # convolution: kernel flipped
    return torch.from_numpy(out[:, :, ::down, ::down].copy())


def naive_linear(x, weight, bias, lr_mul=1.0):
    """Equalised-lr linear layer."""
    return x @ (weight * lr_mul / math.sqrt(weight.shape[1])).t() + bias * lr_mul


def naive_modconv(x, style, sd, prefix, demodulate=True, up=False):
    """Modulated conv with an explicit per-sample weight, convolved one sample at a time."""
    weight = sd[f"{prefix}.weight"][0]  # [out, in, k, k]
    s = naive_linear(style, sd[f"{prefix}.modulation.weight"], sd[f"{prefix}.modulation.bias"])
    _, in_c, k, _ = weight.shape
    outs = []
    for i in range(x.shape[0]):
        w = weight / math.sqrt(in_c * k * k) * s[i].view(1, in_c, 1, 1)
        if demodulate:
            w = w / torch.sqrt(w.pow(2).sum(dim=(1, 2, 3), keepdim=True) + 1e-8)
        if up:
            y = F.conv_transpose2d(x[i : i + 1], w.transpose(0, 1), stride=2)
            y = naive_upfirdn2d(y, BLUR_4X4 * 4, pad=(1, 1)).to(x.dtype)
        else:
            y = F.conv2d(x[i : i + 1], w, padding=k // 2)
        outs.append(y)
    return torch.cat(outs)


def naive_synthesis(G: Generator, ws: torch.Tensor, noise: list[torch.Tensor]) -> torch.Tensor:
    """The rosinality layer order, written out with the naive ops (float64)."""
    sd = {k: v.double() for k, v in G.state_dict().items()}
    clamp = G.config.conv_clamp
    ws, noise = ws.double(), [n.double() for n in noise]

    def styled(prefix, x, w, nz, up=False):
        y = naive_modconv(x, w, sd, f"{prefix}.conv", up=up)
        y = y + sd[f"{prefix}.noise.weight"] * nz
        y = F.leaky_relu(y + sd[f"{prefix}.activate.bias"].view(1, -1, 1, 1), 0.2) * math.sqrt(2)
        return y.clamp(-clamp, clamp) if clamp is not None else y

    def to_rgb(prefix, x, w, skip):
        y = naive_modconv(x, w, sd, f"{prefix}.conv", demodulate=False) + sd[f"{prefix}.bias"]
        if clamp is not None:
            y = y.clamp(-clamp, clamp)
        if skip is not None:
            y = y + naive_upfirdn2d(skip, BLUR_4X4 * 4, up=2, pad=(2, 1))
        return y

    x = sd["input.input"].expand(ws.shape[0], -1, -1, -1)
    x = styled("conv1", x, ws[:, 0], noise[0])
    skip = to_rgb("to_rgb1", x, ws[:, 1], None)
    i = 1
    for k in range(len(G.to_rgbs)):
        x = styled(f"convs.{2 * k}", x, ws[:, i], noise[2 * k + 1], up=True)
        x = styled(f"convs.{2 * k + 1}", x, ws[:, i + 1], noise[2 * k + 2])
        skip = to_rgb(f"to_rgbs.{k}", x, ws[:, i + 2], skip)
        i += 2
    return skip


def naive_mapping(G: Generator, z: torch.Tensor) -> torch.Tensor:
    sd = {k: v.double() for k, v in G.state_dict().items()}
    x = z.double()
    x = x / torch.sqrt(x.pow(2).mean(1, keepdim=True) + 1e-8)
    for i in range(1, G.config.n_mlp + 1):
        x = F.leaky_relu(naive_linear(x, sd[f"style.{i}.weight"], sd[f"style.{i}.bias"], G.config.lr_mlp), 0.2) * math.sqrt(2)
    return x


@pytest.fixture(scope="module")
def small_g() -> Generator:
    return make_random_generator(SMALL, seed=3, noise_strength=0.2, bias_scale=0.3)


# ------------------------------------------------------------------------- FIR ops


@pytest.mark.parametrize("pad", [(1, 1), (2, 1), (0, 0), (1, 2), (-1, 2)])
def test_blur_matches_naive(pad):
    torch.manual_seed(0)
    x = torch.randn(2, 3, 9, 7, dtype=torch.float64)
    k = np.arange(1, 17, dtype=np.float64).reshape(4, 4)  # asymmetric: catches a missing flip
    got = blur2d(x, torch.from_numpy(k), pad)
    assert torch.allclose(got, naive_upfirdn2d(x, k, pad=pad), atol=1e-12)


@pytest.mark.parametrize("taps", [[1, 3, 3, 1], [1, 2, 5, 1]])
@pytest.mark.parametrize("pad", [(2, 1), (1, 0), (3, 2), (1, 1)])
def test_polyphase_upsample_matches_zero_insertion(taps, pad):
    torch.manual_seed(1)
    x = torch.randn(2, 3, 5, 6, dtype=torch.float64)
    k = make_kernel(taps, 4).double()
    fast = upsample2d(x, k, 2, pad)  # depthwise transposed conv (falls back when the pads do not fit)
    zero_insertion = upfirdn2d(x, k, up=2, pad=pad)
    assert fast.shape == zero_insertion.shape
    assert torch.allclose(fast, zero_insertion, atol=1e-12)
    assert torch.allclose(fast, naive_upfirdn2d(x, k.numpy(), up=2, pad=pad), atol=1e-12)


def test_upfirdn2d_down_and_1d_taps_match_naive():
    torch.manual_seed(2)
    x = torch.randn(1, 2, 8, 8, dtype=torch.float64)
    got = upfirdn2d(x, [1.0, 3.0, 3.0, 1.0], down=2, pad=(1, 1), gain=2.0)
    want = naive_upfirdn2d(x, np.outer([1, 3, 3, 1], [1, 3, 3, 1]) * 2.0, down=2, pad=(1, 1))
    assert torch.allclose(got, want, atol=1e-12)


def test_layer_pads_are_the_reference_ones():
    m = ModulatedConv2d(4, 4, 3, 8, upsample=True)
    assert m.blur.pad == (1, 1)
    assert torch.allclose(m.blur.kernel, torch.from_numpy(BLUR_4X4 * 4).float())
    up = sg.Upsample([1, 3, 3, 1])
    assert up.pad == (2, 1)
    assert torch.allclose(up.kernel, torch.from_numpy(BLUR_4X4 * 4).float())


# ------------------------------------------------------------ modulated convolution


@pytest.mark.parametrize("demodulate,up,k", [(True, False, 3), (True, True, 3), (False, False, 1), (False, True, 3)])
def test_modulated_conv_matches_per_sample_weights(demodulate, up, k):
    torch.manual_seed(4)
    m = ModulatedConv2d(5, 6, k, 7, demodulate=demodulate, upsample=up).double()
    with torch.no_grad():
        m.modulation.bias.normal_()
    x = torch.randn(3, 5, 6, 6, dtype=torch.float64)
    style = torch.randn(3, 7, dtype=torch.float64)
    sd = {f"c.{n}": t for n, t in m.state_dict().items()}
    want = naive_modconv(x, style, sd, "c", demodulate=demodulate, up=up)
    got = m(x, style)
    assert got.shape == want.shape
    assert torch.allclose(got, want, atol=1e-10)


def test_frozen_generator_needs_no_conv_weight_gradients():
    """Every convolution's weight input is outside the autograd graph, so no weight gradient is computed."""
    G = make_random_generator(TINY, seed=0).freeze()
    ws = torch.randn(2, G.num_ws, 16, requires_grad=True)
    noise = [n.requires_grad_(True) for n in G.make_noise(2)]
    img = G.synthesis(ws, noise=noise)
    seen, convs, stack = set(), [], [img.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        if type(node).__name__.startswith("ConvolutionBackward"):
            convs.append(node)
        stack.extend(f for f, _ in node.next_functions)
    n_up = len(G.to_rgbs)
    assert len(convs) == G.config.num_layers + (n_up + 1) + 2 * n_up  # 3x3, 1x1 toRGB, FIR blur and skip upsampling
    assert all(node.next_functions[1][0] is None for node in convs)  # weight input: no gradient path
    assert all(node.next_functions[0][0] is not None for node in convs)  # activations still get one


# ------------------------------------------------------------------ whole generator


def test_synthesis_matches_naive_reference():
    torch.manual_seed(5)
    G = make_random_generator(SMALL, seed=3, noise_strength=0.2, bias_scale=0.3).double()
    ws = torch.randn(2, G.num_ws, G.w_dim, dtype=torch.float64)
    noise = G.make_noise(2, seed=7)
    got = G.synthesis(ws, noise=noise)
    want = naive_synthesis(G, ws, noise)
    assert got.shape == (2, 3, 32, 32)
    assert got.abs().max() > 0.1
    assert torch.allclose(got, want, atol=1e-9)


def test_conv_clamp_matches_naive_and_changes_output():
    cfg = dataclasses.replace(TINY, conv_clamp=0.5)
    G = make_random_generator(cfg, seed=1, bias_scale=1.0).double()
    ws = torch.randn(2, G.num_ws, G.w_dim, dtype=torch.float64)
    noise = G.make_noise(2, seed=2)
    got = G.synthesis(ws, noise=noise)
    assert torch.allclose(got, naive_synthesis(G, ws, noise), atol=1e-9)
    unclamped = make_random_generator(TINY, seed=1, bias_scale=1.0).double()
    assert not torch.allclose(got, unclamped.synthesis(ws, noise=noise), atol=1e-3)


def test_mapping_matches_naive_and_truncation(small_g):
    z = torch.randn(4, small_g.z_dim)
    w = small_g.mapping(z)
    assert w.shape == (4, small_g.w_dim)
    assert torch.allclose(w.double(), naive_mapping(small_g, z), atol=1e-4)
    avg = small_g.mean_w()
    assert torch.allclose(small_g.mapping(z, truncation=0.5), avg + 0.5 * (w - avg), atol=1e-5)
    assert torch.allclose(small_g.mapping(z, truncation=0.0), avg.expand(4, -1), atol=1e-5)


def test_synthesis_shapes_noise_order_and_input_checks(small_g):
    G = small_g
    assert (G.resolution, G.num_ws, G.w_dim) == (32, 8, 32)
    noise = G.make_noise(batch=3, seed=0)
    assert [tuple(n.shape) for n in noise] == [(3, 1, s, s) for s in [4, 8, 8, 16, 16, 32, 32]]
    stored = [tuple(getattr(G.noises, f"noise_{i}").shape[2:]) for i in range(G.config.num_layers)]
    assert stored == [tuple(n.shape[2:]) for n in noise]
    ws = torch.randn(3, G.num_ws, G.w_dim)
    assert G.synthesis(ws, noise=noise).shape == (3, 3, 32, 32)
    w = torch.randn(3, G.w_dim)
    assert torch.equal(G.synthesis(w, noise=noise), G.synthesis(G.broadcast_w(w), noise=noise))
    assert G.synthesis(ws).shape == (3, 3, 32, 32)  # stored noise buffers
    with pytest.raises(ValueError, match="ws must be"):
        G.synthesis(torch.randn(3, G.num_ws + 1, G.w_dim))
    with pytest.raises(ValueError, match="noise maps"):
        G.synthesis(ws, noise=noise[:-1])
    with pytest.raises(ValueError, match=r"noise\[2\]"):
        G.synthesis(ws, noise=noise[:2] + [noise[3]] + noise[3:])
    with pytest.raises(ValueError, match="z must be"):
        G.mapping(torch.randn(2, G.z_dim + 1))


def test_determinism_with_a_seed():
    a, b = make_random_generator(TINY, seed=11), make_random_generator(TINY, seed=11)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert not torch.equal(a.conv1.conv.weight, make_random_generator(TINY, seed=12).conv1.conv.weight)
    n1, n2, n3 = a.make_noise(2, seed=5), a.make_noise(2, seed=5), a.make_noise(2, seed=6)
    assert all(torch.equal(x, y) for x, y in zip(n1, n2))
    assert not torch.equal(n1[-1], n3[-1])
    ws = torch.randn(2, a.num_ws, a.w_dim)
    assert torch.equal(a.synthesis(ws, noise=n1), b.synthesis(ws, noise=n2))
    assert torch.equal(a.w_stats(500, seed=1)[0], b.w_stats(500, seed=1)[0])
    assert a.w_stats(500, seed=1)[1] == b.w_stats(500, seed=1)[1]


def test_gradcheck_float64_tiny():
    cfg = GeneratorConfig(resolution=8, style_dim=6, n_mlp=1, channels={4: 3, 8: 2})
    G = make_random_generator(cfg, seed=2, noise_strength=0.3, bias_scale=0.3).double().freeze()
    ws = torch.randn(1, G.num_ws, 6, dtype=torch.float64, requires_grad=True)
    noise = [n.requires_grad_(True) for n in G.make_noise(1, seed=1)]

    def f(ws, *noise):
        return G.synthesis(ws, noise=list(noise))

    assert torch.autograd.gradcheck(f, (ws, *noise), eps=1e-6, atol=1e-5, fast_mode=True)
    k = make_kernel([1, 3, 3, 1], 4).double()
    x = torch.randn(1, 2, 4, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: upsample2d(t, k, 2, (2, 1)), (x,))
    assert torch.autograd.gradcheck(lambda t: blur2d(t, k, (1, 1)), (x,))


def test_channels_last_matches_contiguous_and_is_used(small_g):
    G = small_g
    ws = torch.randn(2, G.num_ws, G.w_dim)
    noise = G.make_noise(2)
    layouts = []
    h = G.convs[-1].register_forward_hook(lambda m, i, o: layouts.append(o.is_contiguous(memory_format=torch.channels_last)))
    try:
        G.configure_runtime(channels_last=True)
        a = G.synthesis(ws, noise=noise)
        G.configure_runtime(channels_last=False)
        b = G.synthesis(ws, noise=noise)
    finally:
        h.remove()
        G.configure_runtime(RuntimeOptions())
    assert layouts == [True, False]
    assert a.is_contiguous() and b.is_contiguous()
    assert torch.allclose(a, b, atol=1e-5)


def test_tf32_flag_is_exact_on_cpu_and_restores_global_flags(small_g):
    ws = torch.randn(1, small_g.num_ws, small_g.w_dim)
    noise = small_g.make_noise(1)
    before = torch.backends.cuda.matmul.fp32_precision if hasattr(torch.backends.cuda.matmul, "fp32_precision") else None
    small_g.configure_runtime(tf32=True)
    try:
        a = small_g.synthesis(ws, noise=noise)
    finally:
        small_g.configure_runtime(tf32=False)
    assert torch.equal(a, small_g.synthesis(ws, noise=noise))
    if before is not None:
        assert torch.backends.cuda.matmul.fp32_precision == before


@pytest.mark.slow
def test_torch_compile_path_matches_eager():
    cfg = GeneratorConfig(resolution=8, style_dim=8, n_mlp=1, channels={4: 4, 8: 4})
    G = make_random_generator(cfg, seed=0).freeze()
    ws = torch.randn(2, G.num_ws, 8)
    noise = G.make_noise(2)
    eager = G.synthesis(ws, noise=noise)
    G.configure_runtime(compile=True, compile_backend="eager")
    wsg = ws.clone().requires_grad_(True)
    out = G.synthesis(wsg, noise=noise)
    out.square().sum().backward()
    assert torch.allclose(out, eager, atol=1e-6)
    assert wsg.grad is not None and wsg.grad.abs().sum() > 0


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu_strict_and_tf32(small_g):
    ws = torch.randn(2, small_g.num_ws, small_g.w_dim)
    noise = small_g.make_noise(2)
    cpu = small_g.synthesis(ws, noise=noise)
    G = make_random_generator(SMALL, seed=3, noise_strength=0.2, bias_scale=0.3).cuda()
    strict = G.synthesis(ws.cuda(), noise=[n.cuda() for n in noise]).cpu()
    assert torch.allclose(strict, cpu, atol=1e-4)
    G.configure_runtime(RuntimeOptions(channels_last=True, tf32=True))
    fast = G.synthesis(ws.cuda(), noise=[n.cuda() for n in noise]).cpu()
    assert torch.allclose(fast, cpu, atol=5e-2)


# ----------------------------------------------------------------------- checkpoints


@pytest.mark.parametrize(
    "cfg",
    [
        GeneratorConfig(resolution=8, style_dim=8, n_mlp=1, channels={4: 4, 8: 2}),
        TINY,
        GeneratorConfig(resolution=64, style_dim=24, n_mlp=8, channels={4: 16, 8: 16, 16: 12, 32: 8, 64: 4}, lr_mlp=0.02),
        GeneratorConfig.standard(256, channel_multiplier=2),
        GeneratorConfig.standard(1024, channel_multiplier=2),
        GeneratorConfig.standard(512, channel_multiplier=1, n_mlp=4),
    ],
    ids=["8px", "16px", "64px", "256-config-f", "1024-config-f", "512-config-e"],
)
def test_architecture_is_inferred_from_state_dict(cfg):
    with torch.device("meta"):  # shapes only: no memory for the big ones
        state = Generator(cfg).state_dict()
    got = infer_config(state, lr_mlp=cfg.lr_mlp)
    assert got == cfg
    assert got.num_ws == 2 * int(math.log2(cfg.resolution)) - 2


def test_save_load_round_trip(tmp_path, small_g):
    small_g.mean_w()
    path = tmp_path / "sub" / "g.pt"
    save_generator(small_g, path, meta={"note": "round trip"})
    assert [p.name for p in path.parent.iterdir()] == ["g.pt"]  # no temporary left behind
    G = load_generator(path, device="cpu")
    assert G.config == small_g.config
    assert all(torch.equal(a, b) for a, b in zip(G.state_dict().values(), small_g.state_dict().values()))
    assert G.has_w_avg and torch.equal(G.w_avg, small_g.w_avg)
    assert G.meta["note"] == "round trip" and G.source_path == str(path)
    ws = torch.randn(2, G.num_ws, G.w_dim)
    noise = G.make_noise(2)
    assert torch.equal(G.synthesis(ws, noise=noise), small_g.synthesis(ws, noise=noise))
    raw = torch.load(path, weights_only=True)
    assert set(raw) == {"g_ema", "latent_avg", "stylegan_inversion"}


def test_conv_clamp_and_lr_survive_save_load(tmp_path):
    cfg = dataclasses.replace(TINY, conv_clamp=256.0, lr_mlp=0.05)
    save_generator(make_random_generator(cfg), tmp_path / "g.pt")
    G = load_generator(tmp_path / "g.pt", device="cpu")
    assert G.config.conv_clamp == 256.0 and G.config.lr_mlp == 0.05
    assert G.conv1.conv_clamp == 256.0


def test_bare_state_dict_and_reference_dict_load(tmp_path, small_g):
    torch.save({k: v.clone() for k, v in small_g.state_dict().items()}, tmp_path / "bare.pt")
    torch.save({"g_ema": small_g.state_dict(), "latent_avg": torch.ones(small_g.w_dim), "args": {"size": 32}}, tmp_path / "ref.pt")
    bare = load_generator(tmp_path / "bare.pt", device="cpu")
    ref = load_generator(tmp_path / "ref.pt", device="cpu")
    assert bare.config == small_g.config and not bare.has_w_avg
    assert torch.equal(ref.mean_w(), torch.ones(small_g.w_dim))


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


class _Evil:
    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malformed_checkpoints_fail_with_file_and_reason(tmp_path, small_g):
    good = tmp_path / "good.pt"
    save_generator(small_g, good)
    blob = good.read_bytes()
    cases = {
        "missing": (tmp_path / "nope.pt", "no such file"),
        "empty": (_write(tmp_path / "empty.pt", b""), "empty"),
        "truncated": (_write(tmp_path / "trunc.pt", blob[: len(blob) // 2]), "truncated or corrupt"),
        "garbage": (_write(tmp_path / "garbage.pt", b"hello, not a checkpoint" * 10), "not a readable"),
    }
    sd = {k: v.clone() for k, v in small_g.state_dict().items()}
    wrong_keys = dict(sd)
    wrong_keys.pop("convs.1.noise.weight")
    wrong_keys["convs.1.extra"] = torch.zeros(1)
    torch.save({"g_ema": wrong_keys}, tmp_path / "keys.pt")
    cases["keys"] = (tmp_path / "keys.pt", r"missing keys: convs\.1\.noise\.weight; unexpected keys: convs\.1\.extra")
    wrong_shape = dict(sd)
    wrong_shape["convs.1.activate.bias"] = torch.zeros(3)
    torch.save(wrong_shape, tmp_path / "shape.pt")
    cases["shape"] = (tmp_path / "shape.pt", r"convs\.1\.activate\.bias \[3\]")
    nan = dict(sd)
    nan["conv1.conv.weight"] = torch.full_like(sd["conv1.conv.weight"], float("nan"))
    torch.save(nan, tmp_path / "nan.pt")
    cases["nan"] = (tmp_path / "nan.pt", "NaN")
    torch.save({"fc.weight": torch.zeros(3, 3), "fc.bias": torch.zeros(3)}, tmp_path / "resnet.pt")
    cases["other_net"] = (tmp_path / "resnet.pt", "no mapping layers")
    torch.save({"g_ema": {"style.1.weight": torch.zeros(4, 4), "input.input": torch.zeros(1, 4, 4, 4)}}, tmp_path / "nolayers.pt")
    cases["no_convs"] = (tmp_path / "nolayers.pt", "not complete pairs")
    torch.save([1, 2, 3], tmp_path / "list.pt")
    cases["not_dict"] = (tmp_path / "list.pt", "expected a dict")
    for name, (path, pattern) in cases.items():
        with pytest.raises(CheckpointError, match=pattern) as e:
            load_generator(path, device="cpu")
        assert str(path) in str(e.value), name


def test_code_executing_torch_checkpoint_is_refused_without_running(tmp_path):
    marker = tmp_path / "pwned"
    evil = _Evil()
    evil.marker = marker
    with open(tmp_path / "evil.pt", "wb") as f:
        torch.save({"g_ema": evil}, f)
    with pytest.raises(CheckpointError, match="refused"):
        load_generator(tmp_path / "evil.pt", device="cpu")
    assert not marker.exists()


def test_format_is_sniffed_from_content(tmp_path, small_g):
    save_generator(small_g, tmp_path / "g.pt")
    (tmp_path / "g.pt").rename(tmp_path / "g.pkl")  # a torch zip with the wrong suffix still loads as torch
    assert sg.checkpoint_format(tmp_path / "g.pkl") == "torch"
    assert load_generator(tmp_path / "g.pkl", device="cpu").config == small_g.config
    with open(tmp_path / "legacy.pt", "wb") as f:
        torch.save(small_g.state_dict(), f, _use_new_zipfile_serialization=False)
    assert sg.checkpoint_format(tmp_path / "legacy.pt") == "torch"
    assert load_generator(tmp_path / "legacy.pt", device="cpu").config == small_g.config
    (tmp_path / "plain.bin").write_bytes(pickle.dumps({"G_ema": None}, protocol=4))
    assert sg.checkpoint_format(tmp_path / "plain.bin") == "pickle"


def test_device_is_chosen_automatically_and_overridable(tmp_path, small_g, monkeypatch):
    save_generator(small_g, tmp_path / "g.pt")
    monkeypatch.setenv("STYLEGAN_INVERSION_DEVICE", "cpu")
    assert load_generator(tmp_path / "g.pt").device.type == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA is not available"):
            load_generator(tmp_path / "g.pt", device="cuda")


def test_cpu_allocator_tuning_is_opt_out(monkeypatch):
    monkeypatch.setattr(sg, "_malloc_tuned", None)
    monkeypatch.setenv(sg.MALLOC_ENV_VAR, "0")
    assert sg.tune_cpu_allocator() is False
    monkeypatch.setattr(sg, "_malloc_tuned", None)
    monkeypatch.delenv(sg.MALLOC_ENV_VAR)
    import platform

    expected = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"
    assert sg.tune_cpu_allocator() is expected
    assert sg.tune_cpu_allocator() is expected  # once per process


def test_inference_mode_call_does_not_poison_a_later_backward():
    G = make_random_generator(TINY, seed=0).freeze()
    ws = torch.randn(1, G.num_ws, G.w_dim)
    noise = G.make_noise(1)
    with torch.inference_mode():
        a = G.synthesis(ws, noise=noise)
    wsg = ws.clone().requires_grad_(True)
    b = G.synthesis(wsg, noise=noise)
    b.sum().backward()
    assert wsg.grad is not None and torch.allclose(a, b.detach())


def test_precision_flags_are_the_ones_pytorch_has():
    flags = sg._precision_flags()
    assert len(flags) == 2
    for obj, name in flags:
        assert getattr(obj, name) is not None
