"""Rows per network call: the device's default unless the caller says, and chunked calls give
what one call would."""

import torch

from sdd.batching import CPU_MAX_BATCH, GPU_MAX_BATCH, in_chunks, in_device_sized_calls, resolve_max_batch


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


def test_a_network_in_device_sized_calls_runs_without_grad_on_its_device():
    net = torch.nn.Linear(3, 2)
    sizes = []
    net.register_forward_hook(lambda module, args, out: sizes.append(args[0].shape[0]))
    x = torch.randn(40, 3, dtype=torch.float32)
    out = in_device_sized_calls(net)(x)
    assert sizes == [32, 8] and not out.requires_grad
    torch.testing.assert_close(out, net(x).detach())
