"""NVIDIA pickles: synthetic snapshots with the real structure load without running code; payloads are refused.

The pickles are built here the way stylegan2-ada-pytorch's ``torch_utils.persistence``
writes them: every network module becomes a call to
``torch_utils.persistence._reconstruct_persistent_obj(meta)`` with ``meta`` holding the
module source (here: text that would leave a marker file if executed), the class name
and the module ``__dict__`` (parameters, buffers, submodules, numpy scalars, EasyDicts).
"""

from __future__ import annotations

import math
import os
import pickle
import subprocess
import sys
import types
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch

from stylegan_inversion.nvidia_pickle import UnsafePickleError, load_nvidia_generator_state, read_pickle
from stylegan_inversion.stylegan2 import CheckpointError, GeneratorConfig, load_generator, make_random_generator

REPO = Path(__file__).resolve().parents[1]
CFG = GeneratorConfig(resolution=16, style_dim=16, n_mlp=2, channels={4: 8, 8: 8, 16: 4})


# ------------------------------------------------------- a fake NVIDIA code base


def _never_call(*args, **kwargs):
    raise AssertionError("the loader called code named in the pickle")


@pytest.fixture()
def nvidia_modules(monkeypatch, tmp_path):
    """Register stand-ins for ``torch_utils.persistence`` and ``dnnlib.util`` so pickle can name them.

    They are removed again before loading, so a loader that imported them would fail.
    """
    persistence = types.ModuleType("torch_utils.persistence")
    _never_call.__module__ = "torch_utils.persistence"
    _never_call.__qualname__ = _never_call.__name__ = "_reconstruct_persistent_obj"
    persistence._reconstruct_persistent_obj = _never_call
    torch_utils = types.ModuleType("torch_utils")
    torch_utils.persistence = persistence

    class EasyDict(dict):
        pass

    EasyDict.__module__, EasyDict.__qualname__ = "dnnlib.util", "EasyDict"
    util = types.ModuleType("dnnlib.util")
    util.EasyDict = EasyDict
    dnnlib = types.ModuleType("dnnlib")
    dnnlib.util = util
    dnnlib.EasyDict = EasyDict
    for name, mod in {"torch_utils": torch_utils, "torch_utils.persistence": persistence, "dnnlib": dnnlib, "dnnlib.util": util}.items():
        monkeypatch.setitem(sys.modules, name, mod)
    marker = tmp_path / "module_src_was_executed"
    src = f"import pathlib\npathlib.Path({str(marker)!r}).touch()\nclass SynthesisBlock: pass\nclass Generator: pass\n"
    return types.SimpleNamespace(EasyDict=EasyDict, marker=marker, src=src, monkeypatch=monkeypatch)


class Persistent:
    """Pickles like an NVIDIA persistent-class module: ``_reconstruct_persistent_obj(meta)``."""

    def __init__(self, class_name: str, src: str, params=None, buffers=None, modules=None, **attrs):
        self.class_name, self.src = class_name, src
        self.state = {
            "training": False,
            "_parameters": OrderedDict((k, torch.nn.Parameter(v.clone(), requires_grad=False)) for k, v in (params or {}).items()),
            "_buffers": OrderedDict((k, v.clone()) for k, v in (buffers or {}).items()),
            "_non_persistent_buffers_set": set(),
            "_backward_hooks": OrderedDict(),
            "_forward_hooks": OrderedDict(),
            "_forward_pre_hooks": OrderedDict(),
            "_state_dict_hooks": OrderedDict(),
            "_load_state_dict_pre_hooks": OrderedDict(),
            "_modules": OrderedDict(modules or {}),
            "_init_args": (),
            "_init_kwargs": {},
            **attrs,
        }

    def __reduce__(self):
        meta = {"type": "class", "version": 6, "module_src": self.src, "class_name": self.class_name, "state": self.state}
        return (sys.modules["torch_utils.persistence"]._reconstruct_persistent_obj, (meta,))


