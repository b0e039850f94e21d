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
                 max_side: int = 128, sparsity: float = 0.05, smoothness: float = 0.05, edge_scale: float = 0.0,
                 change_smoothness: float = 0.0, max_flow: float = 0.0):
        super().__init__()
        if edge_scale < 0:
            raise ValueError(f"edge_scale must be >= 0, got {edge_scale}")
        if max_flow < 0:
            raise ValueError(f"max_flow must be >= 0, got {max_flow}")
        if change_smoothness < 0:
            raise ValueError(f"change_smoothness must be >= 0, got {change_smoothness}")
        self.hparams = {"width": width, "levels": levels, "groups": groups, "channels": channels,
                        "max_side": max_side, "sparsity": sparsity, "smoothness": smoothness, "edge_scale": edge_scale,
                        "change_smoothness": change_smoothness, "max_flow": max_flow}
        self.levels, self.max_side = levels, max_side
        self.sparsity, self.smoothness, self.edge_scale = sparsity, smoothness, edge_scale
        self.change_smoothness, self.max_flow = change_smoothness, max_flow
        widths = [width * min(2**k, 4) for k in range(levels + 1)]
        self.conv_in = nn.Conv2d(channels, widths[0], 3, padding=1)
        self.down = nn.ModuleList(ResBlock(widths[k], widths[k + 1], groups) for k in range(levels))
        self.context = nn.Linear(widths[-1], widths[-1])
        self.middle = ResBlock(widths[-1], widths[-1], groups)
        self.up = nn.ModuleList(ResBlock(widths[k + 1] + widths[k], widths[k], groups) for k in reversed(range(levels)))
        self.head = nn.Sequential(nn.GroupNorm(min(groups, widths[0]), widths[0]), nn.SiLU(),
                                  nn.Conv2d(widths[0], 1 + channels + (2 if max_flow else 0), 3, padding=1))
        nn.init.zeros_(self.head[-1].weight)
        nn.init.zeros_(self.head[-1].bias)

    def working_size(self, h: int, w: int) -> tuple[int, int]:
        """The size the network runs at: the image's, scaled down to ``max_side`` on the
        longer side, rounded up to a multiple of 2**levels (padded, never stretched)."""
        scale = min(1.0, self.max_side / max(h, w))
        step = 2**self.levels
        return (max(step, -(-round(h * scale) // step) * step), max(step, -(-round(w * scale) // step) * step))

    def mask_and_change(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """(m [B, 1, h, w] in [0, 1], d [B, C, h, w], flow [B, 2, h, w] or None) at the
        working size; the flow is in grid_sample's normalised units (x, then y)."""
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
        c = x.shape[1]
        flow = None
        if self.max_flow:
            pixels = self.max_flow * torch.tanh(out[:, 1 + c:])
            flow = pixels * torch.tensor([2.0 / ww, 2.0 / wh], device=x.device, dtype=x.dtype).view(1, 2, 1, 1)
        return torch.sigmoid(out[:, :1]), out[:, 1:1 + c], flow

    def edit_maps(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """(m, d, flow) at the image's own size (normalised flow units do not depend on it)."""
        maps = self.mask_and_change(x)
        if maps[0].shape[-2:] != x.shape[-2:]:
            maps = tuple(None if v is None else F.interpolate(v, size=x.shape[-2:], mode="bilinear", align_corners=False)
                         for v in maps)
        return maps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m, d, flow = self.edit_maps(x)
        return clamp_to_image(warp(x, flow) + m * d)

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
        """(edited images, per-row prior). The mask prior, sparsity * mean(m) + smoothness *
        TV(m), is charged on the mask where the content change is non-zero, so a mask over
        pixels the edit leaves alone costs nothing and is not pushed around by the prior.
        ``change_smoothness`` charges the same edge-weighted TV on the applied change m * d:
        within a region of the source the edit should move every pixel alike (a flat object
        stays flat when recoloured), while across the source's edges it may change freely."""
        m, d, flow = self.edit_maps(x)
        y = clamp_to_image(warp(x, flow) + m * d)
        active = m * d.detach().abs().amax(1, keepdim=True).clamp(max=1)
        wv, wh = self.edge_weights(x.detach())
        penalty = self.sparsity * active.flatten(1).mean(1) + self.smoothness * weighted_tv(active, wv, wh)
        if self.change_smoothness:
            penalty = penalty + self.change_smoothness * weighted_tv(m * d, wv, wh)
        if flow is not None:  # a warp moves whole regions: its field is smooth everywhere, in pixels
            px = flow * torch.tensor([x.shape[-1] / 2.0, x.shape[-2] / 2.0], device=x.device, dtype=x.dtype).view(1, 2, 1, 1)
            ones_v, ones_h = torch.ones_like(wv), torch.ones_like(wh)
            penalty = penalty + self.smoothness * weighted_tv(px, ones_v, ones_h)
        return y, penalty


def warp(x: torch.Tensor, flow: torch.Tensor | None) -> torch.Tensor:
    """Each output pixel samples the source at its own position plus ``flow`` (normalised
    units, bilinear, borders repeated); None: the source itself. Written as the source plus
    the warp's difference from sampling at zero flow, so a zero field gives the source
    bit for bit (the sampling grid's rounding cancels) and still passes its gradient."""
    if flow is None:
        return x
    b = x.shape[0]
    theta = torch.eye(2, 3, device=x.device, dtype=x.dtype).expand(b, 2, 3)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    sample = lambda g: F.grid_sample(x, g, mode="bilinear", padding_mode="border", align_corners=False)  # noqa: E731
    return x + (sample(grid + flow.permute(0, 2, 3, 1)) - sample(grid).detach())


def weighted_tv(maps: torch.Tensor, wv: torch.Tensor, wh: torch.Tensor) -> torch.Tensor:
    """Per row: mean over pixels (and channels) of the weighted absolute neighbour steps."""
    return (wv * (maps[..., 1:, :] - maps[..., :-1, :]).abs()).flatten(1).mean(1) + \
           (wh * (maps[..., :, 1:] - maps[..., :, :-1]).abs()).flatten(1).mean(1)
