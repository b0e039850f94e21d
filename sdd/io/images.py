"""Image codecs between encoded bytes and uint8 arrays.

Decoding is strict about what it accepts and says why it refuses: callers turn the
``ImageDecodeError`` message into a rejects-table reason.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageOps

FORMATS = {"png": "PNG", "jpeg": "JPEG", "jpg": "JPEG", "webp": "WEBP"}
# zlib level 1, not PIL's 6: on a 512 x 512 photo it encodes ~3x faster for ~10% more bytes
# (docs/benchmarks.md), and at photo sizes the PNG encode otherwise costs as much as the edit
PNG_COMPRESS_LEVEL = 1


class ImageDecodeError(ValueError):
    """Bytes that are not a usable image; the message is the reason recorded for the row."""


def encode_image(array: np.ndarray, fmt: str = "png", quality: int = 95) -> bytes:
    """uint8 [H, W, 3] -> encoded bytes (PNG by default; JPEG/WebP with ``quality``)."""
    try:
        pil_format = FORMATS[fmt.lower()]
    except KeyError:
        raise ValueError(f"unknown image format {fmt!r}; expected one of {sorted(FORMATS)}") from None
    buf = io.BytesIO()
    options = {"compress_level": PNG_COMPRESS_LEVEL} if pil_format == "PNG" else {"quality": quality}
    Image.fromarray(np.ascontiguousarray(array, dtype=np.uint8)).save(buf, pil_format, **options)
    return buf.getvalue()


DEFAULT_MAX_PIXELS = 64_000_000


def decode_image(data: bytes | None, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Encoded bytes -> uint8 RGB [H, W, 3], whatever the source mode.

    EXIF orientation is applied; 16-bit images are scaled to 8 bits; grayscale, palette and
    CMYK are converted; transparency is composited over white. Dimensions are checked against
    ``max_pixels`` before any pixel is decoded (decompression bombs never allocate).
    """
    if data is None:
        raise ImageDecodeError("image is null")
    if len(data) == 0:
        raise ImageDecodeError("image has zero bytes")
    try:
        img = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:  # PIL's own ceiling, far above ours: still a bomb
        raise ImageDecodeError(f"image is over the limit of {max_pixels} pixels (decompression bomb: {exc})") from exc
    except Exception as exc:  # PIL raises many types for bad data; the reason is what matters
        kind = sniff_format(data)
        if kind:
            raise ImageDecodeError(f"cannot decode image: a truncated or corrupt {kind} ({len(data)} bytes)") from exc
        raise ImageDecodeError(f"cannot decode image: not a recognised image format (starts {data[:8]!r})") from exc
    with img:
        w, h = img.size
        if w * h > max_pixels:
            raise ImageDecodeError(f"image is {w}x{h} = {w * h} pixels, over the limit of {max_pixels}")
        try:
            img.load()
            img = ImageOps.exif_transpose(img)
            return _to_rgb(img)
        except ImageDecodeError:
            raise
        except Exception as exc:
            raise ImageDecodeError(f"cannot decode image: {exc}") from exc


SIGNATURES = {b"\x89PNG\r\n\x1a\n": "PNG", b"\xff\xd8\xff": "JPEG", b"GIF8": "GIF", b"BM": "BMP", b"II*\x00": "TIFF",
              b"MM\x00*": "TIFF"}


def sniff_format(data: bytes) -> str | None:
    """The format a file's magic bytes claim, for a reason that says "truncated PNG" rather
    than "unknown format" when PIL cannot even read the header."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WebP"
    return next((name for magic, name in SIGNATURES.items() if data.startswith(magic)), None)


def _to_rgb(img: Image.Image) -> np.ndarray:
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        arr = np.asarray(img).astype(np.float64)
        scale = 65535.0 if img.mode.startswith("I;16") or arr.max() > 255 else 255.0
        gray = np.clip(np.rint(arr / scale * 255.0), 0, 255).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=-1)
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA"):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.asarray(Image.alpha_composite(white, rgba).convert("RGB"))
    return np.asarray(img.convert("RGB"))


def to_tensor_range(images: np.ndarray):
    """uint8 [B, H, W, 3] -> float32 torch tensor [B, 3, H, W] in [-1, 1]."""
    import torch

    array = np.ascontiguousarray(images)
    if not array.flags.writeable:  # Arrow-backed rows: torch warns on sharing a read-only buffer
        array = array.copy()
    return torch.from_numpy(array).permute(0, 3, 1, 2).float() / 127.5 - 1.0


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
