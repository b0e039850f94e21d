"""The select job on a local Ray against the same sweep in one process, and what sharing the
unconditional teacher rows between prompts saves.

    python benchmarks/bench_select.py [--prompts 6] [--threads 2] [--dtype bfloat16]

Workload: ``--prompts`` recolour prompts x 16 images x 17 timesteps x 4 noise draws (the
default ``select`` settings). Three sides, each timed the same way:

* ``per_prompt``: one process, ``sdd.runs.score_prompts`` for one prompt at a time (CFG's two
  rows per (image, t, draw) and prompt: 2P rows, the sweep before prompts shared rows);
* ``shared``: one process, all prompts in one ``score_prompts`` (P + 1 rows);
* ``ray``: ``select_timesteps`` with 2-image shards, 1 CPU per task, on a fresh local Ray
  started once and warmed up (its first sweep, not timed, loads the teacher in every worker).

Reported: (prompt, t, image, draw) evaluations per second. Target: Ray >= 80% of the single
process doing the same work (``shared``) on the same cores; ``shared_vs_per_prompt`` is the
sharing's own speedup, (2P) / (P + 1) in teacher rows.
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
    from sdd.runs import load_run_teacher, score_prompts, selection_images

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

    def per_prompt():
        for prompt in prompts:
            list(score_prompts(base, teacher, [prompt], images, ids))

    def shared():
        list(score_prompts(base, teacher, prompts, images, ids))

    t_per_prompt = median_seconds(per_prompt, args.repeats, args.warmup)
    t_local = median_seconds(shared, args.repeats, args.warmup)
    runs = iter(range(10_000))
    ray.init(num_cpus=torch.get_num_threads(), include_dashboard=False, log_to_driver=False)
    try:
        t_ray = median_seconds(lambda: select_timesteps(config(f"ray{next(runs)}")), args.repeats, args.warmup)
    finally:
        ray.shutdown()
        shutil.rmtree(work, ignore_errors=True)
    report("bench_select", {
        "evaluations": evaluations, "dtype": args.dtype or "default", "threads": torch.get_num_threads(),
        "per_prompt_evals_per_s": round(evaluations / t_per_prompt, 1),
        "local_evals_per_s": round(evaluations / t_local, 1), "ray_evals_per_s": round(evaluations / t_ray, 1),
        "ray_vs_local": round(t_local / t_ray, 3), "shared_vs_per_prompt": round(t_per_prompt / t_local, 3),
        "ray_vs_per_prompt": round(t_per_prompt / t_ray, 3),
        "teacher_rows_ratio": round(2 * len(prompts) / (len(prompts) + 1), 3),
    }, args)


if __name__ == "__main__":
    main()
