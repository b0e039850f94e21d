"""The indicator sweep with a float32 and a bfloat16 teacher, taking turns in one process.

    python docs/experiments/dtype_sweep_ab.py [--repeats 5]

bench_indicator measures one dtype per process, and on a 2-vCPU machine processes run up to
20% apart; this measures the two dtypes side by side, both the batched sweep (16 images x
17 t, one ``sds_gradient`` call) and the reference's loop (one call per t per image). Prints
the median seconds of each (README, "A bfloat16 teacher on CPU").
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from sdd.domains.shapes.render import generate
from sdd.guidance import sds_gradient
from sdd.io.images import to_tensor_range
from sdd.teachers import load_teacher

TIMESTEPS = list(range(100, 901, 50))  # 17, as bench_indicator


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    images = to_tensor_range(generate(16, seed=3).images)
    teachers = {dtype: load_teacher(None, dtype=dtype) for dtype in (torch.float32, torch.bfloat16)}
    conds = {dtype: teacher.embed(["a red object"]) for dtype, teacher in teachers.items()}

    def batched(dtype):
        sds_gradient(teachers[dtype], images, conds[dtype], TIMESTEPS, guidance_scale=3.0, seed=0)

    def loop(dtype):
        for t in TIMESTEPS:
            for i in range(len(images)):
                sds_gradient(teachers[dtype], images[i : i + 1], conds[dtype], [t], guidance_scale=3.0, seed=0)

    for name, run in (("batched", batched), ("loop", loop)):
        for dtype in teachers:  # warm-up
            run(dtype)
        times: dict[torch.dtype, list[float]] = {dtype: [] for dtype in teachers}
        for _ in range(args.repeats):
            for dtype in teachers:
                start = time.perf_counter()
                run(dtype)
                times[dtype].append(time.perf_counter() - start)
        medians = {dtype: statistics.median(ts) for dtype, ts in times.items()}
        print(f"{name}: " + ", ".join(f"{str(d).removeprefix('torch.')} {s:.3f} s" for d, s in medians.items())
              + f", bfloat16 speed-up {medians[torch.float32] / medians[torch.bfloat16]:.2f}x", flush=True)


if __name__ == "__main__":
    main()
