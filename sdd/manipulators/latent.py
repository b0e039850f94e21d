"""Latent mapper: edits a generator's latent code instead of pixels (the reference's setting).

A W+-style latent ``[B, L, D]`` is split into coarse / medium / fine levels; each enabled
level gets its own small MLP producing a residual, disabled levels pass through unchanged.
The edited image is ``generator(w + mapper(w))``. Like the image manipulator, a fresh mapper
is the identity (zero-initialised last layers).
"""

from __future__ import annotations

from typing import Protocol

import torch
from torch import nn


class Generator(Protocol):
    """What a latent mapper needs of an image generator: latent [B, L, D] -> image in [-1, 1]."""

    num_latents: int
    latent_dim: int

    def __call__(self, latents: torch.Tensor) -> torch.Tensor: ...


class LevelMLP(nn.Module):
    def __init__(self, dim: int, layers: int):
        super().__init__()
        mods: list[nn.Module] = [nn.LayerNorm(dim)]
        for _ in range(layers - 1):
            mods += [nn.Linear(dim, dim), nn.LeakyReLU(0.2)]
        last = nn.Linear(dim, dim)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        self.net = nn.Sequential(*mods, last)

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return self.net(w)


class LatentMapper(nn.Module):
    """[B, L, D] -> [B, L, D]: ``w + residual`` on the enabled levels, ``w`` elsewhere."""

    architecture = "latent_levels"

    def __init__(
        self, num_latents: int, latent_dim: int, *, coarse: bool = True, medium: bool = True, fine: bool = True,
        coarse_medium_split: int | None = None, medium_fine_split: int | None = None, layers: int = 4,
    ):
        super().__init__()
        a = coarse_medium_split if coarse_medium_split is not None else num_latents // 3
        b = medium_fine_split if medium_fine_split is not None else 2 * num_latents // 3
        if not 0 <= a <= b <= num_latents:
            raise ValueError(f"level splits must satisfy 0 <= {a} <= {b} <= {num_latents}")
        self.hparams = {
            "num_latents": num_latents, "latent_dim": latent_dim, "coarse": coarse, "medium": medium,
            "fine": fine, "coarse_medium_split": a, "medium_fine_split": b, "layers": layers,
        }
        self.levels = {"coarse": (0, a), "medium": (a, b), "fine": (b, num_latents)}
        self.mappers = nn.ModuleDict(
            {name: LevelMLP(latent_dim, layers) for name, on in
             (("coarse", coarse), ("medium", medium), ("fine", fine)) if on}
        )

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        parts = []
        for name, (lo, hi) in self.levels.items():
            level = w[:, lo:hi]
            parts.append(level + self.mappers[name](level) if name in self.mappers and hi > lo else level)
        return torch.cat(parts, dim=1)


class LatentEditor(nn.Module):
    """Mapper + frozen generator as one editor: latents -> edited images."""

    def __init__(self, mapper: LatentMapper, generator: Generator):
        super().__init__()
        self.mapper = mapper
        self.generator = generator

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return self.generator(self.mapper(w))
