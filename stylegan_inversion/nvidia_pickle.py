"""Read NVIDIA stylegan2-ada-pytorch / stylegan3 pickles of StyleGAN2 generators without running their code.

NVIDIA's networks are "persistent classes": each module pickles as a call to
``torch_utils.persistence._reconstruct_persistent_obj(meta)``, where ``meta`` holds the
source code of the module that defines the class (executed on a normal unpickle),
the class name and the module's ``__dict__`` (parameters, buffers, submodules and
plain attributes). Here a restricted unpickler maps that call to an inert record,
rebuilds tensors (storages through ``torch.load(weights_only=True)``) and plain
containers, and refuses every other global with a clear error before anything runs.
The records are then renamed to the rosinality layout that :mod:`.stylegan2` loads.
"""

from __future__ import annotations

import _codecs
import _compat_pickle
import builtins
import io
import logging
import math
import pickle
import re
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .stylegan2 import CheckpointError

log = logging.getLogger(__name__)

NETWORK_KEYS = ("G_ema", "G")  # which generator of a training snapshot to use, in order of preference


class UnsafePickleError(CheckpointError):
    """A pickle that references code (a global that is not a tensor or plain container)."""


class EasyDict(dict):
    """Stand-in for ``dnnlib.EasyDict``: a dict with attribute access."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


class PersistentObject:
    """Inert record of a pickled NVIDIA persistent object: class name and saved ``__dict__``.

    Nothing from the pickle is executed to build it; ``module_kind`` is a guess at the
    defining module from class names in its (never executed) source text.
    """

    def __init__(self, class_name: str, state: dict, module_kind: str, version: Any):
        self.class_name = class_name
        self.state = state
        self.module_kind = module_kind
        self.version = version

    def __repr__(self) -> str:
        return f"PersistentObject({self.class_name!r}, module={self.module_kind!r})"

    def submodule(self, name: str) -> PersistentObject | None:
        """A child module by name (None if absent)."""
        mods = self.state.get("_modules") or {}
        m = mods.get(name)
        return m if isinstance(m, PersistentObject) else None

    def submodules(self) -> dict[str, PersistentObject]:
        """Child modules by name."""
        return {k: v for k, v in (self.state.get("_modules") or {}).items() if isinstance(v, PersistentObject)}

    def attr(self, name: str, default: Any = None) -> Any:
        """A plain attribute (not a parameter, buffer or submodule)."""
        return self.state.get(name, default)


def _module_kind(src: Any) -> str:
    """Which NVIDIA networks file a persistent object's source text looks like."""
    if not isinstance(src, str):
        return "unknown"
    if "class SynthesisInput" in src:
        return "networks_stylegan3"
    if "class SynthesisBlock" in src:
        return "networks_stylegan2"
    if "class AugmentPipe" in src:
        return "augment"
    return "other"


# ------------------------------------------------------------------ safe rebuilders


def _reconstruct_persistent_obj(meta: Any) -> PersistentObject:
    """Replacement for ``torch_utils.persistence._reconstruct_persistent_obj``: record, never execute."""
    if not isinstance(meta, dict) or meta.get("type") != "class" or not isinstance(meta.get("class_name"), str):
        raise CheckpointError("a persistent object with malformed metadata (expected type='class', class_name, state)")
    state = meta.get("state")
    if state is None:
        state = {}
    if not isinstance(state, dict):
        raise CheckpointError(f"persistent object {meta['class_name']!r} has a state of type {type(state).__name__}, not a dict")
    return PersistentObject(meta["class_name"], dict(state), _module_kind(meta.get("module_src")), meta.get("version"))


