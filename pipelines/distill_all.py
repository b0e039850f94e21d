"""Job 2 — the main job: select timesteps, then distill one manipulator per prompt in parallel.

    python pipelines/distill_all.py                      # shapes world, six prompts, local Ray
    python pipelines/distill_all.py --config job.yaml    # validated before any Ray work
    ray job submit --working-dir . -- python pipelines/distill_all.py --config job.yaml

Ray Tune runs one trial per pack of prompts (``distill.pack``; 1 = one per prompt), at most
``distill.max_concurrent_trials`` at once. Each trial fits a Ray Train ``TorchTrainer`` whose
worker runs ``sdd.distill`` and reports a checkpoint every ``distill.checkpoint_every`` steps
to the run's storage (local or ``s3://``); ``FailureConfig`` restarts a failed worker from the
latest one. Finished manipulators go to ``<run_dir>/manipulators/``. Re-running with the same
run directory resumes: prompts in the registry are skipped, an interrupted pack continues
from its latest checkpoint (its Train run has a stable name).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import ray
from ray import train, tune
from ray.train.torch import TorchTrainer, get_device

from pipelines.common import add_job_arguments, connect, job_config, log, ray_storage
from pipelines.select_timesteps import select_timesteps
from sdd.artifacts import slugify
from sdd.config import JobConfig
from sdd.distill import uses_selection
from sdd.runs import RunDir, load_run_teacher, make_distiller, packs, save_pack, write_before_after

STATE_FILE = "state.safetensors"
# Train V2 gives a worker group 60 s to start, then fails the attempt and retries; in Ray 2.60
# the placement group of the failed attempt can outlive it, and a full cluster then deadlocks.
# A worker waiting for another trial to free its CPU/GPU, or importing torch on a busy node,
# easily takes longer, so trials wait (a user's own setting wins).
WORKER_GROUP_START_TIMEOUT_S = "1800"
# A trial only drives its TorchTrainer; the Train worker holds the CPUs/GPUs. Any CPU reserved
# for the trial is missing for workers (with 0.1 CPU per trial, two 1-CPU workers no longer
# fit on 2 CPUs and the trials ran one after the other). Tune refuses an empty bundle, so the
# trial asks for a token of memory instead.
TRIAL_RESOURCES = {"cpu": 0, "memory": 2**20}


def train_worker(loop_config: dict) -> None:
    """Ray Train worker: resume from the latest checkpoint if any, train, report, register."""
    import torch
    from safetensors.torch import load_file, save_file

    config = JobConfig.model_validate_json(loop_config["config"])
    prompts, selected = loop_config["prompts"], loop_config["selected"]
    torch.set_num_threads(max(1, int(config.distill.resources.num_cpus)))
    if config.device == "auto":
        config = config.model_copy(update={"device": str(get_device())})
    teacher = load_run_teacher(config)
    distiller = make_distiller(config, teacher, prompts, selected)
    checkpoint = train.get_checkpoint()
    if checkpoint:
        with checkpoint.as_directory() as d:
            distiller.load_state_dict(load_file(str(Path(d) / STATE_FILE)))
        print(f"{prompts}: resumed from step {distiller.step}", flush=True)

    started = time.time()

    def report(dist, step, metrics):
        if step % config.distill.checkpoint_every and step != config.distill.steps:
            return
        print(f"{' | '.join(prompts)}: step {step}/{config.distill.steps}, {time.time() - started:.0f}s, "
              f"guidance norm {sum(metrics['grad_norm'].values()) / len(prompts):.3g}", flush=True)
        with tempfile.TemporaryDirectory() as d:
            save_file(dist.state_dict(), str(Path(d) / STATE_FILE))
            train.report(
                {"step": step, "mean_grad_norm": sum(metrics["grad_norm"].values()) / len(prompts),
                 "mean_fidelity_l2": sum(metrics["fidelity_l2"].values()) / len(prompts), "done": False},
                checkpoint=train.Checkpoint.from_directory(d),
            )

    distiller.run(callbacks=[report], progress=False)
    records = save_pack(config, RunDir(config.run_dir), teacher, distiller, time.time() - started)
    train.report({"step": distiller.step, "done": True,
                  **{f"editability/{r['prompt']}": (r["evaluation"] or {}).get("editability") for r in records}})


def distill_trial(trial_config: dict) -> None:
    """Tune trial: one TorchTrainer for one pack of prompts, with a stable run name."""
    from ray.tune.integration.ray_train import TuneReportCallback

    import os

    os.environ.setdefault("RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S", WORKER_GROUP_START_TIMEOUT_S)
    trial_config = trial_config["trial"]  # the grid-search point: config, prompts, selections
    config = JobConfig.model_validate_json(trial_config["config"])
    prompts = trial_config["prompts"]
    storage_path, filesystem = ray_storage(storage_url(config))
    resources = config.distill.resources
    trainer = TorchTrainer(
        train_worker,
        train_loop_config=trial_config,
        scaling_config=train.ScalingConfig(
            num_workers=1, use_gpu=resources.num_gpus > 0,
            resources_per_worker={"CPU": resources.num_cpus, **({"GPU": resources.num_gpus} if resources.num_gpus else {})},
        ),
        run_config=train.RunConfig(
            name=f"distill-{slugify(' | '.join(prompts))}",
            storage_path=storage_path, storage_filesystem=filesystem,
            callbacks=[TuneReportCallback()],
            failure_config=train.FailureConfig(max_failures=config.distill.max_failures),
            checkpoint_config=train.CheckpointConfig(num_to_keep=2),
        ),
    )
    trainer.fit()


CREDENTIAL_VARS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN")


def keep_credentials_out_of_trial_runtime_envs() -> None:
    """Ray Tune copies the driver's AWS credentials into every trial actor's ``runtime_env``
    env_vars, and Ray's runtime-env agent logs each runtime env in plain text
    (``logs/runtime_env_agent.log`` on every node): the secret key ends up in cluster logs.
    Nodes get S3 access the way clusters should, from their own environment (instance
    profile, IRSA, or the variables the nodes were started with), so the copy is dropped.
    tests/pipelines/test_integrity.py greps a real run's logs for the secret."""
    from ray.tune.execution import class_cache

    propagated = getattr(class_cache, "ENV_VARS_TO_PROPAGATE", None)
    if isinstance(propagated, set):
        propagated.difference_update(CREDENTIAL_VARS)


