"""Manipulators start as the identity, run at any size, and stay small."""

import pytest
import torch

from sdd.manipulators import ImageManipulator, LatentEditor, LatentMapper, build


def test_image_manipulator_is_the_identity_at_step_zero_at_any_size():
    m = ImageManipulator()
    for h, w in [(32, 32), (17, 45), (64, 64)]:
        x = torch.rand(2, 3, h, w) * 2 - 1
        assert torch.equal(m(x), x)


def test_image_manipulator_default_is_under_half_a_million_parameters():
    assert sum(p.numel() for p in ImageManipulator().parameters()) < 500_000


def test_image_manipulator_learns_and_clamps():
    m = ImageManipulator(width=16, depth=1)
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    x = torch.rand(4, 3, 8, 8) * 2 - 1
    for _ in range(30):
        loss = (m(x) - 1.0).pow(2).mean()  # push every pixel to white
        opt.zero_grad()
        loss.backward()
        opt.step()
    y = m(x)
    assert y.max() <= 1 and (y - 1).abs().mean() < (x - 1).abs().mean()


class TinyGenerator(torch.nn.Module):
    """A stand-in generator for tests: L latents of D dims -> an 8x8 image, each level of
    latents driving its own output channel."""

    num_latents, latent_dim = 6, 16

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.proj = torch.nn.Linear(self.latent_dim, 64)

    def forward(self, w):
        per_latent = self.proj(w).view(w.shape[0], self.num_latents, 8, 8)
        return torch.tanh(torch.stack([per_latent[:, 0:2].mean(1), per_latent[:, 2:4].mean(1), per_latent[:, 4:6].mean(1)], 1))


def test_latent_mapper_is_identity_at_init_and_respects_level_switches():
    gen = TinyGenerator()
    w = torch.randn(3, 6, 16)
    mapper = LatentMapper(6, 16, coarse=False, medium=True, fine=True)
    assert torch.equal(mapper(w), w)
    editor = LatentEditor(mapper, gen)
    opt = torch.optim.Adam(mapper.parameters(), lr=1e-2)
    for _ in range(20):
        loss = -editor(w).mean()  # brighten
        opt.zero_grad()
        loss.backward()
        opt.step()
    out = mapper(w)
    assert torch.equal(out[:, :2], w[:, :2])  # coarse off: untouched
    assert not torch.allclose(out[:, 2:], w[:, 2:])
    assert editor(w)[:, 0].equal(gen(w)[:, 0])  # the channel driven by coarse latents is unchanged


def test_build_from_manifest_fields():
    m = build("image_residual", width=16, depth=2, groups=8, channels=3)
    assert isinstance(m, ImageManipulator) and m.hparams["width"] == 16
    with pytest.raises(ValueError, match="unknown manipulator architecture"):
        build("gan", width=3)
    with pytest.raises(ValueError, match="level splits"):
        LatentMapper(4, 8, coarse_medium_split=3, medium_fine_split=2)


def test_affine_manipulator_is_identity_at_init_and_keeps_mixtures():
    from sdd.manipulators import AffineColorManipulator

    m = AffineColorManipulator(width=16, depth=1)
    x = torch.rand(2, 3, 19, 23) * 2 - 1
    assert torch.allclose(m(x), x)
    # an affine colour map sends a 50/50 mix of two colours to the 50/50 mix of their images
    with torch.no_grad():
        m.head[-1].bias.copy_(torch.tensor([0.2, -0.1, 0.1, 0.0, 0.1, 0.0, 0.1, 0.0, -0.2, 0.1, 0.0, -0.1]))
    obj, bg = torch.tensor([0.5, -0.5, -0.5]), torch.tensor([0.1, 0.2, 0.0])
    img = torch.stack([obj, bg, (obj + bg) / 2]).T.reshape(1, 3, 1, 3)
    out = m(img)[0, :, 0]
    assert torch.allclose(out[:, 2], (out[:, 0] + out[:, 1]) / 2, atol=1e-6)
    assert sum(p.numel() for p in AffineColorManipulator().parameters()) < 500_000


def test_color_grid_is_identity_at_init_at_any_size():
    from sdd.manipulators import ColorGridManipulator

    for grid in (1, 3):
        m = ColorGridManipulator(width=16, depth=2, grid=grid)
        x = torch.rand(2, 3, 17, 29) * 2 - 1
        assert torch.allclose(m(x), x)
    assert sum(p.numel() for p in ColorGridManipulator().parameters()) < 500_000


def test_color_grid_one_cell_applies_one_transform_to_the_whole_image():
    """grid=1: equal source colours map to equal outputs wherever they are, so an edited
    shape keeps its edges and the background stays uniform (no halo can form)."""
    from sdd.manipulators import ColorGridManipulator

    torch.manual_seed(0)
    m = ColorGridManipulator(width=16, depth=2, grid=1)
    torch.nn.init.normal_(m.head[-1].weight, std=0.1)
    x = torch.full((1, 3, 16, 16), -0.4)
    x[:, 0, 4:9, 5:11] = 0.8  # an object on a flat background
    y = m(x)
    assert not torch.allclose(y, x)
    background = y[0][:, x[0, 0] < 0]
    assert torch.allclose(background, background[:, :1].expand_as(background), atol=1e-6)
    obj = y[0][:, x[0, 0] > 0]
    assert torch.allclose(obj, obj[:, :1].expand_as(obj), atol=1e-6)


