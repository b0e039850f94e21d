"""The method's claims, measured on the shapes world (``sdd study ...``).

* ``fixed_t_sweep`` — one manipulator per fixed timestep on a grid; edit quality per t. This
  is the ground truth an indicator is judged against.
* ``indicator_validation`` — for each indicator, the Spearman correlation between its mean
  score and edit quality over t, and whether its argmin lands in the top two t by quality.
* ``policy_comparison`` — the paper's claim at one step budget and seed: the selected
  timesteps against ``random:20,980`` and against the worst timestep of the sweep.
* ``sdedit_sweep`` — SDEdit at several strengths through the same evaluation.

Edit quality, one number per run: editability x the mean preservation of the untouched
attributes (1.0 = every image edited, nothing else changed). Background PSNR is reported
beside it, not folded in.
"""

from __future__ import annotations

import time
from dataclasses import replace

import pandas as pd

from sdd import indicator
from sdd.distill import DistillConfig, Distiller
from sdd.domains.shapes.edits import held_out_sources, target_of, training_sources
from sdd.domains.shapes.judge import ShapesJudge
from sdd.eval.metrics import EditReport, evaluate
from sdd.eval.sdedit import SDEditEditor
from sdd.teachers.base import Teacher


def edit_quality(report: EditReport) -> float:
    keep = report.preservation.values()
    return report.editability * (sum(keep) / len(keep) if keep else 1.0)


def report_row(report: EditReport, **labels) -> dict:
    return {
        **labels, "quality": edit_quality(report), "editability": report.editability,
        **{f"keep_{k}": v for k, v in report.preservation.items()},
        "background_psnr": report.background_psnr, "seconds_per_image": report.seconds_per_image,
    }


def train_and_evaluate(teacher: Teacher, base: DistillConfig, judge: ShapesJudge, n_eval: int, eval_seed: int,
                       progress: bool = False, **changes) -> tuple[dict, Distiller]:
    """Distill ``base`` with ``changes`` applied (one prompt), evaluate on held-out images."""
    config = replace(base, **changes)
    started = time.time()
    distiller = Distiller(teacher, training_sources, config)
    distiller.run(progress=progress)
    (prompt,) = config.prompts
    report = evaluate(distiller.manipulators[0], held_out_sources(n_eval, eval_seed), target_of(prompt), judge)
    row = report_row(report, prompt=prompt, policy=config.timestep_policy, train_seconds=time.time() - started)
    return row, distiller


def fixed_t_sweep(teacher: Teacher, base: DistillConfig, grid: list[int], judge: ShapesJudge,
                  n_eval: int = 1000, eval_seed: int = 10_000, log=print) -> pd.DataFrame:
    rows = []
    for t in grid:
        row, _ = train_and_evaluate(teacher, base, judge, n_eval, eval_seed, timestep_policy=f"fixed:{t}")
        rows.append({"t": t, **row})
        log(f"{base.prompts[0]!r} fixed t={t}: quality {row['quality']:.3f} "
            f"(editability {row['editability']:.3f}, bg PSNR {row['background_psnr']:.1f} dB)")
    return pd.DataFrame(rows)


def indicator_validation(scores: pd.DataFrame, quality: pd.DataFrame) -> pd.DataFrame:
    """Per prompt and indicator: Spearman(score, quality) over the t both tables share, and
    whether the indicator's argmin is among the two best t by quality. A good indicator has
    a strongly negative correlation (low score = good edits)."""
    rows = []
    for prompt, q in quality.groupby("prompt"):
        q = q.set_index("t")["quality"]
        table = scores[(scores["prompt"] == prompt) & scores["t"].isin(q.index)]
        top_two = set(q.sort_values(ascending=False).index[:2])
        for name in indicator.INDICATORS:
            curve = indicator.indicator_curve(table, name)
            chosen = int(curve.idxmin())
            rows.append({
                "prompt": prompt, "indicator": name,
                "spearman_score_vs_quality": indicator.spearman(curve.values, q.reindex(curve.index).values),
                "argmin_t": chosen, "argmin_in_top_two": chosen in top_two,
                "best_t_by_quality": int(q.idxmax()),
            })
    return pd.DataFrame(rows)


def policy_comparison(teacher: Teacher, base: DistillConfig, selected: list[int], worst_t: int,
                      judge: ShapesJudge, n_eval: int = 1000, eval_seed: int = 10_000, log=print) -> pd.DataFrame:
    (prompt,) = base.prompts
    runs = {
        f"selected {selected}": dict(timestep_policy="selected", selected_timesteps={prompt: selected}),
        "random:20,980": dict(timestep_policy="random:20,980"),
        f"worst fixed:{worst_t}": dict(timestep_policy=f"fixed:{worst_t}"),
    }
    rows = []
    for label, changes in runs.items():
        row, _ = train_and_evaluate(teacher, base, judge, n_eval, eval_seed, **changes)
        rows.append({"run": label, **row})
        log(f"{prompt!r} {label}: quality {row['quality']:.3f}, bg PSNR {row['background_psnr']:.1f} dB")
    return pd.DataFrame(rows)


def sdedit_sweep(teacher: Teacher, prompt: str, strengths: list[float], judge: ShapesJudge, *,
                 guidance_scale: float, steps: int = 50, n_eval: int = 1000, eval_seed: int = 10_000) -> pd.DataFrame:
    sources = held_out_sources(n_eval, eval_seed)
    rows = []
    for s in strengths:
        editor = SDEditEditor(teacher, prompt, strength=s, guidance_scale=guidance_scale, steps=steps)
        report = evaluate(editor, sources, target_of(prompt), judge)
        rows.append(report_row(report, prompt=prompt, strength=s, denoiser_calls=editor.denoiser_calls_per_image))
    return pd.DataFrame(rows)