def _load_from_bytes(b: Any) -> Any:
    """Replacement for ``torch.storage._load_from_bytes``: the storage bytes go through weights_only loading."""
    if not isinstance(b, (bytes, bytearray)):
        raise CheckpointError(f"tensor storage is {type(b).__name__}, not bytes")
    try:
        return torch.load(io.BytesIO(bytes(b)), map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for corrupt or unsafe data
        raise CheckpointError(f"a tensor storage could not be read safely ({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None


def _is_storage(s: Any) -> bool:
    return isinstance(s, (torch.storage.TypedStorage, torch.UntypedStorage))


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None, metadata=None):
    """Safe ``torch._utils._rebuild_tensor_v2``: a plain tensor, no hooks."""
    if not _is_storage(storage):
        raise CheckpointError(f"tensor built from a {type(storage).__name__}, not a storage")
    return torch._utils._rebuild_tensor_v2(storage, int(storage_offset), tuple(size), tuple(stride), False, OrderedDict())


def _rebuild_tensor(storage, storage_offset, size, stride):
    """Safe ``torch._utils._rebuild_tensor`` (older pickles)."""
    return _rebuild_tensor_v2(storage, storage_offset, size, stride)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, *rest):
    """Safe ``torch._utils._rebuild_parameter[_with_state]``: the plain tensor."""
    if not torch.is_tensor(data):
        raise CheckpointError(f"parameter built from a {type(data).__name__}, not a tensor")
    return data


def _numpy_global(name: str) -> Any:
    core = getattr(np, "_core", None) or np.core
    return getattr(core.multiarray, name)


_TORCH_DTYPES = (
    "float16", "float32", "float64", "bfloat16", "half", "float", "double",
    "uint8", "int8", "int16", "int32", "int64", "long", "int", "short", "bool", "complex64", "complex128",
)


def _safe_globals() -> dict[tuple[str, str], Any]:
    """The only globals a pickle may name: tensor/storage rebuilders, containers, data types."""
    table: dict[tuple[str, str], Any] = {
        ("torch_utils.persistence", "_reconstruct_persistent_obj"): _reconstruct_persistent_obj,
        ("dnnlib.util", "EasyDict"): EasyDict,
        ("dnnlib", "EasyDict"): EasyDict,
        ("collections", "OrderedDict"): OrderedDict,
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
        ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
        ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
        ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
        ("torch.storage", "_load_from_bytes"): _load_from_bytes,
        ("_codecs", "encode"): _codecs.encode,  # how protocol-2 pickles spell bytes
        ("torch", "device"): torch.device,
        ("torch", "Size"): torch.Size,
        ("numpy", "dtype"): np.dtype,
        ("numpy", "ndarray"): np.ndarray,
    }
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        table[(mod, "scalar")] = _numpy_global("scalar")
        table[(mod, "_reconstruct")] = _numpy_global("_reconstruct")
    for name in ("set", "frozenset", "tuple", "list", "dict", "int", "float", "bool", "str", "bytes", "bytearray", "complex", "slice"):
        table[("builtins", name)] = getattr(builtins, name)
    for name in _TORCH_DTYPES:
        table[("torch", name)] = getattr(torch, name)
    return table


_SAFE = _safe_globals()


def _refusal_hint(module: str, name: str) -> str:
    if module.startswith("dnnlib.tflib"):
        return " (a TensorFlow StyleGAN pickle: convert it with stylegan2-ada-pytorch's legacy.py first)"
    if module.startswith(("torch_utils", "training", "dnnlib")):
        return " (NVIDIA code other than the persistent-class mechanism: not a network snapshot this loader knows)"
    return ""


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only :func:`_safe_globals` and refuses everything else."""

    def __init__(self, file, source: str):
        super().__init__(file)
        self.source = source

    def find_class(self, module: str, name: str) -> Any:
        # Protocol-2 pickles spell Python 3 names the Python 2 way (__builtin__.set ...).
        module, name = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        obj = _SAFE.get((module, name))
        if obj is None:
            raise UnsafePickleError(
                f"{self.source}: refused to unpickle: it references {module}.{name}, which is not a tensor or a plain "
                f"container; loading it would run code from the file{_refusal_hint(module, name)}"
            )
        return obj

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError(f"{self.source}: refused to unpickle: it uses persistent ids ({str(pid)[:60]}), "
                                "which NVIDIA network pickles do not; is it a torch.save file named .pkl?")


def read_pickle(path: str | Path) -> Any:
    """Unpickle ``path`` with :class:`RestrictedUnpickler`; errors name the file and the problem."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    size = path.stat().st_size
    if size == 0:
        raise CheckpointError(f"{path}: file is empty (0 bytes)")
    try:
        with open(path, "rb") as f:
            return RestrictedUnpickler(f, str(path)).load()
    except UnsafePickleError:
        raise
    except CheckpointError as e:
        raise CheckpointError(f"{path}: {e}") from None
    except (EOFError, pickle.UnpicklingError, ValueError, TypeError, AttributeError, IndexError, KeyError, MemoryError,
            OverflowError, RuntimeError, UnicodeDecodeError) as e:
        kind = "truncated" if isinstance(e, EOFError) or "truncated" in str(e).lower() else "corrupt or not a pickle"
        raise CheckpointError(f"{path}: cannot unpickle ({kind}; {type(e).__name__}: {str(e)[:200]})") from None


