"""Job 1 — select timesteps: Ray tasks over (prompt, shard of sample images).

    python pipelines/select_timesteps.py [--config job.yaml] [--run-dir URL] [--prompt P ...]
    ray job submit --working-dir . -- python pipelines/select_timesteps.py --config job.yaml

Every task scores its shard for every t of the grid in batched teacher calls and returns a
table; the driver gathers them into ``indicator_scores.parquet``, chooses timesteps per
prompt (``selected_timesteps.json``) and plots one figure per prompt. Prompts already scored
in the run directory are skipped. Task resources (``select.resources``) may be fractional.
"""

from __future__ import annotations

import argparse
import sys
import time

import pandas as pd
import ray

from pipelines.common import add_job_arguments, connect, job_config, log
from sdd.config import JobConfig
from sdd.runs import RunDir, finish_selection, load_run_teacher, score_prompt, selection_images


@ray.remote
def score_shard(config_json: str, prompt: str, image_ids: list[int]) -> pd.DataFrame:
    """Indicator rows for one prompt on some of the sample images (ids index the full set)."""
    import torch

    config = JobConfig.model_validate_json(config_json)
    torch.set_num_threads(max(1, int(config.select.resources.num_cpus)))
    teacher = load_run_teacher(config)
    images, _ = selection_images(config, teacher)
    return score_prompt(config, teacher, prompt, images[image_ids], image_ids)


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
        ids = list(range(s.images))
        shards = [ids[i : i + s.shard_images] for i in range(0, len(ids), s.shard_images)]
        payload = config.model_dump_json()
        task = score_shard.options(num_cpus=s.resources.num_cpus, num_gpus=s.resources.num_gpus)
        pending = {task.remote(payload, p, shard): p for p in todo for shard in shards}
        remaining = {p: len(shards) for p in todo}
        tables, started = [], time.time()
        from tqdm import tqdm

        with tqdm(total=len(pending), desc="select: (prompt, shard) tasks") as bar:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                prompt = pending.pop(ready[0])
                tables.append(ray.get(ready[0]))
                bar.update()
                remaining[prompt] -= 1
                if remaining[prompt] == 0:
                    log(f"{prompt!r}: scored {len(ids)} images x {len(s.grid())} timesteps "
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
