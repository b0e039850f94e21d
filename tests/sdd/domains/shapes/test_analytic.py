"""The analytic reader reads every attribute of clean images, and refuses the edits a learned
judge is fooled by: a painted frame, a tint, a second blob, a smear."""

import numpy as np
import pytest

from sdd.domains.shapes import analytic, spec
from sdd.domains.shapes.render import composite, coverage, generate


@pytest.fixture(scope="module")
def batch():
    return generate(600, seed=2468)


def test_reads_every_attribute_of_fresh_images_and_finds_them_clean(batch):
    reading = analytic.read(batch.images)
    assert reading.clean.all(), reading.failure()
    for attribute in spec.ATTRIBUTES:
        np.testing.assert_array_equal(reading.labels[attribute], batch.labels[attribute], err_msg=attribute)
    assert np.abs(reading.radius - batch.radius).max() < 0.3
    assert reading.shape_iou.min() > 0.95
    np.testing.assert_allclose(analytic.mask_iou(reading, reading), 1.0)


def test_a_painted_frame_is_not_clean(batch):
    # a black frame round images whose background is not black (the guidance for "on a
    # black background" asks for dark pixels, and a frame is the cheapest place to put them)
    framed = batch.images[batch.labels["background"] != spec.BACKGROUNDS.index("black")][:50].copy()
    framed[:, :3], framed[:, -3:], framed[:, :, :3], framed[:, :, -3:] = 20, 20, 20, 20
    reading = analytic.read(framed)
    assert not reading.clean.any()


def test_a_second_blob_is_not_clean(batch):
    n = 100
    first = batch.masks[:n]
    # a small disc in the corner the object is furthest from
    far_x = np.where(batch.cx[:n] > 16, 5.0, 27.0)
    far_y = np.where(batch.cy[:n] > 16, 5.0, 27.0)
    second = coverage(np.zeros(n, int), far_x, far_y, np.full(n, 3.5))
    overlap = (first > 0) & (second > 0)
    keep = ~overlap.any((1, 2))
    mask = np.maximum(first, second)[keep]
    background = batch.images[:n][keep][:, 0, 0].astype(float)
    red = np.tile(np.array(spec.COLOR_RGB["red"], float), (int(keep.sum()), 1))
    images = composite(mask, red, background)
    reading = analytic.read(images)
    assert keep.sum() > 50
    assert (reading.components[~reading.clean] >= 1).all()
    assert not reading.clean.any()


def test_a_global_tint_reads_as_an_unknown_background(batch):
    tinted = np.clip(batch.images[:100].astype(int) + np.array([60, -40, 0]), 0, 255).astype(np.uint8)
    reading = analytic.read(tinted)
    assert (reading.labels["background"] == -1).mean() > 0.9


def test_a_smeared_object_is_not_clean(batch):
    # a 5-pixel box blur in x: the outline no longer fits a circle, square or triangle
    images = batch.images[:100].astype(float)
    smeared = sum(np.roll(images, k, axis=2) for k in range(-2, 3)) / 5
    reading = analytic.read(np.rint(smeared).astype(np.uint8))
    assert reading.clean.mean() < 0.2


def test_an_empty_image_has_no_object():
    flat = np.full((3, 32, 32, 3), 128, np.uint8)
    reading = analytic.read(flat)
    assert (reading.components == 0).all() and not reading.clean.any()
    assert reading.failure() == ["no object"] * 3


def test_only_32_pixel_rgb_images_are_read():
    with pytest.raises(ValueError, match=r"\[N, 32, 32, 3\]"):
        analytic.read(np.zeros((2, 64, 64, 3), np.uint8))
