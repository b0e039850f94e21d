"""Shared benchmark plumbing: timing (warm-up, then the median of repeats), thread and
device settings, and one printed result line per comparison."""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Callable


DTYPES = ("float32", "bfloat16", "float16")  # a teacher's dtypes, as configs spell them


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--dtype", default=None, choices=DTYPES,
                   help="the teacher's dtype (default: the teacher's own, float32 on CPU); both sides use it")
    p.add_argument("--repeats", type=int, default=5, help="timed repetitions (the median is reported)")
    p.add_argument("--warmup", type=int, default=1, help="untimed repetitions first")
    p.add_argument("--json", default=None, help="also write the result here")
    return p


def setup(args) -> None:
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)


def teacher_dtype(name: str | None):
    """A ``--dtype`` value as a torch dtype, or None for the teacher's default."""
    import torch

    return getattr(torch, name) if name else None


def median_seconds(fn: Callable[[], object], repeats: int, warmup: int, sync: Callable[[], None] = lambda: None) -> float:
    """Median wall time of ``fn`` over ``repeats`` runs after ``warmup`` untimed runs."""
    for _ in range(warmup):
        fn()
        sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def seconds_per_call(fn: Callable[[int], object], repeats: int, warmup: int,
                     sync: Callable[[], None] = lambda: None) -> float:
    """Median seconds of one ``fn(1)`` for calls that take milliseconds, where scheduling
    noise moved single-call medians by 2x: each timed repetition runs ``fn(calls)`` with
    enough calls to last about a second."""
    fn(2)
    calls = max(1, round(1.0 / max(median_seconds(lambda: fn(1), 3, 0, sync), 1e-6)))
    return median_seconds(lambda: fn(calls), repeats, warmup, sync) / calls


def cuda_sync(device: str) -> Callable[[], None]:
    import torch

    return torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)


def report(name: str, result: dict, args) -> None:
    print(f"{name}: " + ", ".join(f"{k}={v}" for k, v in result.items()), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"benchmark": name, **result}, f, indent=2)
