"""The indicator sweep with a float32 and a bfloat16 teacher, taking turns in one process.

    python docs/experiments/dtype_sweep_ab.py [--repeats 5]

bench_indicator measures one dtype per process, and on a 2-vCPU machine processes run up to
20% apart; this measures the two dtypes side by side, both the batched sweep (16 images x
17 t, one ``sds_gradient`` call) and the reference's loop (one call per t per image). Prints
the median seconds of each (docs/benchmarks.md, "A bfloat16 teacher on CPU"). The two sides are
bench_indicator's own (``workload``, ``sides``).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from bench_indicator import sides, workload  # noqa: E402

from sdd.teachers import load_teacher  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    runs = {}  # dtype -> (batched, loop)
    for dtype in (torch.float32, torch.bfloat16):
        teacher = load_teacher(None, dtype=dtype)
        runs[dtype] = sides(teacher, *workload(teacher))

    for index, name in enumerate(("batched", "loop")):
        for dtype in runs:  # warm-up
            runs[dtype][index]()
        times: dict[torch.dtype, list[float]] = {dtype: [] for dtype in runs}
        for _ in range(args.repeats):
            for dtype in runs:
                start = time.perf_counter()
                runs[dtype][index]()
                times[dtype].append(time.perf_counter() - start)
        medians = {dtype: statistics.median(ts) for dtype, ts in times.items()}
        print(f"{name}: " + ", ".join(f"{str(d).removeprefix('torch.')} {s:.3f} s" for d, s in medians.items())
              + f", bfloat16 speed-up {medians[torch.float32] / medians[torch.bfloat16]:.2f}x", flush=True)


if __name__ == "__main__":
    main()