def storage_url(config: JobConfig) -> str:
    return config.storage_path or f"{config.run_dir.rstrip('/')}/ray"


def distill_all(config: JobConfig) -> list[dict]:
    """The job as a function; returns the summary records (also written to summary.json)."""
    started = time.time()
    run = RunDir(config.run_dir)
    run.write_config(config)
    selected = select_timesteps(config) if uses_selection(config.distill.timestep_policy) else {}
    todo = [p for p in config.prompts if not run.registry.has(p)]
    for p in config.prompts:
        if p not in todo:
            log(f"{p!r}: already in the registry, skipped")
    if todo:
        payload = config.model_dump_json()
        trials = [{"config": payload, "prompts": pack, "selected": {p: selected[p] for p in pack if p in selected}}
                  for pack in packs(todo, config.distill.pack)]
        storage_path, filesystem = ray_storage(storage_url(config))
        keep_credentials_out_of_trial_runtime_envs()
        tuner = tune.Tuner(
            tune.with_resources(distill_trial, TRIAL_RESOURCES),
            param_space={"trial": tune.grid_search(trials)},
            tune_config=tune.TuneConfig(max_concurrent_trials=config.distill.max_concurrent_trials),
            run_config=tune.RunConfig(name=f"tune-{int(time.time())}", storage_path=storage_path,
                                      storage_filesystem=filesystem, verbose=1),
        )
        log(f"distilling {len(todo)} prompts in {len(trials)} trials, "
            f"{config.distill.max_concurrent_trials} at a time")
        results = tuner.fit()
        failed = [r for r in results if r.error]
        if failed:
            raise RuntimeError(f"{len(failed)} distillation trials failed: {[str(r.error)[:200] for r in failed]}")
    records = summary_records(config, run)
    grid = write_before_after(config, run)
    if grid:
        log(f"before/after grid: {grid}")
    run.write_json({"records": records, "wall_seconds": round(time.time() - started, 1)}, "run.json")
    run.write_json(records, "summary.json")
    return records


def summary_records(config: JobConfig, run: RunDir) -> list[dict]:
    by_prompt = {m["prompt"]: m for m in run.registry.list()}
    records = []
    for p in config.prompts:
        m = by_prompt.get(p)
        if m:
            records.append({"prompt": p, "slug": m["slug"], "timesteps": m["timesteps"], **m["metrics"]})
    return records


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_job_arguments(parser)
    args = parser.parse_args(argv)
    config = job_config(args)
    connect(args.address)
    from sdd.cli import print_summary

    started = time.time()
    records = distill_all(config)
    print_summary(records)
    log(f"distill_all finished in {time.time() - started:.1f}s; registry: {RunDir(config.run_dir).registry.url}")


if __name__ == "__main__":
    # Run through the package, not as __main__: functions shipped to Ray workers are then
    # found by import there (pickling __main__'s lru_cache'd helpers by reference fails).
    from pipelines.distill_all import main as package_main

    sys.exit(package_main())
