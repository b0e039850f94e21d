"""Colour-grid manipulator: a coarse grid of affine colour transforms, predicted from the whole
image and interpolated smoothly over it, y = clamp((I + A(u, v)) x + b(u, v)).

Why: an attribute like colour changes what a region looks like, not where its edges are.
With one transform per grid cell (``grid=1``: one for the whole image) the output is a fixed
function of each pixel's own colour within a cell, so

* the edges, anti-aliasing and size of a shape carry over exactly (a pixel that mixes object
  and background maps to the same mixture of their images): nothing can blur or grow a halo;
* one transform can move the object's colour and hold the background's (12 parameters, 6
  constraints), so the fidelity term can pin the background while the guidance recolours;
* the guidance of every object pixel adds up into the same few parameters, which averages
  away the spatial noise of score-distillation gradients.

The transforms are predicted by a strided conv trunk pooled to the grid (mean and max, so a
small object's colour is not drowned by the background), then a 1x1 head started at zero: a
fresh manipulator is the identity. Larger ``grid`` buys spatially varying edits (lighting,
local colour) at the cost of some of that averaging. Works at any input size.

``pivot="median"`` centres each cell's transform on the cell's median colour,
y = x + A (x - median) + b: the colour that covers most of the cell (the background, for an
object edit) is fixed by every A, and moves only through b, which the fidelity term pins.
Without a pivot, holding the background needs A and b to cancel exactly at its colour, one
more thing the network has to learn per image and gets only approximately right (a tint).

``bias=False`` drops b: y = x + A (x - pivot). With the median pivot, the dominant colour of
each cell is then a fixed point of the edit *by construction*, whatever the network predicts:
the prior "an object edit leaves the background alone" moves from the loss, where the
guidance's pull on the background has to be out-weighed, into the architecture, where it
cannot be. It assumes the edited object covers less than half of each cell (true of the
shapes world: at most 46% of the image); an edit that must move the dominant colour
(a background change, a global tint) needs the bias.

``colour_stats=True`` hands the head each cell's median, mean and salient colour (the mean
weighted by distance from the median) next to the pooled features: the trunk's GroupNorm
normalises absolute colour levels away, and the map a recolour needs depends on both the
object's and the background's colour. Measured on the six recolour prompts, it did not stop
the amortised map from sending some (colour, background) pairs the wrong way (docs/experiments/recolour_calibration.md); ``salient_recolour`` needs no such map.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .range import clamp_to_image


PIVOTS = ("zero", "median")


def cell_pool(x: torch.Tensor, grid: int, reduce: str = "mean") -> torch.Tensor:
    """Per-channel mean or max of each of grid x grid cells, [B, C, grid, grid].

    The cells are ``torch.tensor_split``'s, the ones ``cell_medians`` uses and the ones
    ``F.interpolate(..., mode="nearest")`` spreads a grid back over; adaptive pooling's
    cells overlap by a pixel where the size is not a multiple of the grid, and a statistic
    pooled over them would describe pixels of the neighbouring cell."""
    rows = []
    for band in torch.tensor_split(x, grid, dim=2):
        cells = [cell.flatten(2) for cell in torch.tensor_split(band, grid, dim=3)]
        rows.append(torch.stack([c.mean(2) if reduce == "mean" else c.amax(2) for c in cells], dim=-1))
    return torch.stack(rows, dim=-2)


def cell_medians(x: torch.Tensor, grid: int) -> torch.Tensor:
    """Per-channel median of each of grid x grid cells, spread back over the cell's pixels."""
    rows = []
    for band in torch.tensor_split(x, grid, dim=2):
        cells = [cell.flatten(2).median(dim=2).values[..., None, None].expand_as(cell)
                 for cell in torch.tensor_split(band, grid, dim=3)]
        rows.append(torch.cat(cells, dim=3))
    return torch.cat(rows, dim=2)


