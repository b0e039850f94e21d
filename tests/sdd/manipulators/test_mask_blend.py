"""The mask-and-content manipulator: the identity at step zero at any size, edits where its
mask is and nowhere else, learns a geometric edit, and costs little at photo sizes."""

import pytest
import torch

from sdd.domains.shapes.render import coverage
from sdd.manipulators import BlendManipulator, build


def test_is_the_identity_at_step_zero_at_any_size_and_aspect():
    m = BlendManipulator()
    for h, w in [(32, 32), (17, 45), (427, 640), (300, 451)]:
        x = torch.rand(1, 3, h, w) * 2 - 1
        y, prior = m.forward_with_penalty(x)
        assert y.shape == x.shape and torch.equal(y, x)
        assert torch.equal(prior, torch.zeros(1))


def test_runs_at_most_max_side_pixels_and_pads_to_whole_grids_without_stretching():
    m = BlendManipulator(max_side=128, levels=3)
    assert m.working_size(32, 32) == (32, 32)
    assert m.working_size(512, 512) == (128, 128)
    assert m.working_size(427, 640) == (88, 128)  # 85.4 rows -> 85, padded to a multiple of 8
    assert m.working_size(17, 45) == (24, 48)
    mask, change = m.mask_and_change(torch.zeros(1, 3, 427, 640))
    assert mask.shape[-2:] == (85, 128) and change.shape[-2:] == (85, 128)


def test_a_zero_mask_passes_every_source_pixel_through_at_full_resolution():
    m = BlendManipulator()
    with torch.no_grad():
        m.head[-1].bias.copy_(torch.tensor([-30.0, 0.5, -0.5, 0.2]))  # mask ~0, a large change
    x = torch.rand(2, 3, 300, 451) * 2 - 1
    assert (m(x) - x).abs().max() < 1e-6
    with torch.no_grad():
        m.head[-1].bias[0] = 30.0  # mask 1: the change everywhere
    assert torch.allclose(m(x), (x + torch.tensor([0.5, -0.5, 0.2]).view(1, 3, 1, 1)).clamp(-1, 1), atol=1e-5)


def test_learns_to_grow_an_object_with_the_object_colour():
    """A geometric edit: every small disc becomes a large one at the same centre, in its own
    colour, on its own background. The receptive field must reach across the ring."""
    torch.manual_seed(0)
    n = 16
    g = torch.Generator().manual_seed(1)
    cx, cy = 10 + 12 * torch.rand(n, generator=g), 10 + 12 * torch.rand(n, generator=g)
    colours = torch.rand(n, 3, generator=g) * 2 - 1
    backgrounds = -colours * 0.8

    def render(radius):
        mask = torch.from_numpy(coverage(torch.zeros(n, dtype=torch.long).numpy(), cx.numpy(), cy.numpy(),
                                         torch.full((n,), radius).numpy()))[:, None]
        return mask * colours[..., None, None] + (1 - mask) * backgrounds[..., None, None]

    small, large = render(4.0), render(8.0)
    m = BlendManipulator(width=16, sparsity=0.0, smoothness=0.0)
    opt = torch.optim.Adam(m.parameters(), lr=3e-3)
    before = (m(small) - large).abs().mean()
    for _ in range(150):
        loss = (m(small) - large).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert (m(small) - large).abs().mean() < 0.35 * before


def test_the_mask_prior_charges_only_where_the_content_changes():
    m = BlendManipulator(sparsity=1.0, smoothness=0.0)
    with torch.no_grad():
        m.head[-1].bias.copy_(torch.tensor([0.0, 0.0, 0.0, 0.0]))
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    assert torch.equal(m.forward_with_penalty(x)[1], torch.zeros(2))  # no change: no cost, whatever the mask
    with torch.no_grad():
        m.head[-1].bias[1] = 1.0
    assert torch.allclose(m.forward_with_penalty(x)[1], torch.full((2,), 0.5), atol=1e-4)  # mask 0.5 x change 1


def test_builds_from_a_manifest_and_rejects_unknown_options():
    m = build("mask_blend", **BlendManipulator(width=16).hparams)
    assert isinstance(m, BlendManipulator) and m.hparams["width"] == 16
    with pytest.raises(TypeError):
        build("mask_blend", depth=3)


def test_edge_aware_smoothness_lets_the_mask_switch_where_the_source_does():
    """A mask that follows the source's outline costs almost nothing with edge_scale > 0, and
    the same mask across a flat region costs what plain total variation charges."""
    x = torch.full((1, 3, 32, 32), -1.0)
    x[..., 8:24, 8:24] = 1.0  # a white square on black
    inside = torch.zeros(1, 1, 32, 32)
    inside[..., 8:24, 8:24] = 1.0

    def tv(m, mask):
        wv, wh = m.edge_weights(x)
        return float((wv * (mask[..., 1:, :] - mask[..., :-1, :]).abs()).sum()
                     + (wh * (mask[..., :, 1:] - mask[..., :, :-1]).abs()).sum())

    plain, aware = BlendManipulator(edge_scale=0.0), BlendManipulator(edge_scale=0.1)
    assert tv(plain, inside) == pytest.approx(64)  # the square's perimeter
    assert tv(aware, inside) < 1e-6 * 64
    shifted = torch.roll(inside, 4, dims=-1)  # off the outline: its steps fall in flat regions
    assert tv(aware, shifted) > 0.4 * tv(plain, shifted)
    with pytest.raises(ValueError, match="edge_scale"):
        BlendManipulator(edge_scale=-1)