# ------------------------------------------------------------------ conversion


def flatten_state(obj: PersistentObject, prefix: str = "") -> dict[str, torch.Tensor]:
    """Parameters and buffers of a persistent module tree, by dotted name (like ``state_dict``)."""
    out: dict[str, torch.Tensor] = {}
    for group in ("_parameters", "_buffers"):
        for name, t in (obj.state.get(group) or {}).items():
            if t is None:
                continue
            if not torch.is_tensor(t):
                raise CheckpointError(f"{prefix}{name} is a {type(t).__name__}, not a tensor")
            out[prefix + name] = t
    for name, child in (obj.state.get("_modules") or {}).items():
        if child is None:
            continue
        if not isinstance(child, PersistentObject):
            raise CheckpointError(f"submodule {prefix}{name} is a {type(child).__name__}, not a network module")
        out.update(flatten_state(child, f"{prefix}{name}."))
    return out


def _as_float(v: Any) -> float | None:
    if v is None:
        return None
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def _pick_generator(obj: Any, source: str) -> tuple[PersistentObject, str]:
    """The generator record of a snapshot dict (``G_ema``, else ``G``) or a bare pickled generator."""
    if isinstance(obj, PersistentObject):
        return obj, "<root>"
    if not isinstance(obj, dict):
        raise CheckpointError(f"{source}: expected a dict of networks (G, D, G_ema ...), found {type(obj).__name__}")
    for key in NETWORK_KEYS:
        if isinstance(obj.get(key), PersistentObject):
            return obj[key], key
    raise CheckpointError(f"{source}: no generator network (looked for {', '.join(NETWORK_KEYS)}; keys: {', '.join(map(str, obj))})")


def _check_stylegan2(G: PersistentObject, source: str) -> tuple[PersistentObject, PersistentObject]:
    """(mapping, synthesis) of an unconditional RGB StyleGAN2 'skip' generator, else a clear error."""
    if G.class_name != "Generator":
        raise CheckpointError(f"{source}: the network is a {G.class_name}, not a Generator")
    mapping, synthesis = G.submodule("mapping"), G.submodule("synthesis")
    if mapping is None or synthesis is None:
        raise CheckpointError(f"{source}: the generator has no mapping/synthesis networks")
    if G.module_kind == "networks_stylegan3" or synthesis.submodule("input") is not None or synthesis.attr("layer_names"):
        raise CheckpointError(f"{source}: a StyleGAN3 (alias-free) generator, not StyleGAN2; it cannot be converted")
    c_dim = int(G.attr("c_dim", 0) or 0)
    if c_dim or mapping.submodule("embed") is not None:
        raise CheckpointError(f"{source}: a conditional generator (c_dim={c_dim}); only unconditional StyleGAN2 is supported")
    img_channels = int(G.attr("img_channels", 3) or 3)
    if img_channels != 3:
        raise CheckpointError(f"{source}: the generator makes {img_channels}-channel images; only RGB is supported")
    return mapping, synthesis


