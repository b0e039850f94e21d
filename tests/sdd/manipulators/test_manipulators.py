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
