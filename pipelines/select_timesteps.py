"""Job 1 — select timesteps: Ray tasks over (group of prompts, shard of sample images).

    python pipelines/select_timesteps.py [--config job.yaml] [--run-dir URL] [--prompt P ...]
    ray job submit --working-dir . -- python pipelines/select_timesteps.py --config job.yaml

Every task scores its shard for each of its prompts at every t of the grid in batched
teacher calls, its prompts sharing CFG's unconditional rows, and returns a table; the driver
gathers them into ``indicator_scores.parquet``, chooses timesteps per prompt
(``selected_timesteps.json``) and plots one figure per prompt. Prompts already scored in the
run directory are skipped. Task resources (``select.resources``) may be fractional; prompts
are grouped to fill the cluster's slots (``plan_tasks``).
"""

from __future__ import annotations

import argparse
import math
import sys
import time

import pandas as pd
import ray

from pipelines.common import add_job_arguments, connect, job_config, log
from sdd.config import JobConfig
from sdd.runs import RunDir, finish_selection, load_run_teacher, score_prompts, selection_images


@ray.remote
def score_shard(config_json: str, prompts: list[str], image_ids: list[int]) -> pd.DataFrame:
    """Indicator rows for some prompts on some of the sample images (ids index the full set);
    the prompts share the unconditional teacher rows."""
    import torch

    config = JobConfig.model_validate_json(config_json)
    torch.set_num_threads(max(1, int(config.select.resources.num_cpus)))
    teacher = load_run_teacher(config)
    images, _ = selection_images(config, teacher)
    return pd.concat([table for _, table in score_prompts(config, teacher, prompts, images[image_ids], image_ids)],
                     ignore_index=True)


def plan_tasks(prompts: list[str], images: int, shard_images: int, slots: int) -> list[tuple[list[str], list[int]]]:
    """(prompt group, image shard) per task.

    A task of g prompts makes g + 1 teacher rows per (image, t, draw), sharing the
    unconditional one, so fewer, larger groups do less work; more groups fill more slots.
    Chosen: the number of groups that minimises the estimated makespan, rounds of tasks over
    the cluster's slots times rows per task (the fewest groups on a tie)."""
    if not prompts:
        return []
    ids = list(range(images))
    shards = [ids[i : i + shard_images] for i in range(0, len(ids), shard_images)]
    slots = max(1, slots)

    def makespan(groups: int) -> int:
        return math.ceil(groups * len(shards) / slots) * (math.ceil(len(prompts) / groups) + 1)

    size = math.ceil(len(prompts) / min(range(1, len(prompts) + 1), key=makespan))
    return [(prompts[i : i + size], shard) for i in range(0, len(prompts), size) for shard in shards]


def task_slots(num_cpus: float, num_gpus: float) -> int:
    """Tasks of the given resources the cluster runs at once."""
    resources = ray.cluster_resources()
    slots = [resources.get("CPU", 0) / num_cpus] if num_cpus > 0 else []
    if num_gpus > 0:
        slots.append(resources.get("GPU", 0) / num_gpus)
    return max(1, int(min(slots))) if slots else 1


def select_timesteps(config: JobConfig) -> dict:
    """The job as a function: score what is missing, select, write; returns the selections."""
    run = RunDir(config.run_dir)
    run.write_config(config)
    scores = run.scores()
    done = set(scores["prompt"]) if len(scores) else set()
    todo = [p for p in config.prompts if p not in done]
    for p in config.prompts:
        if p in done:
            log(f"{p!r}: already scored in {run.url}, skipped")
    if todo:
        s = config.select
        plan = plan_tasks(todo, s.images, s.shard_images, task_slots(s.resources.num_cpus, s.resources.num_gpus))
        payload = config.model_dump_json()
        task = score_shard.options(num_cpus=s.resources.num_cpus, num_gpus=s.resources.num_gpus)
        pending = {task.remote(payload, group, shard): group for group, shard in plan}
        remaining = {p: sum(p in group for group, _ in plan) for p in todo}
        tables, started = [], time.time()
        from tqdm import tqdm

        with tqdm(total=len(pending), desc="select: (prompts, image shard) tasks") as bar:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                group = pending.pop(ready[0])
                tables.append(ray.get(ready[0]))
                bar.update()
                for prompt in group:
                    remaining[prompt] -= 1
                    if remaining[prompt] == 0:
                        log(f"{prompt!r}: scored {s.images} images x {len(s.grid())} timesteps "
                            f"({time.time() - started:.1f}s since start)")
        new = pd.concat(tables, ignore_index=True).sort_values(["prompt", "image_id", "t"], kind="stable")
        scores = pd.concat([scores, new], ignore_index=True) if len(scores) else new.reset_index(drop=True)
    selected = finish_selection(config, run, scores)
    for p in config.prompts:
        log(f"{p!r}: selected t = {selected[p]['timesteps']} ({selected[p]['indicator']}, {selected[p]['policy']})")
    return selected


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_job_arguments(parser)
    args = parser.parse_args(argv)
    config = job_config(args)  # validated before any Ray work
    connect(args.address)
    select_timesteps(config)


if __name__ == "__main__":
    # Run through the package, not as __main__: functions shipped to Ray workers are then
    # found by import there (pickling __main__'s lru_cache'd helpers by reference fails).
    from pipelines.select_timesteps import main as package_main

    sys.exit(package_main())