@pytest.mark.parametrize("architecture, steps", [("color_grid", 400), ("salient_recolour", 200)])
def test_grid_manipulators_start_as_the_identity_and_learn_a_recolour(architecture, steps):
    """A green square on grey -> red: one affine map (color_grid) or one colour offset
    (salient_recolour) fits both colours exactly."""
    from sdd.manipulators import build

    torch.manual_seed(0)
    m = build(architecture, width=16, depth=2)
    x = torch.full((4, 3, 12, 12), 0.0)
    x[:, 1, 3:8, 3:8] = 0.9  # green squares on grey
    assert torch.equal(m(x), x)
    target = x.clone()
    target[:, :, 3:8, 3:8] = torch.tensor([0.9, -0.8, -0.8]).view(1, 3, 1, 1)  # -> red
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    start = torch.nn.functional.mse_loss(m(x), target).item()
    for _ in range(steps):
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(m(x), target)
        loss.backward()
        opt.step()
    assert loss.item() < 1e-3 * start
    if architecture == "salient_recolour":
        assert torch.equal(m(x)[:, :, 0, 0], x[:, :, 0, 0])  # its background never moves at all


def test_color_grid_median_pivot_holds_each_cells_dominant_colour_under_any_transform():
    """pivot="median": whatever A the network predicts, the colour covering most of a cell
    maps to itself while b = 0, so only the object's colour can move."""
    from sdd.manipulators import ColorGridManipulator

    torch.manual_seed(0)
    for grid in (1, 2):
        m = ColorGridManipulator(width=16, depth=2, grid=grid, pivot="median")
        head = m.head[-1]
        with torch.no_grad():  # A (the first 9 outputs): random; b (the last 3): zero
            head.weight[:9].normal_(std=0.3)
            head.bias[:9].normal_(std=0.3)
        x = torch.empty(2, 3, 16, 16)
        x[:] = torch.tensor([-0.2, 0.1, -0.5]).view(1, 3, 1, 1)
        x[:, :, 5:9, 6:10] = torch.tensor([0.9, -0.8, 0.7]).view(1, 3, 1, 1)  # an object inside every cell's minority
        y = m(x)
        background = torch.ones(16, 16, dtype=torch.bool)
        background[5:9, 6:10] = False
        assert torch.allclose(y[:, :, background], x[:, :, background], atol=1e-6), grid
        assert not torch.allclose(y[:, :, ~background], x[:, :, ~background]), grid
    assert ColorGridManipulator().hparams["pivot"] == "zero"  # artifacts saved before pivots load unchanged
    with pytest.raises(ValueError, match="pivot"):
        ColorGridManipulator(pivot="mean")


def test_color_grid_without_bias_cannot_move_the_dominant_colour_whatever_the_network_predicts():
    """pivot="median", bias=False: every output of the head randomised, yet the background is
    unchanged to the bit and the object still moves; with the bias, the same randomised head
    moves the background (the check is not vacuous). The head has no bias outputs to save."""
    from sdd.manipulators import ColorGridManipulator, build

    def randomised(bias: bool) -> ColorGridManipulator:
        torch.manual_seed(0)
        m = ColorGridManipulator(width=16, depth=2, pivot="median", bias=bias)
        with torch.no_grad():
            m.head[-1].weight.normal_(std=0.3)
            m.head[-1].bias.normal_(std=0.3)
        return m

    x = torch.empty(3, 3, 16, 16)
    x[:] = torch.tensor([0.6, 0.5, 0.1]).view(1, 3, 1, 1)  # a beige background
    x[:, :, 3:10, 4:12] = torch.tensor([-0.7, -0.6, 0.8]).view(1, 3, 1, 1)
    background = torch.ones(16, 16, dtype=torch.bool)
    background[3:10, 4:12] = False
    y = randomised(bias=False)(x)
    assert torch.equal(y[:, :, background], x[:, :, background])
    assert (y[:, :, ~background] - x[:, :, ~background]).abs().max() > 0.05
    assert not torch.allclose(randomised(bias=True)(x)[:, :, background], x[:, :, background], atol=1e-3)

    m = randomised(bias=False)
    assert m.head[-1].out_channels == 9
    rebuilt = build("color_grid", **m.hparams)
    rebuilt.load_state_dict(m.state_dict())
    assert torch.equal(rebuilt(x), y)
    assert ColorGridManipulator().hparams["bias"] is True  # artifacts saved before the option load unchanged