def colour_statistics(x: torch.Tensor, grid: int, median: torch.Tensor | None = None) -> torch.Tensor:
    """Per cell, three colours the transform depends on: the median (the dominant colour), the
    mean, and the salient colour (the mean weighted by each pixel's distance from the median:
    the colour of whatever stands out, an object's). [B, 3C, grid, grid].
    ``median``: ``cell_medians(x, grid)`` when the caller has it already."""
    median = cell_medians(x, grid) if median is None else median
    weight = (x - median).abs().sum(1, keepdim=True)
    eps = 1e-6
    cell_median = cell_pool(median, grid)
    salient = (cell_pool(weight * x, grid) + eps * cell_median) / (cell_pool(weight, grid) + eps)
    return torch.cat([cell_median, cell_pool(x, grid), salient], 1)


def strided_trunk(in_channels: int, width: int, depth: int, groups: int) -> nn.Sequential:
    """The feature trunk the grid manipulators pool from: a 3x3 conv, then ``depth`` blocks of
    GroupNorm, SiLU and 3x3 conv, every second one halving the resolution."""
    layers: list[nn.Module] = [nn.Conv2d(in_channels, width, 3, padding=1)]
    for i in range(depth):
        layers += [nn.GroupNorm(groups, width), nn.SiLU(), nn.Conv2d(width, width, 3, padding=1, stride=2 if i % 2 else 1)]
    return nn.Sequential(*layers)


class ColorGridManipulator(nn.Module):
    """Images in [-1, 1], [B, C, H, W] -> edited images; any size."""

    architecture = "color_grid"

    def __init__(self, width: int = 48, depth: int = 4, grid: int = 1, channels: int = 3, groups: int = 8,
                 pivot: str = "zero", bias: bool = True, colour_stats: bool = False):
        super().__init__()
        if pivot not in PIVOTS:
            raise ValueError(f"unknown pivot {pivot!r}; expected one of {PIVOTS}")
        self.hparams = {"width": width, "depth": depth, "grid": grid, "channels": channels, "groups": groups, "pivot": pivot,
                        "bias": bias, "colour_stats": colour_stats}
        self.channels, self.grid, self.pivot, self.bias, self.colour_stats = channels, grid, pivot, bias, colour_stats
        self.trunk = strided_trunk(channels + 2, width, depth, groups)
        self.head = nn.Sequential(
            nn.Conv2d(2 * width + 3 * channels * colour_stats, 2 * width, 1), nn.SiLU(), nn.Conv2d(2 * width, channels * (channels + int(bias)), 1)
        )
        nn.init.zeros_(self.head[-1].weight)
        nn.init.zeros_(self.head[-1].bias)

    def transform(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-pixel (A, b) interpolated from the grid: A [B, C, C, H, W] (added to I), b [B, C, H, W]
        (zeros without a bias)."""
        b, _, h, w = x.shape
        ys = torch.linspace(-1, 1, h, device=x.device, dtype=x.dtype).view(1, 1, h, 1).expand(b, 1, h, w)
        xs = torch.linspace(-1, 1, w, device=x.device, dtype=x.dtype).view(1, 1, 1, w).expand(b, 1, h, w)
        features = self.trunk(torch.cat([x, ys, xs], dim=1))
        pooled = [F.adaptive_avg_pool2d(features, self.grid), F.adaptive_max_pool2d(features, self.grid)]
        if self.colour_stats:
            pooled.append(colour_statistics(x, self.grid))
        pooled = torch.cat(pooled, 1)
        params = self.head(pooled)
        if self.grid > 1:
            params = F.interpolate(params, size=(h, w), mode="bilinear", align_corners=False)
        else:
            params = params.expand(-1, -1, h, w)
        c = self.channels
        a = params[:, : c * c].reshape(b, c, c, h, w)
        return a, (params[:, c * c :] if self.bias else torch.zeros_like(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, bias = self.transform(x)
        centred = x - cell_medians(x, self.grid) if self.pivot == "median" else x
        return clamp_to_image(x + torch.einsum("bijhw,bjhw->bihw", a, centred) + bias)
