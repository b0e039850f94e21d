"""A run directory and the per-prompt units of work that fill it.

Layout (any fsspec URL):

    <run_dir>/config.yaml                  the validated config the run used
    <run_dir>/indicator_scores.parquet     prompt, t, image_id, every indicator, grad_norm
    <run_dir>/selected_timesteps.json      prompt -> timesteps, scores, indicator, policy
    <run_dir>/plots/indicator_<slug>.png   one indicator-curve figure per prompt
    <run_dir>/manipulators/<slug>/         the registry (model.safetensors + manifest.json)
    <run_dir>/summary.json                 one record per prompt: timesteps, metrics, eval, wall time

The units (``score_prompts``, ``distill_pack``, ``evaluate_manipulator``) are plain functions:
``sdd select/distill`` call them in a loop, the Ray jobs call them inside tasks and trainers.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import torch
import yaml

from sdd.artifacts import Registry, slugify
from sdd.batching import in_device_sized_calls
from sdd.config import JobConfig
from sdd.distill import DistillConfig, Distiller
from sdd.io.storage import filesystem, join, write_bytes_atomic
from sdd.plots import indicator_curves_png
from sdd.selection import indicator_sweeps, select_timesteps
from sdd.sources import make_sources
from sdd.teachers.base import Teacher
from sdd.teachers.precision import dtype_name


class RunDir:
    def __init__(self, url: str):
        self.url = url.rstrip("/")
        self.registry = Registry(self.url)

    def path(self, *parts: str) -> str:
        return join(self.url, *parts)

    def exists(self, *parts: str) -> bool:
        fs, p = filesystem(self.path(*parts))
        return fs.exists(p)

    def read_bytes(self, *parts: str) -> bytes:
        fs, p = filesystem(self.path(*parts))
        with fs.open(p, "rb") as f:
            return f.read()

    def write_bytes(self, data: bytes, *parts: str) -> None:
        write_bytes_atomic(self.path(*parts), data)

    def read_json(self, *parts: str, default=None):
        return json.loads(self.read_bytes(*parts)) if self.exists(*parts) else default

    def write_json(self, obj, *parts: str) -> None:
        self.write_bytes(json.dumps(obj, indent=2, default=str).encode(), *parts)

    def write_config(self, config: JobConfig) -> None:
        self.write_bytes(yaml.safe_dump(config.model_dump(), sort_keys=False).encode(), "config.yaml")

    # indicator scores -------------------------------------------------------------------
    def scores(self) -> pd.DataFrame:
        if not self.exists("indicator_scores.parquet"):
            return pd.DataFrame()
        return pq.read_table(io.BytesIO(self.read_bytes("indicator_scores.parquet"))).to_pandas()

    def write_table(self, table: pa.Table, *parts: str) -> None:
        buf = io.BytesIO()
        pq.write_table(table, buf)
        self.write_bytes(buf.getvalue(), *parts)

    def write_scores(self, scores: pd.DataFrame) -> None:
        self.write_table(pa.Table.from_pandas(scores, preserve_index=False), "indicator_scores.parquet")

    def selected(self) -> dict:
        return self.read_json("selected_timesteps.json", default={})


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


_TEACHERS: dict[tuple, Teacher] = {}


def load_run_teacher(config: JobConfig) -> Teacher:
    """The run's teacher, loaded once per process (Ray reuses worker processes across tasks)."""
    from sdd.teachers import load_teacher

    device = resolve_device(config.device)
    key = (config.teacher, str(device), config.dtype)
    if key not in _TEACHERS:
        dtype = getattr(torch, config.dtype) if config.dtype else None
        _TEACHERS[key] = load_teacher(config.teacher, device=device, dtype=dtype)
    return _TEACHERS[key]


def selection_images(config: JobConfig, teacher: Teacher) -> tuple[torch.Tensor, list[int]]:
    """The sample images every prompt is scored on (same for all prompts: comparable curves)."""
    sources = make_sources(config.sources, teacher.image_size, config.image_column)
    rng = np.random.default_rng([config.select.seed, 7919])
    images = sources(rng, config.select.images)
    return images, list(range(config.select.images))


def score_prompts(config: JobConfig, teacher: Teacher, prompts: list[str], images: torch.Tensor,
                  image_ids: list[int]) -> Iterator[tuple[str, pd.DataFrame]]:
    """Each prompt's indicator table as it is scored; the prompts share the unconditional
    teacher rows (``sdd.selection.sweep_gradients``)."""
    s = config.select
    return indicator_sweeps(teacher, images, list(prompts), s.grid(), image_ids=image_ids, draws=s.draws,
                            guidance_scale=s.guidance_scale, weighting=s.weighting, seed=s.seed, max_batch=s.max_batch)


def finish_selection(config: JobConfig, run: RunDir, scores: pd.DataFrame) -> dict:
    """Write scores, selections and one plot per prompt; returns the selections."""
    run.write_scores(scores)
    selected = select_timesteps(scores, config.select.indicator, config.select.policy)
    run.write_json(selected, "selected_timesteps.json")
    for prompt, choice in selected.items():
        run.write_bytes(indicator_curves_png(scores, prompt, choice["timesteps"]), "plots", f"indicator_{slugify(prompt)}.png")
    return selected


