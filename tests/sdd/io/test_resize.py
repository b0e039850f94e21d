"""Resize policies: the sizes they give, and clear errors for malformed ones."""

import numpy as np
import pytest

from sdd.config import AugmentConfig
from sdd.io.resize import parse_resize, resize_pixels, target_size


@pytest.mark.parametrize("policy, size", [
    ("native", (427, 640)), ("square:32", (32, 32)),
    ("shorter_side:100", (100, 150)), ("longer_side:100", (67, 100)),
])
def test_target_sizes(policy, size):
    assert target_size(policy, 427, 640) == size


@pytest.mark.parametrize("policy, message", [
    ("thumbnail", "unknown resize"), ("square", "whole number"), ("square:0", ">= 1"),
    ("native:32", "takes no size"), ("longer_side:big", "whole number"),
])
def test_malformed_policies_are_refused_before_any_work(policy, message):
    with pytest.raises(ValueError, match=message):
        parse_resize(policy)
    with pytest.raises(ValueError, match=message):
        AugmentConfig(input="in", output="out", manipulators=["m"], resize=policy)


def test_resize_pixels_is_a_no_op_at_the_size_and_antialiased_otherwise():
    checker = (np.indices((64, 64)).sum(0) % 2 * 255).astype(np.uint8)[..., None].repeat(3, -1)
    assert resize_pixels(checker, (64, 64)) is checker
    small = resize_pixels(checker, (16, 16))
    assert small.shape == (16, 16, 3) and small.dtype == np.uint8
    assert np.abs(small.astype(int) - 128).max() <= 2  # averaged, not sampled
