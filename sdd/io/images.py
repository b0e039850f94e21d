"""Image codecs between encoded bytes and uint8 arrays.

Decoding is strict about what it accepts and says why it refuses: callers turn the
``ImageDecodeError`` message into a rejects-table reason.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

FORMATS = {"png": "PNG", "jpeg": "JPEG", "jpg": "JPEG", "webp": "WEBP"}


class ImageDecodeError(ValueError):
    """Bytes that are not a usable image; the message is the reason recorded for the row."""


def encode_image(array: np.ndarray, fmt: str = "png", quality: int = 95) -> bytes:
    """uint8 [H, W, 3] -> encoded bytes (PNG by default; JPEG/WebP with ``quality``)."""
    try:
        pil_format = FORMATS[fmt.lower()]
    except KeyError:
        raise ValueError(f"unknown image format {fmt!r}; expected one of {sorted(FORMATS)}") from None
    buf = io.BytesIO()
    options = {} if pil_format == "PNG" else {"quality": quality}
    Image.fromarray(np.ascontiguousarray(array, dtype=np.uint8)).save(buf, pil_format, **options)
    return buf.getvalue()


def decode_image(data: bytes | None) -> np.ndarray:
    """Encoded bytes -> uint8 RGB [H, W, 3]."""
    if data is None:
        raise ImageDecodeError("image is null")
    if len(data) == 0:
        raise ImageDecodeError("image has zero bytes")
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            return np.asarray(img.convert("RGB"))
    except Exception as exc:  # PIL raises many types for bad data; the reason is what matters
        raise ImageDecodeError(f"cannot decode image: {exc}") from exc


def to_tensor_range(images: np.ndarray):
    """uint8 [B, H, W, 3] -> float32 torch tensor [B, 3, H, W] in [-1, 1]."""
    import torch

    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 127.5 - 1.0


def from_tensor_range(images) -> np.ndarray:
    """float torch tensor [B, 3, H, W] in [-1, 1] -> uint8 [B, H, W, 3]."""
    x = ((images.detach().float().clamp(-1, 1) + 1) * 127.5).round().to("cpu")
    return x.permute(0, 2, 3, 1).numpy().astype(np.uint8)


def image_grid(images: np.ndarray, rows: int, scale: int = 1, pad: int = 2) -> np.ndarray:
    """Tile uint8 [N, H, W, 3] into one image, ``rows`` high, with white padding."""
    n, h, w, c = images.shape
    cols = -(-n // rows)
    grid = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, c), 255, dtype=np.uint8)
    for i, img in enumerate(images):
        r, col = divmod(i, cols)
        y, x = pad + r * (h + pad), pad + col * (w + pad)
        grid[y : y + h, x : x + w] = img
    if scale > 1:
        grid = grid.repeat(scale, axis=0).repeat(scale, axis=1)
    return grid
