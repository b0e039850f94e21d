"""Affine-colour manipulator: every pixel gets its own 3x4 colour transform, predicted from
context, y = clamp((I + A(x)) x + b(x)).

Why: recolour-like attributes change appearance, not structure. Because the output at a
pixel is an affine function of that pixel's own colour, edges and anti-aliasing carry over
from the source by construction (a pixel mixing object and background colours maps to the
same mixture of their images), so the network cannot blur a small shape, and one transform
that fixes the background colour and moves the object colour edits without a halo. The
transform is predicted by the same residual trunk as ``ImageManipulator``; its head starts
at zero, so a fresh manipulator is the identity.
"""

from __future__ import annotations

import torch
from torch import nn

from .range import clamp_to_image

from .image import ResidualBlock


class AffineColorManipulator(nn.Module):
    """Images in [-1, 1], [B, C, H, W] -> edited images; any size."""

    architecture = "image_affine"

    def __init__(self, width: int = 48, depth: int = 4, groups: int = 8, channels: int = 3):
        super().__init__()
        self.hparams = {"width": width, "depth": depth, "groups": groups, "channels": channels}
        self.channels = channels
        self.conv_in = nn.Conv2d(channels, width, 3, padding=1)
        self.blocks = nn.Sequential(*[ResidualBlock(width, groups) for _ in range(depth)])
        self.head = nn.Sequential(
            nn.GroupNorm(groups, width), nn.SiLU(), nn.Conv2d(width, channels * (channels + 1), 3, padding=1)
        )
        nn.init.zeros_(self.head[-1].weight)
        nn.init.zeros_(self.head[-1].bias)

    def transform(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-pixel (A, b): A [B, C, C, H, W] (added to the identity), b [B, C, H, W]."""
        params = self.head(self.blocks(self.conv_in(x)))
        c = self.channels
        a = params[:, : c * c].view(x.shape[0], c, c, *x.shape[2:])
        return a, params[:, c * c :]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.transform(x)
        return clamp_to_image(x + torch.einsum("bijhw,bjhw->bihw", a, x) + b)
