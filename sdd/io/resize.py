"""Resize policies: which size an image is edited at, and the one resize that gets it there.

An augmented copy must keep its source's geometry, because a dataset's labels (boxes,
masks, keypoints) refer to the source's pixels. So the default is ``native``: every image
is edited at its own width and height. The others are for users who want one size:

    native            the decoded image's own size
    square:<N>        N x N (the aspect ratio is not kept)
    shorter_side:<N>  the shorter side becomes N, the aspect ratio kept
    longer_side:<N>   the longer side becomes N, the aspect ratio kept
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

KINDS = ("native", "square", "shorter_side", "longer_side")


def parse_resize(policy: str) -> tuple[str, int | None]:
    """``"shorter_side:512"`` -> ("shorter_side", 512); raises ValueError with the accepted forms."""
    kind, _, value = str(policy).partition(":")
    forms = "native, square:<N>, shorter_side:<N> or longer_side:<N>"
    if kind not in KINDS:
        raise ValueError(f"unknown resize {policy!r}; expected {forms}")
    if kind == "native":
        if value:
            raise ValueError(f"resize 'native' takes no size, got {policy!r}")
        return kind, None
    try:
        n = int(value)
    except ValueError:
        raise ValueError(f"resize {policy!r} needs a whole number of pixels: {forms}") from None
    if n < 1:
        raise ValueError(f"resize {policy!r}: the size must be >= 1")
    return kind, n


def target_size(policy: str, height: int, width: int) -> tuple[int, int]:
    """(height, width) an image of this size is edited at under ``policy``."""
    kind, n = parse_resize(policy)
    if kind == "native":
        return height, width
    if kind == "square":
        return n, n
    side = min(height, width) if kind == "shorter_side" else max(height, width)
    scale = n / side
    return max(1, round(height * scale)), max(1, round(width * scale))


def resize_pixels(pixels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """uint8 [H, W, 3] -> uint8 [h, w, 3], antialiased bilinear; the array itself when the
    size is already right."""
    if pixels.shape[:2] == tuple(size):
        return pixels
    x = torch.from_numpy(np.ascontiguousarray(pixels)).permute(2, 0, 1)[None].float()
    y = F.interpolate(x, size=tuple(size), mode="bilinear", antialias=True, align_corners=False)
    return y[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy()


def resize_tensor(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Float images [B, C, H, W] -> [B, C, h, w], antialiased bilinear (a no-op at the size)."""
    if tuple(images.shape[-2:]) == tuple(size):
        return images
    return F.interpolate(images, size=tuple(size), mode="bilinear", antialias=True, align_corners=False)
