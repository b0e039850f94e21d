"""The method's claims, measured on the shapes world (``sdd study ...``).

* ``fixed_t_sweep`` — one manipulator per fixed timestep on a grid (and per seed); edit
  quality per t. This is the ground truth an indicator is judged against.
* ``indicator_validation`` — for each indicator, the Spearman correlation between its mean
  score and edit quality over t (the mean over seeds), and whether its argmin lands in the
  top two t by quality: strictly, and within the seeds' spread.
* ``policy_comparison`` — the paper's claim at one step budget, per seed: the selected
  timesteps against ``random:20,980`` and against the worst timestep of the sweep;
  ``seed_summary`` gives each run's mean and spread over the seeds.
* ``sdedit_sweep`` — SDEdit at several strengths through the same evaluation.

One seed is one draw: at 100 steps the same recipe moves by up to fifteen points of
editability between seeds (docs/experiments/paper_claim_recolour.md), more than the gaps
the claims are about, so the studies take a list of seeds and report means with their spread.

Every row carries ``recipe``: a hash of what makes two rows comparable (the distill config
less the row's own seed and timestep policy, and the evaluation set). ``previous`` tables
(``sdd study --reuse``) give back the rows of the same recipe, so an hour-long sweep can be
extended (a finer grid, more seeds) without re-training what it has. The hash cannot see a
change to the code: do not reuse rows across a change to the method.

Edit quality, one number per run: editability x the mean preservation of the untouched
attributes (1.0 = every image edited, nothing else changed). Background PSNR is reported
beside it, not folded in.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import asdict, replace

import pandas as pd

from sdd import indicator
from sdd.batching import in_device_sized_calls
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


RUN_COLUMNS = ("seed", "timestep_policy", "selected_timesteps", "prompts")  # a row's own columns


def recipe_id(config: DistillConfig, n_eval: int, eval_seed: int) -> str:
    """Rows with the same id differ only in their own columns (prompt, seed, timesteps)."""
    recipe = {k: v for k, v in asdict(config).items() if k not in RUN_COLUMNS}
    blob = json.dumps({**recipe, "n_eval": n_eval, "eval_seed": eval_seed}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def read_rows(file) -> pd.DataFrame:
    """A study table written as CSV, with ``recipe`` kept a string (an all-digit hash would
    otherwise come back as a number and match nothing)."""
    return pd.read_csv(file, dtype={"recipe": str})


def reusable_rows(previous: pd.DataFrame | None, recipe: str, prompt: str) -> pd.DataFrame:
    """The rows of ``previous`` measured with this recipe for this prompt (none without a recipe column)."""
    if previous is None or previous.empty or "recipe" not in previous.columns:
        return pd.DataFrame()
    return previous[(previous["recipe"] == recipe) & (previous["prompt"] == prompt)]


def train_and_evaluate(teacher: Teacher, base: DistillConfig, judge: ShapesJudge, n_eval: int, eval_seed: int,
                       progress: bool = False, **changes) -> tuple[dict, Distiller]:
    """Distill ``base`` with ``changes`` applied (one prompt), evaluate on held-out images."""
    config = replace(base, **changes)
    started = time.time()
    distiller = Distiller(teacher, training_sources, config)
    distiller.run(progress=progress)
    (prompt,) = config.prompts
    report = evaluate(in_device_sized_calls(distiller.manipulators[0]), held_out_sources(n_eval, eval_seed),
                      target_of(prompt), judge)
    row = report_row(report, prompt=prompt, policy=config.timestep_policy, train_seconds=time.time() - started,
                     recipe=recipe_id(config, n_eval, eval_seed))
    return row, distiller


def fixed_t_sweep(teacher: Teacher, base: DistillConfig, grid: list[int], judge: ShapesJudge,
                  n_eval: int = 1000, eval_seed: int = 10_000, seeds: list[int] | None = None,
                  previous: pd.DataFrame | None = None, log=print) -> pd.DataFrame:
    """One row per (t, training seed); ``seeds`` defaults to ``base.seed`` alone. Rows of
    ``previous`` with this recipe are kept (also at t or seeds outside this call's) and not
    trained again."""
    (prompt,) = base.prompts
    kept = reusable_rows(previous, recipe_id(base, n_eval, eval_seed), prompt)
    done = set(zip(kept["t"], kept["seed"])) if len(kept) else set()
    rows = []
    for seed in seeds or [base.seed]:
        for t in grid:
            if (t, seed) in done:
                log(f"{prompt!r} fixed t={t} seed {seed}: measured already (--reuse)")
                continue
            row, _ = train_and_evaluate(teacher, base, judge, n_eval, eval_seed, timestep_policy=f"fixed:{t}",
                                        seed=seed)
            rows.append({"t": t, "seed": seed, **row})
            log(f"{prompt!r} fixed t={t} seed {seed}: quality {row['quality']:.3f} "
                f"(editability {row['editability']:.3f}, bg PSNR {row['background_psnr']:.1f} dB)")
    return _with_kept(kept, rows, ["seed", "t"])


def _with_kept(kept: pd.DataFrame, rows: list[dict], order: list[str]) -> pd.DataFrame:
    new = pd.DataFrame(rows)
    if kept.empty:
        return new
    if new.empty:
        return kept.sort_values(order, kind="stable").reset_index(drop=True)
    return pd.concat([kept, new], ignore_index=True).sort_values(order, kind="stable").reset_index(drop=True)


def quality_curve(sweep: pd.DataFrame) -> pd.DataFrame:
    """Per (prompt, t): mean quality over seeds, its standard deviation and the seed count."""
    grouped = sweep.groupby(["prompt", "t"])["quality"]
    return pd.DataFrame({"quality": grouped.mean(), "quality_std": grouped.std(ddof=1).fillna(0.0),
                         "seeds": grouped.count()}).reset_index()


def tie_tolerance(curve: pd.DataFrame) -> float:
    """One standard error of the difference between two t's mean qualities, from the
    seed-to-seed variance pooled over the grid (0 with one seed: then only the strict
    ranking exists). Two t closer than this are not told apart by these seeds."""
    n = int(curve["seeds"].min())
    if n < 2:
        return 0.0
    pooled_variance = float((curve["quality_std"] ** 2).mean())
    return math.sqrt(2 * pooled_variance / n)


def indicator_validation(scores: pd.DataFrame, quality: pd.DataFrame) -> pd.DataFrame:
    """Per prompt and indicator: Spearman(score, quality) over the t both tables share, and
    whether the indicator's argmin is among the two best t by quality (the mean over seeds):
    strictly (its mean at least the second best's, so an exact tie counts whichever way a sort
    would order it), and within ``tie_tolerance`` of the second best. A good indicator has a
    strongly negative correlation (low score = good edits)."""
    rows = []
    for prompt, curve in quality_curve(quality).groupby("prompt"):
        tolerance = tie_tolerance(curve)
        q = curve.set_index("t")["quality"]
        table = scores[(scores["prompt"] == prompt) & scores["t"].isin(q.index)]
        second_best = float(q.sort_values(ascending=False).iloc[min(1, len(q) - 1)])
        for name in indicator.INDICATORS:
            curve_scores = indicator.indicator_curve(table, name)
            chosen = int(curve_scores.idxmin())
            rows.append({
                "prompt": prompt, "indicator": name,
                "spearman_score_vs_quality": indicator.spearman(curve_scores.values,
                                                                q.reindex(curve_scores.index).values),
                "argmin_t": chosen, "argmin_quality": float(q[chosen]),
                "argmin_in_top_two": bool(q[chosen] >= second_best),
                "argmin_in_top_two_within_spread": bool(q[chosen] >= second_best - tolerance),
                "tie_tolerance": tolerance, "seeds": int(curve["seeds"].min()),
                "best_t_by_quality": int(q.idxmax()),
            })
    return pd.DataFrame(rows)


def policy_comparison(teacher: Teacher, base: DistillConfig, selected: list[int], worst_t: int,
                      judge: ShapesJudge, n_eval: int = 1000, eval_seed: int = 10_000,
                      seeds: list[int] | None = None, previous: pd.DataFrame | None = None,
                      log=print) -> pd.DataFrame:
    """One row per (run, training seed): every run of a seed shares its sources and noise.
    Rows of ``previous`` with this recipe are kept and not trained again."""
    (prompt,) = base.prompts
    kept = reusable_rows(previous, recipe_id(base, n_eval, eval_seed), prompt)
    done = set(zip(kept["run"], kept["seed"])) if len(kept) else set()
    runs = {
        f"selected {selected}": dict(timestep_policy="selected", selected_timesteps={prompt: selected}),
        "random:20,980": dict(timestep_policy="random:20,980"),
        f"worst fixed:{worst_t}": dict(timestep_policy=f"fixed:{worst_t}"),
    }
    rows = []
    for seed in seeds or [base.seed]:
        for label, changes in runs.items():
            if (label, seed) in done:
                log(f"{prompt!r} {label} seed {seed}: measured already (--reuse)")
                continue
            row, _ = train_and_evaluate(teacher, base, judge, n_eval, eval_seed, seed=seed, **changes)
            rows.append({"run": label, "seed": seed, **row})
            log(f"{prompt!r} {label} seed {seed}: quality {row['quality']:.3f}, "
                f"bg PSNR {row['background_psnr']:.1f} dB")
    return _with_kept(kept, rows, ["seed"])


def seed_summary(table: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Mean, standard deviation, min and max over seeds of quality and editability, and the
    mean background PSNR, per group (``by``: e.g. ["prompt", "run"])."""
    grouped = table.groupby(by, sort=False)
    out = grouped[["quality", "editability"]].agg(["mean", "std", "min", "max"])
    out.columns = [f"{metric}_{stat}" for metric, stat in out.columns]
    out["background_psnr_mean"] = grouped["background_psnr"].mean()
    out["seeds"] = grouped.size()
    return out.reset_index()


def sdedit_sweep(teacher: Teacher, prompt: str, strengths: list[float], judge: ShapesJudge, *,
                 guidance_scale: float, steps: int = 50, n_eval: int = 1000, eval_seed: int = 10_000) -> pd.DataFrame:
    sources = held_out_sources(n_eval, eval_seed)
    rows = []
    for s in strengths:
        editor = SDEditEditor(teacher, prompt, strength=s, guidance_scale=guidance_scale, steps=steps)
        report = evaluate(editor, sources, target_of(prompt), judge)
        rows.append(report_row(report, prompt=prompt, strength=s, denoiser_calls=editor.denoiser_calls_per_image))
    return pd.DataFrame(rows)
