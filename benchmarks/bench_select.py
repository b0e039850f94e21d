"""The select job on a local Ray against the same sweep in one process.

    python benchmarks/bench_select.py [--prompts 6] [--threads 2] [--dtype bfloat16]

Workload: ``--prompts`` recolour prompts x 16 images x 17 timesteps x 4 noise draws (the
default ``select`` settings). The single-process side is ``sdd.runs.score_prompt`` (the
batched ``sds_gradient`` sweep, what bench_indicator times) for each prompt with all
threads; the Ray side is ``select_timesteps`` with 2-image shards, 1 CPU per task, on a
fresh local Ray started once and warmed up (its first sweep, not timed, loads the teacher
in every worker). Reported: (prompt, t, image, draw) evaluations per second. Target: Ray
>= 80% of the single process on the same cores.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import median_seconds, parser, report, setup  # noqa: E402

COLORS = ("red", "green", "blue", "yellow", "purple", "white")


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--prompts", type=int, default=6)
    p.add_argument("--shard-images", type=int, default=2)
    args = p.parse_args()
    setup(args)
    import ray
    import torch

    from pipelines.select_timesteps import select_timesteps
    from sdd.config import parse_config
    from sdd.runs import load_run_teacher, score_prompt, selection_images

    work = Path(tempfile.mkdtemp(prefix="bench_select_"))
    prompts = [f"a {c} object" for c in COLORS[: args.prompts]]

    def config(run: str):
        return parse_config({"run_dir": str(work / run), "prompts": prompts, "dtype": args.dtype,
                             "select": {"shard_images": args.shard_images}})

    base = config("local")
    s = base.select
    evaluations = len(prompts) * s.images * len(s.grid()) * s.draws
    teacher = load_run_teacher(base)
    images, ids = selection_images(base, teacher)

    def local():
        for prompt in prompts:
            score_prompt(base, teacher, prompt, images, ids)

    t_local = median_seconds(local, args.repeats, args.warmup)
    runs = iter(range(10_000))
    ray.init(num_cpus=torch.get_num_threads(), include_dashboard=False, log_to_driver=False)
    try:
        t_ray = median_seconds(lambda: select_timesteps(config(f"ray{next(runs)}")), args.repeats, args.warmup)
    finally:
        ray.shutdown()
        shutil.rmtree(work, ignore_errors=True)
    report("bench_select", {
        "evaluations": evaluations, "dtype": args.dtype or "default", "threads": torch.get_num_threads(),
        "local_evals_per_s": round(evaluations / t_local, 1), "ray_evals_per_s": round(evaluations / t_ray, 1),
        "ray_vs_local": round(t_local / t_ray, 3),
    }, args)


if __name__ == "__main__":
    main()
