"""Indicator sweep, 16 images x 17 timesteps x 1 prompt: this project's batched
``sds_gradient`` (one batched sweep, chunked to ``--max-batch`` rows) against the reference
implementation's loop (one teacher call per timestep per image), same teacher, same math.

    python benchmarks/bench_indicator.py [--device cuda] [--threads 2] [--max-batch 64] [--dtype bfloat16] [--profile]

Target: >= 5x. Both sides compute latent and image-space gradients (the indicator maps).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402
from common import cuda_sync, median_seconds, parser, report, setup, teacher_dtype  # noqa: E402

from sdd.domains.shapes.render import generate  # noqa: E402
from sdd.guidance import sds_gradient  # noqa: E402
from sdd.io.images import to_tensor_range  # noqa: E402
from sdd.teachers import load_teacher  # noqa: E402
from sdd.teachers.precision import dtype_name  # noqa: E402


TIMESTEPS = list(range(100, 901, 50))  # 17


def workload(teacher, n_images: int = 16):
    """The sweep's images (on the teacher's device) and prompt conditioning."""
    images = to_tensor_range(generate(n_images, seed=3).images).to(teacher.device)
    return images, teacher.embed(["a red object"])


def sides(teacher, images, cond, max_batch: int | None = None):
    """(batched, loop): this project's one batched sweep, and the reference's loop (for each
    t, for each image, one CFG teacher call). Same teacher, same math."""

    def batched():
        sds_gradient(teacher, images, cond, TIMESTEPS, guidance_scale=3.0, seed=0, max_batch=max_batch)

    def loop():
        for t in TIMESTEPS:
            for i in range(len(images)):
                sds_gradient(teacher, images[i : i + 1], cond, [t], guidance_scale=3.0, seed=0)

    return batched, loop


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--images", type=int, default=16)
    p.add_argument("--max-batch", type=int, default=None, help="rows per teacher call (default: sdd.batching.resolve_max_batch)")
    p.add_argument("--profile", action="store_true", help="also print torch.profiler's top ops of one batched sweep")
    args = p.parse_args()
    setup(args)
    teacher = load_teacher(None, device=torch.device(args.device), dtype=teacher_dtype(args.dtype))
    images, cond = workload(teacher, args.images)
    batched, loop = sides(teacher, images, cond, args.max_batch)
    sync = cuda_sync(args.device)

    if args.profile:
        from torch.profiler import ProfilerActivity, profile

        batched()
        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if args.device.startswith("cuda") else [])
        with profile(activities=activities) as prof:
            batched()
            sync()
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))

    evaluations = len(images) * len(TIMESTEPS)
    t_batched = median_seconds(batched, args.repeats, args.warmup, sync)
    t_loop = median_seconds(loop, args.repeats, args.warmup, sync)
    report("bench_indicator", {
        "evaluations": evaluations, "device": args.device, "dtype": dtype_name(teacher.dtype), "threads": torch.get_num_threads(),
        "batched_s": round(t_batched, 3), "loop_s": round(t_loop, 3),
        "batched_evals_per_s": round(evaluations / t_batched, 1), "loop_evals_per_s": round(evaluations / t_loop, 1),
        "speedup": round(t_loop / t_batched, 2),
    }, args)


if __name__ == "__main__":
    main()
