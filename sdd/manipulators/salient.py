"""Salient-recolour manipulator: move whatever stands out from each cell's dominant colour to
a new colour, and nothing else.

Per cell (``grid=1``: the whole image) let m be the median colour (the dominant one: the
background of an object edit) and s the salient colour (the mean weighted by distance from
m: the object's). Each pixel's share w of the object is its projection on s - m over the
cell's largest: 1 on the object, 0 on the background, the coverage fraction on an
anti-aliased edge. The network predicts one colour offset d per cell, clamped so that the
object's new colour is in range, and the edit is

    y = x + w * d

so an edge pixel that mixed object and background in proportion a mixes the new colour and
the background in the same proportion: outline, size and background carry over by
construction, and the only thing the guidance can change is the object's colour.

Why this rather than ``color_grid``'s affine map: a recolour needs d = target - s, a function
of one colour, where an affine map needs a transform that depends on both the object's and
the background's colour (a red object on beige and a blue one want different maps). A
network that amortises it over images learns the affine version only approximately and
sends some combinations the wrong way; the offset is the target colour minus a colour the
head is given (s is one of its inputs). Every object pixel's guidance adds into the same
three numbers, which averages away the noise of score-distillation gradients.

Assumes one salient colour per cell covering less than half of it (the shapes world: one
flat object, at most 46% of the image). Objects with texture or several colours want
``color_grid`` with a finer grid, or ``image_residual``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .color_grid import cell_medians, cell_pool, colour_statistics, strided_trunk
from .range import clamp_to_image


def salient_share(x: torch.Tensor, grid: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(w [B, 1, H, W]: each pixel's share of its cell's salient colour, in [0, 1];
    core [B, C, H, W]: the colour at full share, per cell; colour statistics
    [B, 3C, grid, grid]: median, mean, salient per cell).

    w is the projection of x - m on the salient direction s - m, divided by the cell's
    largest projection: a flat object's core pixels get exactly 1 and a pixel that mixes it
    with the background in proportion a gets exactly a, however far the weighted mean s sits
    from the object's own colour (its anti-aliased edge pulls s towards m a little)."""
    c = x.shape[1]
    median = cell_medians(x, grid)
    stats = colour_statistics(x, grid, median)
    salient = F.interpolate(stats[:, 2 * c:], size=x.shape[-2:], mode="nearest")
    direction = salient - median
    projection = ((x - median) * direction).sum(1, keepdim=True)
    peak = F.interpolate(cell_pool(projection, grid, "max"), size=x.shape[-2:], mode="nearest").clamp_min(1e-6)
    core = median + direction * peak / direction.pow(2).sum(1, keepdim=True).clamp_min(1e-6)
    return (projection / peak).clamp(0, 1), core, stats


class SalientRecolourManipulator(nn.Module):
    """Images in [-1, 1], [B, C, H, W] -> edited images; any size. Identity at step 0."""

    architecture = "salient_recolour"

    def __init__(self, width: int = 48, depth: int = 4, grid: int = 1, channels: int = 3, groups: int = 8):
        super().__init__()
        self.hparams = {"width": width, "depth": depth, "grid": grid, "channels": channels, "groups": groups}
        self.grid, self.channels = grid, channels
        self.trunk = strided_trunk(channels + 1, width, depth, groups)
        self.head = nn.Sequential(nn.Conv2d(2 * width + 3 * channels, 2 * width, 1), nn.SiLU(),
                                  nn.Conv2d(2 * width, channels, 1))
        nn.init.zeros_(self.head[-1].weight)
        nn.init.zeros_(self.head[-1].bias)

    def offset(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(w [B, 1, H, W], d [B, C, H, W]): the salient share, and the colour offset, clamped
        so that the object's new colour is in range (then every edge pixel, a mixture of that
        colour and the background, is too: the edit needs no per-pixel clamp)."""
        with torch.no_grad():
            share, core, stats = salient_share(x, self.grid)
        features = self.trunk(torch.cat([x, share], 1))
        pooled = torch.cat([F.adaptive_avg_pool2d(features, self.grid), F.adaptive_max_pool2d(features, self.grid), stats], 1)
        d = F.interpolate(self.head(pooled), size=x.shape[-2:], mode="nearest")
        return share, clamp_to_image(core + d) - core

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        share, d = self.offset(x)
        return clamp_to_image(x + share * d)
