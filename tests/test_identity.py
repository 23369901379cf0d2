"""Identity network (IR-SE ArcFace loss) and dlib identity metric."""

from __future__ import annotations

import io
import logging
import math

import numpy as np
import pytest
import torch
from PIL import Image

from stylegan_inversion.generate import bundled_photo_path
from stylegan_inversion.identity import (
    ASSET_PATH,
    CROP_BOX_256,
    DLIB_SAME_PERSON_THRESHOLD,
    IRSE,
    IdentityModel,
    IRSEConfig,
    arcface_crop,
    crop_box,
    dlib_face_descriptor,
    dlib_identity_distance,
    irse_from_state_dict,
    load_irse50,
    make_stand_in_identity,
    save_identity,
    write_stand_in_identity,
)
from stylegan_inversion.stylegan2 import CheckpointError
from stylegan_inversion.weights import WeightsError

# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def irse50() -> IRSE:
    """A randomly initialised full-size IR-SE50 (seeded)."""
    torch.manual_seed(0)
    return IRSE(IRSEConfig.irse50()).eval()


@pytest.fixture(scope="module")
def stand_in() -> IdentityModel:
    return make_stand_in_identity(seed=0)


def _faces(n: int, size: int, seed: int) -> torch.Tensor:
    """[n, 3, size, size] smooth random images in [-1, 1]."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, 3, 8, 8, generator=g) * 2 - 1
    return torch.nn.functional.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)


# Rough FFHQ alignment by cropping: axis-aligned bounds of the FFHQ quad of each photo's face
# (measured once with dlib's 68 landmarks and the FFHQ recipe), resized to 256 px.
_CROPS = {
    "astronaut": (137, 19, 312, 194),  # 512x512, Eileen Collins
    "grace_hopper": (88, 25, 444, 381),  # 512x600
    "tom_hanks": (-20, -20, 132, 132),  # 112x112 ArcFace crop: the FFHQ quad reaches 20 px outside it
}


def _aligned_photo(name: str, size: int = 256) -> Image.Image:
    img = Image.open(bundled_photo_path(name)).convert("RGB")
    left, top, right, bottom = _CROPS[name]
    pad = max(0, -left, -top, right - img.width, bottom - img.height)
    if pad:  # replicate edges rather than paint black corners
        img = Image.fromarray(np.pad(np.asarray(img), ((pad, pad), (pad, pad), (0, 0)), mode="edge"))
        left, top, right, bottom = left + pad, top + pad, right + pad, bottom + pad
    return img.crop((left, top, right, bottom)).resize((size, size), Image.Resampling.LANCZOS)


@pytest.fixture(scope="module")
def photos() -> dict[str, Image.Image]:
    return {name: _aligned_photo(name) for name in _CROPS}


def _jpeg(img: Image.Image, quality: int) -> Image.Image:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=quality)
    buf.seek(0)
    return Image.open(buf).convert("RGB")


# ---------------------------------------------------------------- IR-SE50 architecture


def test_irse50_keys_and_shapes_match_treb1en(irse50):
    sd = irse50.state_dict()
    assert sum(p.numel() for p in irse50.parameters()) == 43_797_696  # model_ir_se50.pth is ~175 MB of float32
    assert len(irse50.body) == 24  # get_blocks(50): 3 + 4 + 14 + 3 bottlenecks
    # conv shortcuts only where the depth changes (first unit of stages 2-4); unit 0 subsamples by max-pool(1, 2)
    assert sorted({int(k.split(".")[1]) for k in sd if ".shortcut_layer." in k}) == [3, 7, 21]
    assert isinstance(irse50.body[0].shortcut_layer, torch.nn.MaxPool2d) and irse50.body[0].shortcut_layer.stride == 2
    expected = {
        "input_layer.0.weight": (64, 3, 3, 3),
        "input_layer.1.running_var": (64,),
        "input_layer.2.weight": (64,),  # PReLU
        "body.0.res_layer.0.weight": (64,),
        "body.0.res_layer.1.weight": (64, 64, 3, 3),
        "body.0.res_layer.2.weight": (64,),
        "body.0.res_layer.3.weight": (64, 64, 3, 3),
        "body.0.res_layer.5.fc1.weight": (4, 64, 1, 1),  # SE, reduction 16, no bias
        "body.0.res_layer.5.fc2.weight": (64, 4, 1, 1),
        "body.3.shortcut_layer.0.weight": (128, 64, 1, 1),
        "body.3.shortcut_layer.1.running_mean": (128,),
        "body.21.shortcut_layer.0.weight": (512, 256, 1, 1),
        "body.23.res_layer.5.fc2.weight": (512, 32, 1, 1),
        "output_layer.0.weight": (512,),
        "output_layer.3.weight": (512, 512 * 7 * 7),
        "output_layer.3.bias": (512,),
        "output_layer.4.weight": (512,),  # affine BatchNorm1d, as pSp's IDLoss builds it
        "output_layer.4.running_mean": (512,),
    }
    for key, shape in expected.items():
        assert tuple(sd[key].shape) == shape, key
    assert not any("fc1.bias" in k or "res_layer.1.bias" in k for k in sd)
    assert {k.split(".")[0] for k in sd} == {"input_layer", "body", "output_layer"}


def test_irse50_forward_112(irse50):
    x = torch.rand(1, 3, 112, 112) * 2 - 1
    with torch.no_grad():
        e = irse50(x)
    assert e.shape == (1, 512)
    assert torch.isfinite(e).all() and e.norm(dim=1).sub(1).abs().max() < 1e-5
    with pytest.raises(ValueError, match=r"\[N, 3, 112, 112\]"):
        irse50(torch.zeros(1, 3, 128, 128))


# ---------------------------------------------------------------- checkpoints


def test_plain_irse50_state_dict_loads_through_loader(irse50, tmp_path):
    # pSp's model_ir_se50.pth is a plain state dict; files from old PyTorch lack num_batches_tracked
    state = {k: v for k, v in irse50.state_dict().items() if not k.endswith("num_batches_tracked")}
    path = tmp_path / "arcface-irse50.pt"
    torch.save(state, path)
    model = load_irse50(path, device="cpu")
    assert model.stand_in is False and "IR-SE50" in model.description and model.source == str(path)
    assert model.config == IRSEConfig.irse50()
    x = torch.rand(2, 3, 112, 112) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(model.net(x), irse50(x))


def test_strict_load_names_missing_unexpected_and_misshaped_keys(irse50):
    state = dict(irse50.state_dict())
    missing = dict(state)
    del missing["body.5.res_layer.5.fc1.weight"]
    with pytest.raises(CheckpointError, match=r"src\.pt: .*missing keys: body\.5\.res_layer\.5\.fc1\.weight"):
        irse_from_state_dict(missing, IRSEConfig.irse50(), source="src.pt")
    extra = dict(state, **{"body.24.res_layer.0.weight": torch.zeros(512)})
    with pytest.raises(CheckpointError, match=r"unexpected keys: body\.24\.res_layer\.0\.weight"):
        irse_from_state_dict(extra, IRSEConfig.irse50(), source="src.pt")
    bad = dict(state, **{"output_layer.3.weight": torch.zeros(512, 512 * 14 * 14)})  # the 224 px variant
    with pytest.raises(CheckpointError, match=r"output_layer\.3\.weight \[512, 100352\] != \[512, 25088\]"):
        irse_from_state_dict(bad, IRSEConfig.irse50(), source="src.pt")
    prefixed = {f"module.{k}": v for k, v in state.items()}  # saved from DataParallel: accepted
    assert isinstance(irse_from_state_dict(prefixed, IRSEConfig.irse50()), IRSE)


def test_missing_file_says_which_asset_and_where(tmp_path):
    path = tmp_path / "weights" / "arcface-irse50.pt"
    with pytest.raises(WeightsError) as err:
        load_irse50(path, device="cpu")
    msg = str(err.value)
    assert str(path) in msg and ASSET_PATH in msg and "download-weights" in msg and "model_ir_se50.pth" in msg


@pytest.mark.parametrize("content", [b"", b"not a checkpoint" * 10])
def test_unreadable_file_is_named(tmp_path, content):
    path = tmp_path / "broken.pt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match="broken.pt"):
        load_irse50(path, device="cpu")


def test_stand_in_file_round_trip_and_strictness(stand_in, tmp_path):
    path = write_stand_in_identity(tmp_path / "arcface-stand-in.pt", seed=0, width=16)
    loaded = load_irse50(path, device="cpu")
    assert loaded.stand_in is True and loaded.description == stand_in.description
    assert "STAND-IN" in loaded.description and loaded.config == stand_in.config
    x = _faces(2, 64, seed=3)
    with torch.no_grad():
        torch.testing.assert_close(loaded.embed(x), stand_in.embed(x), rtol=0, atol=0)

    ckpt = torch.load(path, weights_only=True)
    del ckpt["state_dict"]["body.0.res_layer.5.fc2.weight"]
    torch.save(ckpt, tmp_path / "cut.pt")
    with pytest.raises(CheckpointError, match=r"cut\.pt: .*missing keys: body\.0\.res_layer\.5\.fc2\.weight"):
        load_irse50(tmp_path / "cut.pt", device="cpu")
    ckpt = torch.load(path, weights_only=True)
    ckpt["stylegan_inversion_identity"]["config"]["units"] = [1, 1, 1, 1]  # config no longer fits the weights
    torch.save(ckpt, tmp_path / "wrong.pt")
    with pytest.raises(CheckpointError, match=r"wrong\.pt: .*unexpected keys: body\.4\."):
        load_irse50(tmp_path / "wrong.pt", device="cpu")


def test_stand_in_is_seeded(stand_in):
    again, other = make_stand_in_identity(seed=0), make_stand_in_identity(seed=1)
    a, b, c = (m.net.state_dict() for m in (stand_in, again, other))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["output_layer.3.weight"], c["output_layer.3.weight"])
    state = torch.random.get_rng_state()
    make_stand_in_identity(seed=5)
    assert torch.equal(state, torch.random.get_rng_state())  # the global RNG is left alone


def test_saved_real_model_stays_real(irse50, tmp_path):
    model = IdentityModel(irse50, stand_in=False, description="ArcFace IR-SE50 test copy")
    loaded = load_irse50(save_identity(model, tmp_path / "copy.pt"), device="cpu")
    assert loaded.stand_in is False and loaded.description == "ArcFace IR-SE50 test copy"


# ---------------------------------------------------------------- embed


@pytest.mark.parametrize("size", [32, 64, 256, 1024])
def test_embed_is_unit_length_and_differentiable(stand_in, size):
    target = _faces(2, size, seed=1)
    x = _faces(2, size, seed=2).requires_grad_(True)
    with torch.no_grad():
        t = stand_in.embed(target)
    e = stand_in.embed(x)
    assert e.shape == (2, 512)
    torch.testing.assert_close(e.norm(dim=1), torch.ones(2))
    loss = (1 - (e * t).sum(dim=1)).sum()
    loss.backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert x.grad.abs().sum() > 0
    assert all(p.grad is None for p in stand_in.parameters())  # frozen


def test_network_is_frozen_and_stays_in_eval(stand_in):
    assert all(not p.requires_grad for p in stand_in.parameters())
    stand_in.train()
    assert not stand_in.training and not any(m.training for m in stand_in.modules())
    before = stand_in.net.input_layer[1].running_mean.clone()
    stand_in.embed(_faces(4, 64, seed=9) * 0.5 + 0.3)
    assert torch.equal(before, stand_in.net.input_layer[1].running_mean)


def test_similarity_per_image(stand_in):
    a, b = _faces(3, 256, seed=4), _faces(3, 128, seed=5)
    with torch.no_grad():
        same = stand_in.similarity(a, a)
        diff = stand_in.similarity(a, b)
    assert same.shape == (3,) and torch.allclose(same, torch.ones(3), atol=1e-5)
    assert (diff < 0.99).all()  # the stand-in is random, but not degenerate
    with pytest.raises(ValueError, match="batch sizes differ"):
        stand_in.similarity(a, b[:2])
    with pytest.raises(ValueError, match="square"):
        stand_in.embed(torch.zeros(1, 3, 64, 32))


def test_projector_accepts_the_stand_in(stand_in, tmp_path):
    from stylegan_inversion.projector import ProjectorConfig, project
    from stylegan_inversion.stylegan2 import load_generator
    from tests.helpers import tiny_generator_file

    G = load_generator(tiny_generator_file(tmp_path / "g.pt", resolution=32), device="cpu")
    cfg = ProjectorConfig(steps=3, loss="id", n_mean_latent=64, log_every=0)
    res = project(G, _faces(1, 32, seed=6), cfg, id_model=stand_in, device=torch.device("cpu"))
    ids = [r["id"] for r in res.trace]
    assert all(0.0 <= v <= 2.0 for v in ids) and math.isfinite(res.final[0]["id"])


# ---------------------------------------------------------------- crop geometry


def test_crop_box_documented_coordinates():
    assert crop_box(256) == CROP_BOX_256 == (32, 35, 220, 223)
    assert crop_box(1024) == (128, 140, 880, 892)
    assert crop_box(64) == (8, 8.75, 55, 55.75)


@pytest.mark.parametrize("size", [256, 1024])
def test_crop_sees_exactly_the_box(size):
    left, top, right, bottom = (int(v) for v in crop_box(size))
    base = _faces(1, size, seed=7)
    ref = arcface_crop(base)
    assert ref.shape == (1, 3, 112, 112)

    def changed(y: int, x: int) -> bool:
        img = base.clone()
        img[:, :, y, x] += 0.5
        return not torch.equal(arcface_crop(img), ref)

    mid_y, mid_x = (top + bottom) // 2, (left + right) // 2
    assert changed(top, mid_x) and changed(bottom - 1, mid_x) and changed(mid_y, left) and changed(mid_y, right - 1)
    assert not changed(top - 1, mid_x) and not changed(bottom, mid_x)
    assert not changed(mid_y, left - 1) and not changed(mid_y, right)


def test_crop_maps_box_centre_to_output_centre():
    # a vertical ramp y/size through the crop: its mean is the box's vertical centre
    for size in (64, 256, 1024):
        ramp = ((torch.arange(size) + 0.5) / size).view(1, 1, size, 1).expand(1, 3, size, size)
        out = arcface_crop(ramp.contiguous())
        _, top, _, bottom = crop_box(size)
        assert abs(out.mean().item() - (top + bottom) / 2 / size) < 1e-3, size
        assert abs(out[0, 0, 0, 0].item() - top / size) < 0.02 and abs(out[0, 0, -1, 0].item() - bottom / size) < 0.02


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_embed_on_cuda_matches_cpu(stand_in):
    x = _faces(2, 256, seed=8)
    gpu = make_stand_in_identity(seed=0, device="cuda")
    assert gpu.device.type == "cuda"
    xg = x.cuda().requires_grad_(True)
    e = gpu.embed(xg)
    e.sum().backward()
    assert xg.grad is not None and torch.isfinite(xg.grad).all()
    with torch.no_grad():
        torch.testing.assert_close(e.detach().cpu(), stand_in.embed(x), rtol=1e-3, atol=1e-3)


# ---------------------------------------------------------------- dlib metric


def test_dlib_same_photo_jpeg_and_other_people(photos):
    astro = photos["astronaut"]
    assert dlib_identity_distance(astro, astro) < 1e-6
    assert dlib_identity_distance(astro, _jpeg(astro, 70)) < 0.3
    names = sorted(photos)
    for i, a in enumerate(names):
        assert dlib_identity_distance(photos[a], _jpeg(photos[a], 85)) < 0.3, a
        for b in names[i + 1:]:
            d = dlib_identity_distance(photos[a], photos[b])
            assert d > 0.5, (a, b, d)
    assert dlib_identity_distance(astro, photos["grace_hopper"]) > DLIB_SAME_PERSON_THRESHOLD


def test_dlib_detects_aligned_faces_and_falls_back_to_ffhq_box(photos):
    for name in ("astronaut", "grace_hopper"):
        det = dlib_face_descriptor(photos[name])
        assert det.box_source == "hog" and det.vector.shape == (128,), name
        fixed = dlib_face_descriptor(photos[name], detect=False)
        assert fixed.box_source == "ffhq_box" and fixed.box == (51, 72, 205, 225)
        assert np.linalg.norm(det.vector - fixed.vector) < 0.15, name  # the documented box is a usable face box


def test_dlib_sizes_and_modes(photos):
    astro = photos["astronaut"]
    big = astro.resize((1024, 1024), Image.Resampling.LANCZOS)
    small = astro.resize((64, 64), Image.Resampling.LANCZOS)
    assert dlib_identity_distance(astro, big) < 0.15
    assert dlib_identity_distance(astro, small) < DLIB_SAME_PERSON_THRESHOLD
    assert dlib_identity_distance(astro, astro.convert("L")) < 0.3
    rgba = astro.convert("RGBA")
    assert dlib_identity_distance(astro, rgba) < 1e-6
    sixteen = Image.fromarray((np.asarray(astro.convert("L"), dtype=np.uint16) * 257))
    assert sixteen.mode.startswith("I")
    assert dlib_identity_distance(astro.convert("L"), sixteen) < 1e-6


@pytest.mark.parametrize(
    "bad, reason",
    [
        (Image.new("RGB", (20, 20)), "below 32 px"),
        (Image.new("RGB", (256, 256), (120, 80, 60)), "uniform"),
        (np.zeros((64, 64, 3), np.uint8), "not a PIL image"),
    ],
)
def test_dlib_bad_image_gives_nan_with_reason(photos, bad, reason, caplog):
    with caplog.at_level(logging.WARNING, logger="stylegan_inversion.identity"):
        d = dlib_identity_distance(photos["astronaut"], bad)
    assert math.isnan(d)
    assert any(reason in r.getMessage() and "second image" in r.getMessage() for r in caplog.records)
