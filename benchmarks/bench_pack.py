"""Packing: six manipulators trained together on one teacher (each teacher call carries all
six prompts) against six separate runs, each with its own teacher.

    python benchmarks/bench_pack.py [--steps 10] [--device cuda] [--dtype bfloat16]

Speed is measured in one process, side by side: the packed distiller and six one-prompt
distillers (on one loaded teacher: the same calls a separate run makes) take turns, a
repetition of ``--steps`` packed steps, then ``--steps`` steps of each one-prompt distiller,
so both sides see the same machine state (separate processes on this 2-vCPU machine run up
to 20% apart). Reported: prompt-steps per second (packed: 6 per step; separate: 1 per step of
each run) and the median of the repetitions' ratios; target packed/separate >= 1x.
Memory: peak resident memory (ru_maxrss) of a packed run and of a one-prompt run, each in a
fresh subprocess; target packed <= 1.5x of one run (six separate runs at once hold six
teachers, 6x one run).
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

from common import parser, report, setup, teacher_dtype  # noqa: E402

PROMPTS = [f"a {c} object" for c in ("red", "green", "blue", "yellow", "purple", "white")]


def distiller(prompts: list[str], teacher):
    from sdd.config import parse_config
    from sdd.runs import make_distiller

    config = parse_config({"prompts": prompts, "distill": {"timestep_policy": "random:300,500"}})
    return make_distiller(config, teacher, prompts, {})


def load(device: str, dtype: str | None):
    import torch

    from sdd.teachers import load_teacher

    return load_teacher(None, device=torch.device(device), dtype=teacher_dtype(dtype))


def worker(prompts: list[str], steps: int, device: str, dtype: str | None) -> dict:
    """Peak resident memory of one run training ``prompts`` packed, warm-up step included."""
    trainer = distiller(prompts, load(device, dtype))
    for _ in range(1 + steps):
        trainer.train_step()
    return {"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def interleaved_speed(steps: int, repeats: int, warmup: int, device: str, dtype: str | None) -> dict:
    """Seconds per step of the packed distiller and of the six one-prompt ones together, taking
    turns in this process; and the median of the repetitions' separate/packed ratios."""
    import torch

    teacher = load(device, dtype)
    packed, singles = distiller(PROMPTS, teacher), [distiller([p], teacher) for p in PROMPTS]
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)

    def seconds(trainers) -> float:
        start = time.perf_counter()
        for trainer in trainers:
            for _ in range(steps):
                trainer.train_step()
        sync()
        return (time.perf_counter() - start) / steps

    for _ in range(warmup):
        seconds([packed]), seconds(singles)
    rounds = [(seconds([packed]), seconds(singles)) for _ in range(repeats)]
    return {"packed_s": statistics.median(p for p, _ in rounds), "separate_s": statistics.median(s for _, s in rounds),
            "ratio": statistics.median(s / p for p, s in rounds)}


def run_worker(prompts: list[str], args) -> dict:
    cmd = [sys.executable, __file__, "--worker", json.dumps(prompts), "--steps", str(args.steps), "--device", args.device]
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
        print(json.dumps(worker(json.loads(args.worker), args.steps, args.device, args.dtype)))
        return
    packed_mb = run_worker(PROMPTS, args)["peak_rss_mb"]
    one_run_mb = run_worker(PROMPTS[:1], args)["peak_rss_mb"]
    speed = interleaved_speed(args.steps, args.repeats, args.warmup, args.device, args.dtype)
    report("bench_pack", {
        "device": args.device, "dtype": args.dtype or "default", "prompts": len(PROMPTS),
        "packed_prompt_steps_per_s": round(len(PROMPTS) / speed["packed_s"], 2),
        "separate_prompt_steps_per_s": round(len(PROMPTS) / speed["separate_s"], 2),
        "steps_ratio": round(speed["ratio"], 2),
        "packed_peak_mb": round(packed_mb), "one_run_peak_mb": round(one_run_mb),
        "six_separate_runs_mb": round(6 * one_run_mb),
        "memory_ratio_vs_one_run": round(packed_mb / one_run_mb, 2),
    }, args)


def argparse_hidden() -> str:
    import argparse

    return argparse.SUPPRESS


if __name__ == "__main__":
    main()
