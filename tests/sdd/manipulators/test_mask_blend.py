"""The mask-and-content manipulator: the identity at step zero at any size, edits where its
mask is and nowhere else, learns a geometric edit, and costs little at photo sizes."""

import pytest
import torch

from sdd.domains.shapes.render import coverage
from sdd.manipulators import BlendManipulator, build


@pytest.mark.parametrize("max_flow", [0.0, 4.0])
def test_is_the_identity_at_step_zero_at_any_size_and_aspect(max_flow):
    m = BlendManipulator(max_flow=max_flow)
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
    mask, change, _ = m.mask_and_change(torch.zeros(1, 3, 427, 640))
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


def test_change_smoothness_charges_a_change_that_varies_inside_a_flat_region():
    """A recolour that moves every pixel of the object alike costs nothing under the change
    prior (its only steps are on the source's outline); the same recolour with a blotch in
    the object's middle costs in proportion to the blotch's rim."""
    x = torch.full((1, 3, 32, 32), -1.0)
    x[..., 8:24, 8:24] = 1.0  # a white square on black
    m = BlendManipulator(sparsity=0.0, smoothness=0.0, edge_scale=0.1, change_smoothness=1.0)
    flat = torch.zeros(1, 3, 32, 32)
    flat[:, 1:, 8:24, 8:24] = -1.0  # white -> red, uniformly
    blotchy = flat.clone()
    blotchy[:, 0, 12:20, 12:20] = -0.5  # a darker core
    ones = torch.ones(1, 1, 32, 32)

    def cost(change):
        original = m.edit_maps
        m.edit_maps = lambda _: (ones, change, None)
        try:
            return float(m.forward_with_penalty(x)[1])
        finally:
            m.edit_maps = original

    assert cost(flat) < 1e-6
    assert cost(blotchy) > 1e-3
    assert BlendManipulator(change_smoothness=0.0).forward_with_penalty(x)[1].item() == 0.0
    with pytest.raises(ValueError, match="change_smoothness"):
        BlendManipulator(change_smoothness=-1)


def test_the_warp_head_moves_content_by_whole_pixels_at_any_size():
    """With max_flow the head's last two channels displace where each pixel samples the
    source (in working-size pixels, bounded by max_flow); the same field applies at a photo's
    own size, so a 1-px shift at the working size is a proportionate shift at full size."""
    m = BlendManipulator(max_flow=2.0, max_side=32)
    with torch.no_grad():
        m.head[-1].bias.copy_(torch.tensor([-30.0, 0.0, 0.0, 0.0, float(torch.atanh(torch.tensor(0.5))), 0.0]))
    x = torch.zeros(1, 3, 32, 32)
    x[..., 10:20, 10:20] = 1.0
    y = m(x)  # samples 1 px to the right: the square moves 1 px left
    assert torch.allclose(y[..., 10:20, 9:19], torch.ones(1, 3, 10, 10), atol=1e-5)
    assert torch.allclose(y[..., :, 19], torch.zeros(1, 3, 32), atol=1e-5)
    big = torch.zeros(1, 3, 64, 128)
    big[..., 20:40, 40:80] = 1.0
    y = m(big)  # working size 16x32: 1 working px = 4 px of a 128-wide image
    assert torch.allclose(y[..., 20:40, 36:76], torch.ones(1, 3, 20, 40), atol=1e-5)
    _, prior = m.forward_with_penalty(x)
    assert prior.item() == pytest.approx(0.0, abs=1e-6)  # a uniform shift is smooth: no cost
    with pytest.raises(ValueError, match="max_flow"):
        BlendManipulator(max_flow=-1)
