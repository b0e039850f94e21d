"""Image-space manipulator: a small fully convolutional residual network, y = clamp(x + r(x)).

The last layer starts at zero, so a fresh manipulator is the identity: training begins from
"change nothing" and the guidance has to earn every pixel it moves. Fully convolutional,
so it runs at any input size.
"""

from __future__ import annotations

import torch
from torch import nn

from .range import clamp_to_image


class ResidualBlock(nn.Module):
    def __init__(self, width: int, groups: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.GroupNorm(groups, width), nn.SiLU(), nn.Conv2d(width, width, 3, padding=1),
            nn.GroupNorm(groups, width), nn.SiLU(), nn.Conv2d(width, width, 3, padding=1),
        )

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.body(h)


class ImageManipulator(nn.Module):
    """Images in [-1, 1], [B, 3, H, W] -> edited images, same shape and range."""

    architecture = "image_residual"

    def __init__(self, width: int = 48, depth: int = 4, groups: int = 8, channels: int = 3):
        super().__init__()
        self.hparams = {"width": width, "depth": depth, "groups": groups, "channels": channels}
        self.conv_in = nn.Conv2d(channels, width, 3, padding=1)
        self.blocks = nn.Sequential(*[ResidualBlock(width, groups) for _ in range(depth)])
        self.conv_out = nn.Sequential(nn.GroupNorm(groups, width), nn.SiLU(), nn.Conv2d(width, channels, 3, padding=1))
        nn.init.zeros_(self.conv_out[-1].weight)
        nn.init.zeros_(self.conv_out[-1].bias)

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_out(self.blocks(self.conv_in(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return clamp_to_image(x + self.residual(x))
