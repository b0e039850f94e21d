"""Decoding accepts every common image mode and refuses bad bytes with a reason."""

import io

import numpy as np
import pytest
from PIL import Image

from sdd.io.images import ImageDecodeError, decode_image, encode_image


def enc(img, fmt="PNG", **kw):
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def test_round_trip_png_is_lossless():
    arr = np.random.default_rng(0).integers(0, 256, (9, 7, 3), dtype=np.uint8)
    assert np.array_equal(decode_image(encode_image(arr)), arr)
    assert decode_image(encode_image(arr, "jpeg")).shape == (9, 7, 3)
    assert decode_image(encode_image(arr, "webp")).shape == (9, 7, 3)
    with pytest.raises(ValueError, match="unknown image format"):
        encode_image(arr, "bmp2")


def test_modes_are_converted_to_rgb():
    sixteen = Image.fromarray((np.arange(64 * 64).reshape(64, 64) * 16).astype(np.uint16))
    assert decode_image(enc(sixteen)).max() == 255
    assert decode_image(enc(Image.new("L", (4, 4), 100)))[0, 0].tolist() == [100, 100, 100]
    palette = Image.new("RGB", (4, 4), (200, 10, 10)).convert("P")
    assert decode_image(enc(palette))[0, 0, 0] > 150
    transparent = Image.new("RGBA", (4, 4), (200, 10, 10, 0))
    assert decode_image(enc(transparent))[0, 0].tolist() == [255, 255, 255]  # composited over white
    cmyk = Image.new("CMYK", (4, 4), (0, 255, 255, 0))
    assert decode_image(enc(cmyk, "JPEG"))[0, 0, 0] > 200


def test_exif_rotation_is_applied():
    img = Image.new("RGB", (6, 4), (0, 0, 255))
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90 degrees
    assert decode_image(enc(img, "JPEG", exif=exif)).shape == (6, 4, 3)


@pytest.mark.parametrize("data, reason", [
    (None, "null"),
    (b"", "zero bytes"),
    (b"this is text, not an image", "not a recognised image format"),
    (enc(Image.new("RGB", (40, 40), (1, 2, 3)))[:60], "truncated"),
])
def test_bad_bytes_are_refused_with_a_reason(data, reason):
    with pytest.raises(ImageDecodeError, match=reason):
        decode_image(data)


def test_decompression_bomb_is_refused_before_decoding():
    with pytest.raises(ImageDecodeError, match="over the limit"):
        decode_image(enc(Image.new("L", (3000, 3000))), max_pixels=1_000_000)
