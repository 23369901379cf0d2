"""Metrics and confidence intervals against independent computations."""

import math

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from stylegan_inversion.metrics import psnr, ssim
from stylegan_inversion.stats import bootstrap_ci


def test_psnr_known_value():
    a = torch.zeros(1, 3, 8, 8)
    assert psnr(a, a + 0.1).item() == pytest.approx(10 * math.log10(4 / 0.01), rel=1e-5)
    assert psnr(a, a).item() > 100


def test_ssim_matches_skimage():
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (40, 40, 3))
    y = np.clip(x + rng.normal(0, 0.1, x.shape), 0, 1)
    ref = structural_similarity(x, y, channel_axis=2, data_range=1.0, gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
    to_t = lambda a: torch.from_numpy(a).permute(2, 0, 1)[None].float() * 2 - 1  # noqa: E731
    ours = ssim(to_t(x), to_t(y)).item()
    assert ours == pytest.approx(ref, abs=0.01)
    assert ssim(to_t(x), to_t(x)).item() == pytest.approx(1.0, abs=1e-6)


def test_bootstrap_ci_covers_the_mean_and_shrinks_with_n():
    rng = np.random.default_rng(1)
    small = rng.normal(1.0, 1.0, 10).tolist()
    large = rng.normal(1.0, 1.0, 400).tolist()
    m, lo, hi = bootstrap_ci(small, seed=0)
    assert lo < m < hi and m == pytest.approx(np.mean(small))
    _, lo2, hi2 = bootstrap_ci(large, seed=0)
    assert (hi2 - lo2) < (hi - lo) / 3
    assert bootstrap_ci(small, seed=0) == bootstrap_ci(small, seed=0)


def test_bootstrap_ci_edge_cases():
    assert all(math.isnan(v) for v in bootstrap_ci([]))
    assert bootstrap_ci([2.0]) == (2.0, 2.0, 2.0)
    assert bootstrap_ci([1.0, float("nan"), 3.0], seed=0)[0] == pytest.approx(2.0)