def test_colour_statistics_name_the_dominant_and_the_salient_colour_of_each_cell():
    """The head's colour inputs (colour_stats=True): per cell the median is the background,
    the salient colour is the object's whatever its size, and a flat cell's salient colour
    is its own colour (no division by zero)."""
    from sdd.manipulators import ColorGridManipulator
    from sdd.manipulators.color_grid import colour_statistics

    background, obj = torch.tensor([0.6, 0.5, 0.1]), torch.tensor([-0.7, -0.6, 0.8])
    x = background.view(1, 3, 1, 1).repeat(1, 1, 16, 16)
    x[:, :, 2:5, 2:6] = obj.view(1, 3, 1, 1)  # a small object in the top-left cell of a 2x2 grid
    stats = colour_statistics(x, 2)
    assert stats.shape == (1, 9, 2, 2)
    median, mean, salient = stats[0, :3], stats[0, 3:6], stats[0, 6:]
    assert torch.allclose(median[:, 0, 0], background) and torch.allclose(salient[:, 0, 0], obj, atol=1e-5)
    assert not torch.allclose(mean[:, 0, 0], obj, atol=0.1)  # the mean alone would drown the object
    assert torch.allclose(salient[:, 1, 1], background, atol=1e-5)  # a flat cell

    m = ColorGridManipulator(width=16, depth=2, colour_stats=True, pivot="median", bias=False)
    assert torch.equal(m(x), x)  # still the identity at step 0


def test_salient_recolour_repaints_the_object_through_its_own_coverage_and_nothing_else():
    """Whatever offset the head predicts, the edit of a rendered shapes image is the same
    composite as the source (same coverage mask, same background) with a new object colour:
    the outline, the anti-aliased edge and the background carry over exactly."""
    import numpy as np

    from sdd.domains.shapes.render import composite, generate, region_colours
    from sdd.io.images import from_tensor_range, to_tensor_range
    from sdd.manipulators import SalientRecolourManipulator, build

    torch.manual_seed(0)
    m = SalientRecolourManipulator(width=16, depth=2)
    with torch.no_grad():
        m.head[-1].weight.normal_(std=0.2)
        m.head[-1].bias.normal_(std=0.5)
    batch = generate(16, seed=3)
    x = to_tensor_range(batch.images)
    with torch.no_grad():
        share, d = m.offset(x)
        y = m(x)
    edited = from_tensor_range(y)
    d_rgb = d[:, :, 0, 0].numpy() * 127.5  # one offset per image (grid=1, clamped to the range), 0..255 units
    background = batch.masks == 0
    source_object = region_colours(batch.images, batch.masks > 0.999)
    source_background = region_colours(batch.images, background)
    expected = composite(batch.masks, np.clip(source_object + d_rgb, 0, 255), source_background)
    assert np.array_equal(edited[background], batch.images[background])  # to the bit
    assert np.abs(edited.astype(int) - expected.astype(int)).max() <= 2  # uint8 rounding twice
    assert np.abs(edited.astype(int) - batch.images.astype(int))[batch.masks > 0.99].mean() > 10  # it did recolour
    rebuilt = build("salient_recolour", **m.hparams)
    rebuilt.load_state_dict(m.state_dict())
    assert torch.equal(rebuilt(x), y)


def test_grid_statistics_use_the_same_cells_as_the_edit_when_the_size_is_not_a_multiple():
    """10 px in 3 cells: rows 0-3, 4-6, 7-9 for the medians and for spreading the grid back;
    every statistic must be pooled over those rows too, not adaptive pooling's 0-3, 3-6, 6-9."""
    from sdd.manipulators.color_grid import cell_pool
    from sdd.manipulators.salient import salient_share

    x = torch.full((1, 3, 10, 10), -0.8)
    x[:, 0, 3, :] = 1.0          # a bright red bar on row 3: the last row of the top cells
    x[:, 2, 4:6, 2:5] = -0.2     # a faint blue object in the middle-left cell
    assert torch.allclose(cell_pool(x, 3)[0, 0, :, 0], torch.tensor([(1.0 - 2.4) / 4, -0.8, -0.8]))
    share, _, _ = salient_share(x, 3)
    # each cell's own object has share exactly 1 and nothing exceeds it: the bar in the
    # cell above does not set the faint object's scale
    assert share[0, 0, 4:6, 2:5].eq(1).all() and share.max() <= 1
    assert share[0, 0, 3, :].eq(1).all()


def test_clamp_to_image_lets_a_saturated_output_come_back_but_never_run_off():
    from sdd.manipulators.range import clamp_to_image

    # forward: exactly the clamp, however far out (the straight-through form returned 0 at 1e8)
    y = torch.tensor([-3e8, -2.0, -0.5, 0.5, 2.0, 3e8])
    assert torch.equal(clamp_to_image(y), y.clamp(-1, 1))

    # a guidance that always wants more: the pre-clamp value stops at the edge of the range
    p = torch.tensor([0.0], requires_grad=True)
    opt = torch.optim.SGD([p], lr=0.5)
    for _ in range(20):
        opt.zero_grad()
        (-clamp_to_image(p)).sum().backward()
        opt.step()
    assert 1.0 <= p.item() <= 1.5

    # a pull back towards 0.5 from far outside still reaches the output
    q = torch.tensor([3.0], requires_grad=True)
    opt = torch.optim.SGD([q], lr=0.1)
    for _ in range(40):
        opt.zero_grad()
        (clamp_to_image(q) - 0.5).abs().sum().backward()
        opt.step()
    assert abs(q.item() - 0.5) < 0.15
