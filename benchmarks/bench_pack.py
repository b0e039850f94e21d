"""Packing: six manipulators trained together on one teacher (each teacher call carries all
six prompts) against six separate runs, each with its own teacher.

    python benchmarks/bench_pack.py [--steps 10] [--device cuda] [--dtype bfloat16]

Each side runs in a fresh subprocess so its peak resident memory (ru_maxrss) is its own.
Reported: prompt-steps per second (packed: 6 per step; separate: 1 per step of each run;
target packed/separate >= 1x) and peak memory of the packed run against one separate run
(target <= 1.5x; six separate runs at once hold six teachers, 6x one run).
"""

from __future__ import annotations

import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import parser, report, setup  # noqa: E402

PROMPTS = [f"a {c} object" for c in ("red", "green", "blue", "yellow", "purple", "white")]


def worker(prompts: list[str], steps: int, repeats: int, warmup: int, device: str, dtype: str | None) -> dict:
    """Train ``prompts`` packed for warmup + repeats x steps; median seconds per step."""
    import torch

    from sdd.config import parse_config
    from sdd.runs import make_distiller
    from sdd.teachers import load_teacher

    config = parse_config({"prompts": prompts, "distill": {"timestep_policy": "random:300,500"}})
    teacher = load_teacher(None, device=torch.device(device), dtype=getattr(torch, dtype) if dtype else None)
    distiller = make_distiller(config, teacher, prompts, {})
    for _ in range(warmup):
        distiller.train_step()
    per_step = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(steps):
            distiller.train_step()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        per_step.append((time.perf_counter() - start) / steps)
    return {"seconds_per_step": statistics.median(per_step),
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def run_worker(prompts: list[str], args) -> dict:
    cmd = [sys.executable, __file__, "--worker", json.dumps(prompts), "--steps", str(args.steps),
           "--repeats", str(args.repeats), "--warmup", str(args.warmup), "--device", args.device]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    if args.dtype:
        cmd += ["--dtype", args.dtype]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--steps", type=int, default=5, help="training steps per timed repetition")
    p.add_argument("--worker", default=None, help=argparse_hidden())
    args = p.parse_args()
    setup(args)
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker), args.steps, args.repeats, args.warmup, args.device, args.dtype)))
        return
    packed = run_worker(PROMPTS, args)
    single = [run_worker([prompt], args) for prompt in PROMPTS]
    separate_step = sum(r["seconds_per_step"] for r in single)  # one step of each of the six runs
    one_run_mb = statistics.median(r["peak_rss_mb"] for r in single)
    report("bench_pack", {
        "device": args.device, "dtype": args.dtype or "default", "prompts": len(PROMPTS),
        "packed_prompt_steps_per_s": round(len(PROMPTS) / packed["seconds_per_step"], 2),
        "separate_prompt_steps_per_s": round(len(PROMPTS) / separate_step, 2),
        "steps_ratio": round(separate_step / packed["seconds_per_step"], 2),
        "packed_peak_mb": round(packed["peak_rss_mb"]), "one_run_peak_mb": round(one_run_mb),
        "six_separate_runs_mb": round(6 * one_run_mb),
        "memory_ratio_vs_one_run": round(packed["peak_rss_mb"] / one_run_mb, 2),
    }, args)


def argparse_hidden() -> str:
    import argparse

    return argparse.SUPPRESS


if __name__ == "__main__":
    main()