def run_selection(config: JobConfig, run: RunDir, teacher: Teacher, log=print) -> dict:
    """Score every prompt not already scored in the run directory, then select."""
    scores = run.scores()
    done = set(scores["prompt"]) if len(scores) else set()
    todo = [p for p in config.prompts if p not in done]
    if todo:
        images, ids = selection_images(config, teacher)
        started = time.time()
        for prompt, table in score_prompts(config, teacher, todo, images, ids):
            scores = pd.concat([scores, table], ignore_index=True) if len(scores) else table
            log(f"scored {prompt!r}: {len(table)} (image, t) rows, {time.time() - started:.1f}s since start")
    else:
        log(f"all {len(config.prompts)} prompts already scored in {run.url}")
    return finish_selection(config, run, scores)


def distill_config(config: JobConfig, prompts: list[str], selected: dict) -> DistillConfig:
    return config.distill.recipe(prompts, {p: selected[p]["timesteps"] for p in prompts if p in selected})


def make_distiller(config: JobConfig, teacher: Teacher, prompts: list[str], selected: dict) -> Distiller:
    sources = make_sources(config.sources, teacher.image_size, config.image_column)
    return Distiller(teacher, sources, distill_config(config, prompts, selected))


def evaluate_manipulator(config: JobConfig, manipulator: torch.nn.Module, prompt: str) -> dict | None:
    """Edit quality on held-out shapes images; None where no judge exists (other domains)."""
    if config.sources != "shapes" or config.teacher != "shapes":
        return None
    from sdd.domains.shapes.edits import held_out_sources, target_of
    from sdd.domains.shapes.judge import ShapesJudge
    from sdd.eval import evaluate

    sources = held_out_sources(config.eval.images, config.eval.seed)
    manipulator = manipulator.eval()
    report = evaluate(in_device_sized_calls(manipulator), sources, target_of(prompt), ShapesJudge.from_pretrained())
    return report.as_dict()


def save_pack(config: JobConfig, run: RunDir, teacher: Teacher, distiller: Distiller, seconds: float) -> list[dict]:
    """Evaluate each trained manipulator of a pack and put it in the registry."""
    records = []
    for prompt, manipulator in zip(distiller.config.prompts, distiller.manipulators):
        evaluation = evaluate_manipulator(config, manipulator, prompt)
        last = distiller.history[-1] if distiller.history else {}
        metrics = {
            "steps": distiller.step,
            "final_grad_norm": last.get("grad_norm", {}).get(prompt),
            "final_fidelity_l2": last.get("fidelity_l2", {}).get(prompt),
            "wall_seconds": round(seconds, 1),
            "evaluation": evaluation,
        }
        timesteps = distiller.config.selected_timesteps.get(prompt, [])
        manifest = run.registry.save(
            manipulator, prompt=prompt, timesteps=timesteps, teacher_id=teacher.id, metrics=metrics,
            extra={"timestep_policy": distiller.config.timestep_policy, "image_size": teacher.image_size,
                   "teacher_dtype": dtype_name(teacher.dtype),
                   "distill": distiller.config_dict()},
        )
        run.write_table(history_table(distiller.history, prompt), "history", f"{manifest['slug']}.parquet")
        records.append({"prompt": prompt, "slug": manifest["slug"], "timesteps": timesteps, **metrics})
    return records


def history_table(history: list[dict], prompt: str) -> pa.Table:
    """One prompt's training curve (step, guidance norm, fidelity L2, mean t): what the
    distillation notebook plots. A resumed run holds the steps since its resume."""
    return pa.table({
        "step": [h["step"] for h in history],
        "grad_norm": [h["grad_norm"][prompt] for h in history],
        "fidelity_l2": [h["fidelity_l2"][prompt] for h in history],
        "mean_t": [h["mean_t"] for h in history],
    })


def packs(prompts: list[str], size: int) -> list[list[str]]:
    return [prompts[i : i + size] for i in range(0, len(prompts), size)]


def write_before_after(config: JobConfig, run: RunDir, n: int = 12) -> str | None:
    """``plots/before_after.png``: the same ``n`` source images edited by every manipulator
    in the run's registry (one row each), for a look at what the numbers mean."""
    from sdd.io.images import from_tensor_range
    from sdd.plots import before_after_png

    manifests = [m for m in run.registry.list() if m["prompt"] in config.prompts]
    if not manifests:
        return None
    from sdd.artifacts import trained_image_size

    x = make_sources(config.sources, trained_image_size(manifests), config.image_column)(np.random.default_rng(config.eval.seed), n)
    rows = {}
    for m in manifests:
        rows[m["prompt"]] = from_tensor_range(run.registry.load(m["slug"]).edit(x))
    run.write_bytes(before_after_png(from_tensor_range(x), rows), "plots", "before_after.png")
    return run.path("plots", "before_after.png")
