"""Mask-and-content manipulator: the network decides where to edit and what to put there.

    y = x + m * d        (= m * c + (1 - m) * x with content c = x + d)

A small U-Net reads the image and predicts, per pixel, a mask ``m`` in [0, 1] (where the
edit applies) and a content change ``d`` (what the edited pixels become), after the
attention-mask editors of GANimation (Pumarola et al., 2018). Nothing in it assumes which
attribute is edited: a recolour puts the mask on the object, a background change on
everything else, a size or shape change on the ring that is gained or lost, and the content
there is the colour the region should take, which the U-Net's image-wide context supplies
(the encoder reaches a 4x4 grid at 32 px and adds a globally pooled vector, so every output
pixel sees the whole image: geometric edits need that).

The mask's priors are the architecture's, so they travel with it (``penalty``): a sparsity
cost on the mean of ``m`` (edit as few pixels as the guidance allows) and a total-variation
cost on ``m`` (edit regions, not speckle). The content change is zero at initialisation,
so a fresh manipulator is exactly the identity.

Photos: the network runs at most ``max_side`` pixels on the longer side; ``m`` and ``d`` are
upsampled to the image and applied there. Where ``m`` is 0 every source pixel passes
through untouched at full resolution, and the cost of a 512-px image is that of a
``max_side`` one plus one bilinear upsample.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .range import clamp_to_image


class ResBlock(nn.Module):
    def __init__(self, cin: int, cout: int, groups: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.GroupNorm(min(groups, cin), cin), nn.SiLU(), nn.Conv2d(cin, cout, 3, padding=1),
            nn.GroupNorm(min(groups, cout), cout), nn.SiLU(), nn.Conv2d(cout, cout, 3, padding=1),
        )
        self.skip = nn.Identity() if cin == cout else nn.Conv2d(cin, cout, 1)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.skip(h) + self.body(h)


class BlendManipulator(nn.Module):
    """Images in [-1, 1], [B, C, H, W] -> edited images, same shape and range; any size."""

    architecture = "mask_blend"

    def __init__(self, width: int = 32, levels: int = 3, groups: int = 8, channels: int = 3,
                 max_side: int = 128, sparsity: float = 0.05, smoothness: float = 0.05, edge_scale: float = 0.0):
        super().__init__()
        if edge_scale < 0:
            raise ValueError(f"edge_scale must be >= 0, got {edge_scale}")
        self.hparams = {"width": width, "levels": levels, "groups": groups, "channels": channels,
                        "max_side": max_side, "sparsity": sparsity, "smoothness": smoothness, "edge_scale": edge_scale}
        self.levels, self.max_side = levels, max_side
        self.sparsity, self.smoothness, self.edge_scale = sparsity, smoothness, edge_scale
        widths = [width * min(2**k, 4) for k in range(levels + 1)]
        self.conv_in = nn.Conv2d(channels, widths[0], 3, padding=1)
        self.down = nn.ModuleList(ResBlock(widths[k], widths[k + 1], groups) for k in range(levels))
        self.context = nn.Linear(widths[-1], widths[-1])
        self.middle = ResBlock(widths[-1], widths[-1], groups)
        self.up = nn.ModuleList(ResBlock(widths[k + 1] + widths[k], widths[k], groups) for k in reversed(range(levels)))
        self.head = nn.Sequential(nn.GroupNorm(min(groups, widths[0]), widths[0]), nn.SiLU(),
                                  nn.Conv2d(widths[0], 1 + channels, 3, padding=1))
        nn.init.zeros_(self.head[-1].weight)
        nn.init.zeros_(self.head[-1].bias)

    def working_size(self, h: int, w: int) -> tuple[int, int]:
        """The size the network runs at: the image's, scaled down to ``max_side`` on the
        longer side, rounded up to a multiple of 2**levels (padded, never stretched)."""
        scale = min(1.0, self.max_side / max(h, w))
        step = 2**self.levels
        return (max(step, -(-round(h * scale) // step) * step), max(step, -(-round(w * scale) // step) * step))

    def mask_and_change(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(m [B, 1, h, w] in [0, 1], d [B, C, h, w]) at the working size."""
        h, w = x.shape[-2:]
        wh, ww = self.working_size(h, w)
        scale = min(1.0, self.max_side / max(h, w))
        small = x
        if scale < 1:
            small = F.interpolate(x, size=(round(h * scale), round(w * scale)), mode="bilinear", antialias=True,
                                  align_corners=False)
        ph, pw = wh - small.shape[-2], ww - small.shape[-1]
        if ph or pw:
            small = F.pad(small, (0, pw, 0, ph), mode="replicate")
        feats, hidden = [], self.conv_in(small)
        for block in self.down:
            feats.append(hidden)
            hidden = block(F.avg_pool2d(hidden, 2))
        hidden = hidden + self.context(hidden.mean((2, 3)))[..., None, None]
        hidden = self.middle(hidden)
        for block in self.up:
            skip = feats.pop()
            hidden = block(torch.cat([F.interpolate(hidden, size=skip.shape[-2:], mode="nearest"), skip], 1))
        out = self.head(hidden)[..., : wh - ph, : ww - pw]
        return torch.sigmoid(out[:, :1]), out[:, 1:]

    def edit_maps(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(m, d) at the image's own size."""
        m, d = self.mask_and_change(x)
        if m.shape[-2:] != x.shape[-2:]:
            m = F.interpolate(m, size=x.shape[-2:], mode="bilinear", align_corners=False)
            d = F.interpolate(d, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return m, d

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m, d = self.edit_maps(x)
        return clamp_to_image(x + m * d)

    def edge_weights(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per neighbour pair (vertical, horizontal), how much a step of the mask costs there:
        1 inside a flat region, falling as exp(-|source step| / edge_scale) across the
        source's own edges (the edge-aware smoothness of joint-bilateral and guided filters),
        so the mask is smooth within regions and free to switch where the image does.
        ``edge_scale`` 0: plain total variation, every step costs 1."""
        if not self.edge_scale:
            return torch.ones_like(x[:, :1, 1:, :]), torch.ones_like(x[:, :1, :, 1:])
        dv = (x[..., 1:, :] - x[..., :-1, :]).abs().amax(1, keepdim=True)
        dh = (x[..., :, 1:] - x[..., :, :-1]).abs().amax(1, keepdim=True)
        return torch.exp(-dv / self.edge_scale), torch.exp(-dh / self.edge_scale)

    def forward_with_penalty(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(edited images, per-row mask prior: sparsity * mean(m) + smoothness * TV(m)). The
        priors are charged on the mask where the content change is non-zero, so a mask over
        pixels the edit leaves alone costs nothing and is not pushed around by the prior."""
        m, d = self.edit_maps(x)
        y = clamp_to_image(x + m * d)
        active = m * d.detach().abs().amax(1, keepdim=True).clamp(max=1)
        wv, wh = self.edge_weights(x.detach())
        tv = (wv * (active[..., 1:, :] - active[..., :-1, :]).abs()).flatten(1).mean(1) + \
             (wh * (active[..., :, 1:] - active[..., :, :-1]).abs()).flatten(1).mean(1)
        return y, self.sparsity * active.flatten(1).mean(1) + self.smoothness * tv
