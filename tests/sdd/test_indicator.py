"""Indicator scores and selection policies, on gradient maps with known answers."""

import math

import numpy as np
import pandas as pd
import pytest
import torch

from sdd import indicator


def one_hot_map(scale=1.0):
    g = torch.zeros(3, 8, 8)
    g[:, 2, 5] = scale
    return g


def test_entropy_is_zero_for_one_pixel_and_one_for_a_uniform_map():
    assert indicator.entropy(one_hot_map()).item() == pytest.approx(0.0, abs=1e-6)
    assert indicator.entropy(torch.ones(3, 8, 8)).item() == pytest.approx(1.0, abs=1e-6)
    assert indicator.entropy(torch.zeros(3, 8, 8)).item() == pytest.approx(1.0, abs=1e-6)


def test_reference_entropy_is_scale_dependent_and_ours_is_not():
    g = torch.randn(3, 16, 16).abs() ** 4
    small, large = g * 1e-4, g * 1e2
    # the pitfall: small gradients -> softmax ~uniform -> ~log(H*W) whatever the map
    assert indicator.reference_entropy(small).item() == pytest.approx(math.log(256), rel=1e-4)
    assert indicator.reference_entropy(large).item() < math.log(256) - 1
    assert indicator.entropy(small).item() == pytest.approx(indicator.entropy(large).item(), rel=1e-5)


def test_concentrated_guidance_scores_lower_than_diffuse():
    diffuse = torch.randn(3, 16, 16)
    focused = torch.zeros(3, 16, 16)
    focused[:, 4:8, 4:8] = torch.randn(3, 4, 4)
    assert indicator.entropy(focused) < indicator.entropy(diffuse)


def test_consistency_of_identical_and_independent_draws():
    g = torch.randn(3, 16, 16)
    assert indicator.consistency(torch.stack([g, g, g])).item() == pytest.approx(1.0, abs=1e-6)
    assert indicator.consistency(torch.stack([g, -g])).item() == pytest.approx(-1.0, abs=1e-6)
    independent = torch.randn(8, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    assert abs(indicator.consistency(independent).item()) < 0.02
    with pytest.raises(ValueError, match="two noise draws"):
        indicator.consistency(g[None])


def test_hybrid_is_scale_free_in_unit_range_and_prefers_focused_consistent_guidance():
    gen = torch.Generator().manual_seed(0)
    semantic = torch.zeros(4, 3, 16, 16)
    semantic[:, :, 4:8, 4:8] = 1.0
    semantic += 0.05 * torch.randn(semantic.shape, generator=gen)
    noisy = torch.randn(4, 3, 16, 16, generator=gen)
    h_sem, h_noise = indicator.hybrid(semantic).item(), indicator.hybrid(noisy).item()
    assert 0 <= h_sem < h_noise <= 1
    assert indicator.hybrid(semantic * 1e-5).item() == pytest.approx(h_sem, rel=1e-4)


def test_score_all_shapes():
    grads = torch.randn(2, 5, 4, 3, 8, 8)  # draws, images, timesteps, C, H, W
    scores = indicator.score_all(grads)
    assert set(scores) == {"reference_entropy", "entropy", "consistency", "hybrid", "grad_norm"}
    assert all(v.shape == (5, 4) for v in scores.values())


@pytest.fixture
def table():
    rows = []
    for t, s in [(100, 0.5), (200, 0.2), (300, 0.1), (400, 0.3), (500, 0.9)]:
        rows += [{"t": t, "image_id": i, "hybrid": s + 0.01 * i} for i in range(3)]
    return pd.DataFrame(rows)


def test_selection_policies(table):
    assert [t for t, _ in indicator.select(table, "hybrid", "argmin")] == [300]
    assert [t for t, _ in indicator.select(table, "hybrid", "below:0.32")] == [200, 300, 400]
    assert [t for t, _ in indicator.select(table, "hybrid", "topk:2")] == [200, 300]
    # nothing under the threshold: fall back to the best one rather than select nothing
    assert [t for t, _ in indicator.select(table, "hybrid", "below:0.01")] == [300]
    (t, score), = indicator.select(table, "hybrid", "argmin")
    assert score == pytest.approx(0.11)


def test_window_policy_takes_neighbours_not_an_outlier():
    # the shape of a noisy curve: best at 300, and 700 lower than 300's neighbours by noise
    curve = {100: 0.6, 200: 0.52, 300: 0.50, 400: 0.53, 500: 0.6, 600: 0.6, 700: 0.51, 800: 0.7}
    table = pd.DataFrame([{"t": t, "image_id": 0, "hybrid": s} for t, s in curve.items()])
    assert [t for t, _ in indicator.select(table, "hybrid", "topk:2")] == [300, 700]
    assert [t for t, _ in indicator.select(table, "hybrid", "window:2")] == [200, 300]
    assert [t for t, _ in indicator.select(table, "hybrid", "window:3")] == [200, 300, 400]
    # a window wider than the sweep is the whole sweep
    assert len(indicator.select(table, "hybrid", "window:20")) == len(curve)


@pytest.mark.parametrize("policy", ["max", "below:x", "topk:0", "topk:1.5", "window:0"])
def test_bad_policies_are_clear_errors(table, policy):
    with pytest.raises(ValueError, match="policy"):
        indicator.select(table, "hybrid", policy)


def test_spearman():
    assert indicator.spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert indicator.spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert np.isnan(indicator.spearman([1, 1, 1], [1, 2, 3]))
