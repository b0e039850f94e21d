"""Rows per network call: the device's default unless the caller says, and chunked calls give
what one call would."""

import torch

from sdd.batching import CPU_MAX_BATCH, GPU_MAX_BATCH, in_chunks, resolve_max_batch


def test_defaults_follow_the_device_and_an_explicit_size_wins():
    assert resolve_max_batch(None, "cpu") == CPU_MAX_BATCH == 32
    assert resolve_max_batch(None, torch.device("cuda", 0)) == GPU_MAX_BATCH
    assert resolve_max_batch(7, "cpu") == 7


def test_in_chunks_bounds_every_call_and_keeps_row_order():
    sizes = []

    def double(x):
        sizes.append(len(x))
        return x * 2

    x = torch.arange(10.0)
    assert torch.equal(in_chunks(double, x, 4), x * 2)
    assert sizes == [4, 4, 2]
    sizes.clear()
    assert torch.equal(in_chunks(double, x, 10), x * 2)
    assert sizes == [10]
