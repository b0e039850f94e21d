"""The shapes domain matches its specification, image by image."""

import numpy as np
import pytest

from sdd.domains.shapes import spec
from sdd.domains.shapes.captions import caption, training_captions, vocabulary
from sdd.domains.shapes.render import generate, sample_labels


@pytest.fixture(scope="module")
def batch():
    return generate(600, seed=7)


def test_same_seed_same_images_and_different_seed_different_images(batch):
    again = generate(600, seed=7)
    assert np.array_equal(batch.images, again.images)
    assert not np.array_equal(batch.images, generate(600, seed=8).images)


def test_images_are_32x32_rgb_uint8(batch):
    assert batch.images.shape == (600, 32, 32, 3) and batch.images.dtype == np.uint8
    assert batch.masks.shape == (600, 32, 32)


def test_object_lies_inside_the_frame(batch):
    for i, shape in enumerate(batch.names("shape")):
        left, right, top, bottom = spec.object_extent(shape, batch.radius[i])
        assert batch.cx[i] - left >= 0 and batch.cx[i] + right <= 32
        assert batch.cy[i] - top >= 0 and batch.cy[i] + bottom <= 32


def test_radius_follows_size_word(batch):
    for size, r in zip(batch.names("size"), batch.radius):
        lo, hi = spec.SIZE_RADIUS[size]
        assert lo <= r <= hi


def test_mask_area_matches_the_geometry(batch):
    areas = {
        "circle": lambda r: np.pi * r**2,
        "square": lambda r: (2 * spec.SQUARE_HALF_SIDE * r) ** 2,
        "triangle": lambda r: 0.5 * (2 * spec.TRIANGLE_HALF_BASE * r) * (1 + spec.TRIANGLE_BASE_DROP) * r,
    }
    for i, shape in enumerate(batch.names("shape")):
        expected = areas[shape](batch.radius[i])
        assert abs(batch.masks[i].sum() - expected) < 0.05 * expected + 1.0


def test_colours_are_the_named_ones_within_jitter(batch):
    for i in range(len(batch)):
        inside = batch.images[i][batch.masks[i] == 1.0].astype(int)
        outside = batch.images[i][batch.masks[i] == 0.0].astype(int)
        obj = np.array(spec.COLOR_RGB[batch.names("color")[i]])
        bg = np.array(spec.BACKGROUND_RGB[batch.names("background")[i]])
        assert np.all(np.abs(inside - obj) <= spec.COLOR_JITTER)
        assert np.all(np.abs(outside - bg) <= spec.BACKGROUND_JITTER)
        # flat: one colour per region
        assert len(np.unique(inside, axis=0)) == 1 and len(np.unique(outside, axis=0)) == 1


def test_edges_are_anti_aliased(batch):
    partial = (batch.masks > 0) & (batch.masks < 1)
    assert partial.any(axis=(1, 2)).all()
    # coverage comes in 1/16 steps: a 4x4 supersampling box filter
    assert np.allclose(batch.masks * 16, np.round(batch.masks * 16), atol=1e-4)


def test_held_out_combinations_can_be_excluded():
    rng = np.random.default_rng(0)
    labels = sample_labels(rng, 20000, exclude_held_out=True)
    combos = {
        (spec.SIZES[s], spec.COLORS[c], spec.SHAPES[h])
        for s, c, h in zip(labels["size"], labels["color"], labels["shape"])
    }
    assert combos.isdisjoint(spec.HELD_OUT)
    assert len(combos) == 2 * 6 * 3 - len(spec.HELD_OUT)


def test_caption_format(batch):
    i = 0
    expected = (
        f"a {batch.names('size')[i]} {batch.names('color')[i]} {batch.names('shape')[i]} "
        f"on a {batch.names('background')[i]} background"
    )
    assert batch.captions()[i] == expected


def test_partial_captions():
    assert caption(color="red") == "a red object"
    assert caption(size="large", background="black") == "a large object on a black background"
    assert caption() == "a object"


def test_training_captions_drop_attributes_independently():
    rng = np.random.default_rng(0)
    labels = sample_labels(rng, 4000)
    caps = training_captions(rng, labels, drop_attribute=0.2, drop_caption=0.1)
    empty = sum(c == "" for c in caps) / len(caps)
    objects = sum(" object" in c for c in caps) / len(caps)
    no_background = sum(c != "" and "background" not in c for c in caps) / len(caps)
    assert 0.08 < empty < 0.12
    assert 0.15 < objects < 0.21  # shape dropped: 0.9 * 0.2
    assert 0.15 < no_background < 0.21
    vocab = set(vocabulary())
    assert all(set(c.split()) <= vocab for c in caps)