def convert_generator(G: PersistentObject, source: str = "<pickle>") -> tuple[dict[str, torch.Tensor], torch.Tensor | None, dict]:
    """NVIDIA generator record -> (rosinality state dict, stored average w or None, meta)."""
    mapping, synthesis = _check_stylegan2(G, source)
    nv = flatten_state(G)
    used: set[str] = set()

    def take(key: str) -> torch.Tensor:
        if key not in nv:
            raise CheckpointError(f"{source}: not a StyleGAN2 generator: missing {key}")
        used.add(key)
        return nv[key].detach().float()

    out: dict[str, torch.Tensor] = {}
    # Mapping network: fc0..fcN -> style.1..style.N+1 (style.0 is the parameter-free PixelNorm).
    fcs = sorted(int(m.group(1)) for k in nv if (m := re.fullmatch(r"mapping\.fc(\d+)\.weight", k)))
    if not fcs or fcs != list(range(len(fcs))):
        raise CheckpointError(f"{source}: not a StyleGAN2 generator: mapping layers are {fcs}")
    lr = set()
    for i in fcs:
        fc = mapping.submodule(f"fc{i}")
        if fc is not None and fc.attr("activation", "lrelu") != "lrelu":
            raise CheckpointError(f"{source}: mapping layer fc{i} uses activation {fc.attr('activation')!r}, not lrelu")
        bg = _as_float(fc.attr("bias_gain")) if fc is not None else None
        if bg is not None:
            lr.add(round(bg, 12))
        out[f"style.{i + 1}.weight"] = take(f"mapping.fc{i}.weight")
        out[f"style.{i + 1}.bias"] = take(f"mapping.fc{i}.bias")
    if len(lr) > 1:
        raise CheckpointError(f"{source}: mapping layers use different learning-rate multipliers {sorted(lr)}")
    lr_mlp = lr.pop() if lr else 0.01

    res_blocks = sorted(int(m.group(1)) for k in synthesis.submodules() if (m := re.fullmatch(r"b(\d+)", k)))
    if not res_blocks or res_blocks[0] != 4 or res_blocks != [2**i for i in range(2, 2 + len(res_blocks))]:
        raise CheckpointError(f"{source}: not a StyleGAN2 synthesis network: blocks {res_blocks}")
    resolution = res_blocks[-1]
    conv_clamp = None
    for res in res_blocks:
        blk = synthesis.submodule(f"b{res}")
        arch = blk.attr("architecture", "skip")
        if arch != "skip":
            raise CheckpointError(f"{source}: synthesis block b{res} uses the {arch!r} architecture; only 'skip' (config e/f) is supported")
        for lname, layer in blk.submodules().items():
            act = layer.attr("activation")
            if lname.startswith("conv") and act not in (None, "lrelu"):
                raise CheckpointError(f"{source}: layer b{res}.{lname} uses activation {act!r}, not lrelu")
            cc = _as_float(layer.attr("conv_clamp"))
            if cc is not None:
                if conv_clamp is not None and cc != conv_clamp:
                    raise CheckpointError(f"{source}: layers use different conv_clamp values ({conv_clamp}, {cc})")
                conv_clamp = cc

    def layer(nv_prefix: str, ros_prefix: str, noise_index: int | None, up: bool) -> None:
        w = take(f"{nv_prefix}.weight")
        if w.ndim != 4:
            raise CheckpointError(f"{source}: {nv_prefix}.weight has shape {list(w.shape)}, not [out, in, k, k]")
        out[f"{ros_prefix}.conv.weight"] = w.unsqueeze(0)
        out[f"{ros_prefix}.conv.modulation.weight"] = take(f"{nv_prefix}.affine.weight")
        out[f"{ros_prefix}.conv.modulation.bias"] = take(f"{nv_prefix}.affine.bias")
        if noise_index is None:  # ToRGB
            out[f"{ros_prefix}.bias"] = take(f"{nv_prefix}.bias").view(1, -1, 1, 1)
            return
        if f"{nv_prefix}.noise_strength" not in nv:
            raise CheckpointError(f"{source}: {nv_prefix} has no noise input (use_noise=False is not supported)")
        out[f"{ros_prefix}.noise.weight"] = take(f"{nv_prefix}.noise_strength").reshape(1)
        out[f"{ros_prefix}.activate.bias"] = take(f"{nv_prefix}.bias")
        nc = take(f"{nv_prefix}.noise_const")
        out[f"noises.noise_{noise_index}"] = nc.reshape(1, 1, *nc.shape[-2:])
        if up:
            rf = take(f"{nv_prefix}.resample_filter")
            out[f"{ros_prefix}.conv.blur.kernel"] = _filter_2d(rf, source) * 4

    const = take("synthesis.b4.const")
    out["input.input"] = const.unsqueeze(0)
    layer("synthesis.b4.conv1", "conv1", 0, up=False)
    layer("synthesis.b4.torgb", "to_rgb1", None, up=False)
    for res in res_blocks[1:]:
        k = int(math.log2(res)) - 3
        layer(f"synthesis.b{res}.conv0", f"convs.{2 * k}", 2 * k + 1, up=True)
        layer(f"synthesis.b{res}.conv1", f"convs.{2 * k + 1}", 2 * k + 2, up=False)
        layer(f"synthesis.b{res}.torgb", f"to_rgbs.{k}", None, up=False)
        out[f"to_rgbs.{k}.upsample.kernel"] = _filter_2d(take(f"synthesis.b{res}.resample_filter"), source) * 4

    w_avg = nv.get("mapping.w_avg")
    used.add("mapping.w_avg")
    ignorable = re.compile(r"synthesis\.b\d+\.(conv1\.|torgb\.)?resample_filter$|synthesis\.b4\.resample_filter$")
    left = sorted(k for k in nv if k not in used and not ignorable.fullmatch(k))
    if left:
        shown = ", ".join(left[:8]) + (f", ... ({len(left)} in all)" if len(left) > 8 else "")
        raise CheckpointError(f"{source}: parameters with no place in a StyleGAN2 generator: {shown}")
    meta = {
        "source_format": "nvidia-pickle",
        "nvidia_module": G.module_kind,
        "lr_mlp": float(lr_mlp),
        "conv_clamp": conv_clamp,
        "img_resolution": resolution,
        "z_dim": _as_int(G.attr("z_dim")),
        "w_dim": _as_int(G.attr("w_dim")),
    }
    if conv_clamp is not None:
        log.info("%s: layers clamp their outputs to +-%g (conv_clamp), kept in the converted model", source, conv_clamp)
    return out, (w_avg.detach().float().clone() if torch.is_tensor(w_avg) else None), meta


def _as_int(v: Any) -> int | None:
    f = _as_float(v)
    return None if f is None else int(f)


def _filter_2d(rf: torch.Tensor, source: str) -> torch.Tensor:
    """NVIDIA's normalised resample filter as a 2-D kernel (it may be stored separable, 1-D)."""
    f = rf.float()
    if f.ndim == 1:
        f = torch.outer(f, f)
    if f.ndim != 2 or f.shape[0] != f.shape[1]:
        raise CheckpointError(f"{source}: resample filter of shape {list(rf.shape)} is not a square FIR kernel")
    return f / f.sum()


def load_nvidia_generator_state(path: str | Path) -> tuple[dict[str, torch.Tensor], torch.Tensor | None, dict]:
    """(rosinality state dict, stored average w or None, meta) of the generator in an NVIDIA pickle."""
    path = Path(path)
    obj = read_pickle(path)
    G, key = _pick_generator(obj, str(path))
    state, w_avg, meta = convert_generator(G, str(path))
    meta["network_key"] = key
    meta["source"] = path.name
    log.info("%s: read %s (%s), %d px, conv_clamp %s", path, key, meta["nvidia_module"], meta["img_resolution"], meta["conv_clamp"])
    return state, w_avg, meta