def nvidia_snapshot(G, env, *, architecture="skip", c_dim=0, conv_clamp=None, stylegan3=False, drop=None, extra=None):
    """A training-snapshot dict (G, D, G_ema, augment_pipe, training_set_kwargs) holding G in NVIDIA's layout."""
    sd = {k: v.detach().clone() for k, v in G.state_dict().items()}
    src, Ez = env.src, env.EasyDict
    w_dim, res = G.w_dim, G.resolution
    rf = torch.outer(torch.tensor([1.0, 3, 3, 1]), torch.tensor([1.0, 3, 3, 1]))
    rf = rf / rf.sum()

    def fc(i):
        return Persistent("FullyConnectedLayer", src, {"weight": sd[f"style.{i + 1}.weight"], "bias": sd[f"style.{i + 1}.bias"]},
                          activation="lrelu", weight_gain=np.float64(0.01 / math.sqrt(w_dim)), bias_gain=0.01)

    def affine(prefix):
        return Persistent("FullyConnectedLayer", src, {"weight": sd[f"{prefix}.conv.modulation.weight"], "bias": sd[f"{prefix}.conv.modulation.bias"]},
                          activation="linear", weight_gain=np.float64(1 / math.sqrt(w_dim)), bias_gain=1)

    def layer(prefix, noise_idx, side, up):
        return Persistent("SynthesisLayer", src,
                          {"weight": sd[f"{prefix}.conv.weight"][0], "noise_strength": sd[f"{prefix}.noise.weight"].reshape([]),
                           "bias": sd[f"{prefix}.activate.bias"]},
                          {"resample_filter": rf, "noise_const": sd[f"noises.noise_{noise_idx}"][0, 0]},
                          {"affine": affine(prefix)}, resolution=side, up=2 if up else 1, use_noise=True, activation="lrelu",
                          conv_clamp=conv_clamp, padding=1, act_gain=np.float64(math.sqrt(2)))

    def torgb(prefix):
        return Persistent("ToRGBLayer", src, {"weight": sd[f"{prefix}.conv.weight"][0], "bias": sd[f"{prefix}.bias"].reshape(3)},
                          None, {"affine": affine(prefix)}, conv_clamp=conv_clamp, weight_gain=np.float64(1 / math.sqrt(G.config.channels[4])))

    blocks = OrderedDict()
    blocks["b4"] = Persistent("SynthesisBlock", src, {"const": sd["input.input"][0]}, {"resample_filter": rf},
                              {"conv1": layer("conv1", 0, 4, False), "torgb": torgb("to_rgb1")},
                              in_channels=0, resolution=4, architecture=architecture, use_fp16=False)
    for k in range(len(G.to_rgbs)):
        r = 2 ** (k + 3)
        mods = {"conv0": layer(f"convs.{2 * k}", 2 * k + 1, r, True), "conv1": layer(f"convs.{2 * k + 1}", 2 * k + 2, r, False),
                "torgb": torgb(f"to_rgbs.{k}")}
        if architecture == "resnet":
            mods["skip"] = Persistent("Conv2dLayer", src, {"weight": torch.zeros(G.config.channels[r], G.config.channels[r // 2], 1, 1)})
        blocks[f"b{r}"] = Persistent("SynthesisBlock", src, None, {"resample_filter": rf}, mods, resolution=r,
                                     architecture=architecture, use_fp16=r >= res, conv_clamp=conv_clamp)
    if stylegan3:
        blocks["input"] = Persistent("SynthesisInput", src, {"freqs": torch.zeros(4, 2)})
    synthesis = Persistent("SynthesisNetwork", src, None, None, blocks, w_dim=w_dim, img_resolution=res, img_channels=3,
                           num_ws=G.num_ws, block_resolutions=[2**i for i in range(2, int(math.log2(res)) + 1)])
    mapping_mods = OrderedDict((f"fc{i}", fc(i)) for i in range(G.config.n_mlp))
    if c_dim:
        mapping_mods["embed"] = Persistent("FullyConnectedLayer", src, {"weight": torch.zeros(w_dim, c_dim), "bias": torch.zeros(w_dim)})
    mapping = Persistent("MappingNetwork", src, None, {"w_avg": torch.linspace(-1, 1, w_dim)}, mapping_mods,
                         z_dim=w_dim, c_dim=c_dim, w_dim=w_dim, num_ws=G.num_ws, num_layers=G.config.n_mlp, w_avg_beta=0.995)
    gen = Persistent("Generator", src, None, None, {"synthesis": synthesis, "mapping": mapping}, z_dim=w_dim, c_dim=c_dim,
                     w_dim=w_dim, img_resolution=res, img_channels=3, num_ws=G.num_ws,
                     _init_kwargs=Ez(z_dim=w_dim, mapping_kwargs=Ez(num_layers=G.config.n_mlp), synthesis_kwargs=Ez(conv_clamp=conv_clamp)))
    if drop:
        del _find(gen, drop.rsplit(".", 1)[0]).state["_parameters"][drop.rsplit(".", 1)[1]]
    if extra:
        for key, value in extra.items():
            _find(gen, key.rsplit(".", 1)[0]).state["_parameters"][key.rsplit(".", 1)[1]] = value
    disc = Persistent("Discriminator", src, {"b16.fromrgb.weight": torch.zeros(2, 3, 1, 1)})
    return {"G": gen, "D": disc, "G_ema": gen, "augment_pipe": Persistent("AugmentPipe", src, None, {"Hz_geom": torch.zeros(12)}, p=np.float32(0.2)),
            "training_set_kwargs": Ez(path="~/datasets/ffhq.zip", resolution=res, use_labels=False, xflip=True)}


def _find(obj: Persistent, dotted: str) -> Persistent:
    for part in dotted.split("."):
        obj = obj.state["_modules"][part]
    return obj


def write_pickle(obj, path: Path, env, protocol: int = pickle.DEFAULT_PROTOCOL) -> Path:
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=protocol)
    for name in ("torch_utils", "torch_utils.persistence", "dnnlib", "dnnlib.util"):
        env.monkeypatch.delitem(sys.modules, name)  # loading must not need (or call) them
    return path


@pytest.fixture(scope="module")
def G():
    g = make_random_generator(CFG, seed=4, noise_strength=0.2, bias_scale=0.3)
    with torch.no_grad():
        g.to_rgbs[0].conv.modulation.bias.normal_()
    return g


# ----------------------------------------------------------------------- loading


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_snapshot_converts_to_the_same_generator(tmp_path, nvidia_modules, G, protocol):
    path = write_pickle(nvidia_snapshot(G, nvidia_modules), tmp_path / "snap.pkl", nvidia_modules, protocol)
    loaded = load_generator(path, device="cpu")
    assert loaded.config == G.config
    for k, v in G.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k
    ws = torch.randn(2, G.num_ws, G.w_dim)
    noise = G.make_noise(2, seed=1)
    assert torch.equal(loaded.synthesis(ws, noise=noise), G.synthesis(ws, noise=noise))
    assert loaded.has_w_avg and torch.equal(loaded.mean_w(), torch.linspace(-1, 1, G.w_dim))  # the stored average w
    assert loaded.meta["network_key"] == "G_ema" and loaded.meta["nvidia_module"] == "networks_stylegan2"
    assert not nvidia_modules.marker.exists()


def test_state_helper_returns_state_w_avg_and_meta(tmp_path, nvidia_modules, G):
    path = write_pickle(nvidia_snapshot(G, nvidia_modules, conv_clamp=256), tmp_path / "snap.pkl", nvidia_modules)
    state, w_avg, meta = load_nvidia_generator_state(path)
    assert set(state) == set(G.state_dict())
    assert torch.equal(w_avg, torch.linspace(-1, 1, G.w_dim))
    assert meta["conv_clamp"] == 256.0 and meta["lr_mlp"] == 0.01 and meta["img_resolution"] == 16
    assert load_generator(path, device="cpu").config.conv_clamp == 256.0
    assert not nvidia_modules.marker.exists()


def test_bare_generator_pickle_and_plain_g(tmp_path, nvidia_modules, G):
    snap = nvidia_snapshot(G, nvidia_modules)
    write_pickle({"G": snap["G"], "D": snap["D"]}, tmp_path / "g_only.pkl", nvidia_modules)
    assert load_generator(tmp_path / "g_only.pkl", device="cpu").meta["network_key"] == "G"


def test_convert_cli_writes_a_cached_rosinality_checkpoint(tmp_path, nvidia_modules, G):
    src = write_pickle(nvidia_snapshot(G, nvidia_modules), tmp_path / "snap.pkl", nvidia_modules)
    out = tmp_path / "cache" / "g.pt"
    r = subprocess.run([sys.executable, str(REPO / "scripts" / "convert_weights.py"), str(src), str(out)], capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in out.parent.iterdir()) == ["g.pt"]
    conv = load_generator(out, device="cpu")
    assert conv.has_w_avg and conv.meta["converted_from"] == "snap.pkl"
    ws = torch.randn(1, G.num_ws, G.w_dim)
    assert torch.equal(conv.synthesis(ws, noise=G.make_noise(1)), G.synthesis(ws, noise=G.make_noise(1)))
    bad = subprocess.run([sys.executable, str(REPO / "scripts" / "convert_weights.py"), str(tmp_path / "missing.pkl"), str(out)],
                         capture_output=True, text=True, check=False)
    assert bad.returncode == 1 and "missing.pkl: no such file" in bad.stderr and "Traceback" not in bad.stderr
    helped = subprocess.run([sys.executable, str(REPO / "scripts" / "convert_weights.py"), "--help"], capture_output=True, text=True, check=False)
    assert helped.returncode == 0 and "rosinality" in helped.stdout


# ----------------------------------------------------------------- refusals


class _System:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _Eval:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (eval, (f"open({str(self.marker)!r}, 'w')",))


@pytest.mark.parametrize("payload", [_System, _Eval])
def test_code_executing_payload_is_refused_without_running(tmp_path, nvidia_modules, G, payload):
    marker = tmp_path / "pwned"
    snap = nvidia_snapshot(G, nvidia_modules)
    snap["G_ema"].state["_modules"]["synthesis"].state["evil"] = payload(marker)  # hidden deep in a real-looking snapshot
    path = write_pickle(snap, tmp_path / "evil.pkl", nvidia_modules)
    with pytest.raises(UnsafePickleError, match=r"evil\.pkl: refused to unpickle: it references (posix|nt|os|builtins)\.(system|eval)") as e:
        load_generator(path, device="cpu")
    assert "run code" in str(e.value)
    assert not marker.exists()


def test_malicious_tensor_storage_is_refused(tmp_path, nvidia_modules):
    import io

    marker = tmp_path / "pwned"
    buf = io.BytesIO()
    torch.save(_System(marker), buf, _use_new_zipfile_serialization=False)

    class EvilStorage:
        def __reduce__(self):
            return (torch.storage._load_from_bytes, (buf.getvalue(),))

    path = write_pickle({"G_ema": EvilStorage()}, tmp_path / "storage.pkl", nvidia_modules)
    with pytest.raises(CheckpointError, match=r"storage\.pkl: a tensor storage could not be read safely"):
        load_generator(path, device="cpu")
    assert not marker.exists()


def test_tensorflow_pickle_gets_a_hint(tmp_path):
    data = b"\x80\x02cdnnlib.tflib.network\nNetwork\nq\x00)\x81q\x01."
    (tmp_path / "tf.pkl").write_bytes(data)
    with pytest.raises(UnsafePickleError, match=r"tf\.pkl: .*dnnlib\.tflib\.network\.Network.*TensorFlow.*legacy\.py"):
        load_generator(tmp_path / "tf.pkl", device="cpu")


def test_truncated_and_garbage_pickles(tmp_path, nvidia_modules, G):
    blob = write_pickle(nvidia_snapshot(G, nvidia_modules), tmp_path / "snap.pkl", nvidia_modules).read_bytes()
    (tmp_path / "trunc.pkl").write_bytes(blob[: len(blob) * 2 // 3])
    with pytest.raises(CheckpointError, match=r"trunc\.pkl: cannot unpickle \(truncated"):
        load_generator(tmp_path / "trunc.pkl", device="cpu")
    (tmp_path / "junk.pkl").write_bytes(b"this is not a pickle at all")
    with pytest.raises(CheckpointError, match=r"junk\.pkl: cannot unpickle"):
        load_generator(tmp_path / "junk.pkl", device="cpu")
    (tmp_path / "empty.pkl").write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"empty\.pkl: file is empty"):
        read_pickle(tmp_path / "empty.pkl")


@pytest.mark.parametrize(
    "kwargs,pattern",
    [
        ({"stylegan3": True}, "StyleGAN3"),
        ({"c_dim": 10}, r"conditional generator \(c_dim=10\)"),
        ({"architecture": "resnet"}, "'resnet' architecture"),
        ({"drop": "synthesis.b8.conv1.bias"}, r"missing synthesis\.b8\.conv1\.bias"),
        ({"extra": {"synthesis.b8.conv1.lora": torch.zeros(2)}}, r"no place in a StyleGAN2 generator: synthesis\.b8\.conv1\.lora"),
    ],
    ids=["stylegan3", "conditional", "resnet", "missing", "unexpected"],
)
def test_non_stylegan2_networks_fail_with_file_and_reason(tmp_path, nvidia_modules, G, kwargs, pattern):
    path = write_pickle(nvidia_snapshot(G, nvidia_modules, **kwargs), tmp_path / "net.pkl", nvidia_modules)
    with pytest.raises(CheckpointError, match=pattern) as e:
        load_generator(path, device="cpu")
    assert str(path) in str(e.value)


def test_snapshot_without_generator(tmp_path, nvidia_modules, G):
    snap = nvidia_snapshot(G, nvidia_modules)
    path = write_pickle({"D": snap["D"], "training_set_kwargs": snap["training_set_kwargs"]}, tmp_path / "d.pkl", nvidia_modules)
    with pytest.raises(CheckpointError, match=r"d\.pkl: no generator network \(looked for G_ema, G; keys: D, training_set_kwargs\)"):
        load_generator(path, device="cpu")
    (tmp_path / "list.pkl").write_bytes(pickle.dumps([1, 2]))
    with pytest.raises(CheckpointError, match=r"list\.pkl: expected a dict of networks"):
        load_generator(tmp_path / "list.pkl", device="cpu")
