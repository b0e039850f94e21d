"""Rows per network call, by device, for every network that runs on a batch of images.

On CPU small calls win: activations stay in cache. The teacher's indicator sweep ran 1.9x
faster at 64 rows per call than at 512, and 1.09x faster again at 32 than at 64 (diffusers'
Upsample2D falls back to NCHW from 64 rows); the default manipulator and the shapes judge
spend 1.7-2.9x less per row at 32 rows than at 256, the augment job's block size. Packed
training holds less memory too. On a GPU large calls fill the device.
``benchmarks/bench_indicator.py --max-batch`` measures it for the teacher.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

CPU_MAX_BATCH = 32
GPU_MAX_BATCH = 512
# images of mixed sizes: pixels per call (and per slice a job holds decoded), 16 of 512 x 512
DEFAULT_CALL_PIXELS = 16 * 512 * 512


def resolve_max_batch(max_batch: int | None, device: torch.device | str) -> int:
    """``max_batch`` if given, else the device's default rows per call."""
    if max_batch:
        return max_batch
    return CPU_MAX_BATCH if torch.device(device).type == "cpu" else GPU_MAX_BATCH


def in_chunks(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, rows: int) -> torch.Tensor:
    """``fn`` over ``x`` in calls of at most ``rows`` rows, concatenated (one call when it fits)."""
    if x.shape[0] <= rows:
        return fn(x)
    return torch.cat([fn(x[s : s + rows]) for s in range(0, x.shape[0], rows)])


def in_device_sized_calls(network: nn.Module, max_batch: int | None = None) -> Callable[[torch.Tensor], torch.Tensor]:
    """``network`` as a no-grad function of any number of rows: inputs go to the network's
    device, in calls of at most ``max_batch`` rows (default: the device's)."""
    device = next(network.parameters()).device
    rows = resolve_max_batch(max_batch, device)

    @torch.no_grad()
    def run(x: torch.Tensor) -> torch.Tensor:
        return in_chunks(network, x.to(device), rows)

    return run
