"""Projection: the StyleGAN2 projector's schedule and regularisers, and that it really inverts."""

import math

import pytest
import torch

from helpers import tiny_generator_file
from stylegan_inversion.losses import load_lpips, noise_regularizer, normalize_noises_
from stylegan_inversion.projector import ProjectorConfig, lr_schedule, project
from stylegan_inversion.stylegan2 import load_generator


@pytest.fixture(scope="module")
def G(tmp_path_factory):
    return load_generator(tiny_generator_file(tmp_path_factory.mktemp("g") / "g.pt", resolution=16), device="cpu")


def test_lr_schedule_shape():
    lr = 0.1
    assert lr_schedule(0.0, lr, 0.25, 0.05) == 0.0
    assert lr_schedule(0.5, lr, 0.25, 0.05) == pytest.approx(lr)
    assert lr_schedule(0.9, lr, 0.25, 0.05) < lr_schedule(0.8, lr, 0.25, 0.05) < lr
    assert lr_schedule(0.999, lr, 0.25, 0.05) < 1e-4
    assert lr_schedule(0.025, lr, 0.25, 0.05) == pytest.approx(lr / 2)


def test_noise_regularizer_penalises_structure():
    g = torch.Generator().manual_seed(0)
    white = [torch.randn(1, 1, 32, 32, generator=g)]
    smooth = [torch.nn.functional.interpolate(torch.randn(1, 1, 4, 4, generator=g), size=32, mode="bilinear")]
    normalize_noises_(smooth)
    assert noise_regularizer(smooth).item() > 50 * noise_regularizer(white).item()
    # per image: a batch of two gives each image its own value
    both = [torch.cat([white[0], smooth[0]])]
    r = noise_regularizer(both)
    assert r.shape == (2,) and r[1] > r[0]


def test_normalize_noises_standardises_each_image():
    n = [torch.randn(3, 1, 8, 8) * 5 + 2]
    normalize_noises_(n)
    assert torch.allclose(n[0].mean(dim=(1, 2, 3)), torch.zeros(3), atol=1e-5)
    assert torch.allclose(n[0].std(dim=(1, 2, 3)), torch.ones(3), atol=1e-4)


def _target(G, seed=5):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        w = G.mapping(torch.randn(1, G.z_dim, generator=g), truncation=0.5)
        return G.synthesis(w.unsqueeze(1).expand(-1, G.num_ws, -1), noise=G.make_noise(1, seed=seed)), w


@pytest.mark.parametrize("latent", ["w", "wplus"])
def test_projection_fits_an_in_domain_target(G, latent):
    target, _ = _target(G)
    cfg = ProjectorConfig(steps=60, loss="mse", latent=latent, n_mean_latent=500, lpips_size=16, log_every=0)
    res = project(G, target, cfg)
    start = torch.nn.functional.mse_loss(G.synthesis(G.mean_w().view(1, -1)), target).item()
    assert res.final[0]["mse"] < 0.5 * start
    assert len(res.trace) == 60 and res.ws.shape == (1, G.num_ws, G.w_dim)
    if latent == "w":
        assert torch.equal(res.ws[0, 0], res.ws[0, -1])
    else:
        assert not torch.equal(res.ws[0, 0], res.ws[0, -1])
    # the returned image is the synthesis of the returned latents and noise
    assert torch.allclose(G.synthesis(res.ws, noise=res.noises), res.images, atol=1e-5)


def test_projection_is_deterministic_and_leaves_generator_frozen(G):
    target, _ = _target(G, seed=9)
    cfg = ProjectorConfig(steps=5, loss="mse", n_mean_latent=200, lpips_size=16, log_every=0)
    before = {k: v.clone() for k, v in G.state_dict().items()}
    a = project(G, target, cfg)
    b = project(G, target, cfg)
    assert torch.equal(a.ws, b.ws)
    assert all(torch.equal(before[k], v) for k, v in G.state_dict().items())
    assert not any(p.requires_grad for p in G.parameters())


def test_lpips_loss_path_with_random_backbone(G):
    lp = load_lpips("alex", "random", seed=0)
    lp2 = load_lpips("alex", "random", seed=0)
    x = torch.rand(1, 3, 16, 16) * 2 - 1
    y = torch.rand(1, 3, 16, 16) * 2 - 1
    from stylegan_inversion.losses import lpips_distance

    d = lpips_distance(lp, x, y).item()
    assert d == pytest.approx(lpips_distance(lp2, x, y).item())  # seeded backbone: reproducible
    assert d > 0 and lpips_distance(lp, x, x).item() == pytest.approx(0.0, abs=1e-6)
    target, _ = _target(G, seed=2)
    res = project(G, target, ProjectorConfig(steps=3, loss="lpips+mse", n_mean_latent=100, lpips_size=16, log_every=0), lpips_model=lp)
    assert set(res.final[0]) == {"lpips", "mse"} and all(math.isfinite(v) for v in res.final[0].values())


def test_loss_needs_its_network(G):
    target, _ = _target(G)
    with pytest.raises(ValueError, match="LPIPS"):
        project(G, target, ProjectorConfig(steps=1, loss="lpips"))
    with pytest.raises(ValueError, match="identity"):
        project(G, target, ProjectorConfig(steps=1, loss="id"))
    with pytest.raises(ValueError):
        ProjectorConfig(loss="l1")


def test_pretrained_lpips_missing_weights_says_what_to_do(tmp_path, monkeypatch):
    from stylegan_inversion.losses import LossSetupError

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(LossSetupError, match="vgg16-397923af.pth"):
        load_lpips("vgg", "pretrained")
