"""The study tables: runs repeated over seeds, summarised with their spread, and the
indicator's top-two check that a flat quality curve cannot fail by noise alone."""

from dataclasses import replace

import pandas as pd
import pytest

from sdd.distill import DistillConfig
from sdd.domains.shapes.judge import ShapesJudge
from sdd.eval import studies


def sweep_table(qualities: dict[int, list[float]], prompt: str = "a red object") -> pd.DataFrame:
    """Rows as fixed_t_sweep writes them: one per (t, seed)."""
    return pd.DataFrame([{"prompt": prompt, "t": t, "seed": s, "quality": q}
                         for t, per_seed in qualities.items() for s, q in enumerate(per_seed)])


def scores_preferring(t_best: int, grid: list[int], prompt: str = "a red object") -> pd.DataFrame:
    """An indicator scores table (the select stage's rows) whose every indicator has its argmin at t_best."""
    return pd.DataFrame([{"prompt": prompt, "t": t, "image": image,
                          **{name: abs(t - t_best) + 1.0 + 0.1 * image for name in studies.indicator.INDICATORS}}
                         for t in grid for image in range(4)])


def test_quality_curve_and_tolerance_come_from_the_seeds():
    curve = studies.quality_curve(sweep_table({100: [0.2, 0.2, 0.2], 300: [0.9, 1.0, 0.8]}))
    assert list(curve["quality"]) == pytest.approx([0.2, 0.9])
    assert list(curve["quality_std"]) == pytest.approx([0.0, 0.1])
    assert set(curve["seeds"]) == {3}
    # pooled variance (0 + 0.01) / 2, difference of two means of 3: sqrt(2 * 0.005 / 3)
    assert studies.tie_tolerance(curve) == pytest.approx((2 * 0.005 / 3) ** 0.5)
    assert studies.tie_tolerance(studies.quality_curve(sweep_table({100: [0.2], 300: [0.9]}))) == 0.0


def test_a_flat_curve_ties_the_argmin_with_the_top_two_only_within_the_seed_spread():
    scores = scores_preferring(500, [100, 300, 500, 700, 900])
    # 500 is third by 0.01 on the mean, and the seeds disagree by more than that
    noisy = sweep_table({100: [0.1, 0.2, 0.15], 300: [1.0, 0.97, 0.98], 500: [0.95, 1.0, 0.97],
                         700: [0.96, 1.0, 0.99], 900: [0.1, 0.2, 0.15]})
    row = studies.indicator_validation(scores, noisy).iloc[0]
    assert row["argmin_t"] == 500 and not row["argmin_in_top_two"]
    assert row["argmin_in_top_two_within_spread"] and row["seeds"] == 3
    # the same means from seeds that agree: 500 is told apart, and the check fails
    steady = sweep_table({100: [0.15] * 3, 300: [0.983] * 3, 500: [0.973] * 3, 700: [0.983] * 3, 900: [0.15] * 3})
    row = studies.indicator_validation(scores, steady).iloc[0]
    assert not row["argmin_in_top_two"] and not row["argmin_in_top_two_within_spread"]
    # one seed: only the strict ranking
    one = sweep_table({100: [0.1], 300: [1.0], 500: [0.95], 700: [0.96], 900: [0.1]})
    row = studies.indicator_validation(scores, one).iloc[0]
    assert not row["argmin_in_top_two_within_spread"] and row["tie_tolerance"] == 0.0


def test_an_argmin_tied_with_the_best_is_in_the_top_two_whichever_way_a_sort_puts_it():
    scores = scores_preferring(500, [100, 300, 500, 700, 900])
    # three t edit perfectly: any of them is "among the two best"
    plateau = sweep_table({100: [0.16] * 3, 300: [1.0] * 3, 500: [1.0] * 3, 700: [1.0] * 3, 900: [0.16] * 3})
    row = studies.indicator_validation(scores, plateau).iloc[0]
    assert row["argmin_in_top_two"] and row["argmin_in_top_two_within_spread"]
    # one image's worth below the tie is not in it, and steady seeds do not excuse it
    below = sweep_table({100: [0.16] * 3, 300: [1.0] * 3, 500: [0.999] * 3, 700: [1.0] * 3, 900: [0.16] * 3})
    row = studies.indicator_validation(scores, below).iloc[0]
    assert not row["argmin_in_top_two"] and not row["argmin_in_top_two_within_spread"]


def test_seed_summary_reports_mean_spread_and_range():
    table = pd.DataFrame([
        {"prompt": "p", "run": "selected", "seed": 0, "quality": 0.85, "editability": 0.85, "background_psnr": 40.0},
        {"prompt": "p", "run": "selected", "seed": 1, "quality": 1.0, "editability": 1.0, "background_psnr": 42.0},
        {"prompt": "p", "run": "random", "seed": 0, "quality": 0.9, "editability": 0.9, "background_psnr": 41.0},
        {"prompt": "p", "run": "random", "seed": 1, "quality": 0.8, "editability": 0.8, "background_psnr": 39.0},
    ])
    out = studies.seed_summary(table, ["prompt", "run"]).set_index("run")
    assert list(out.index) == ["selected", "random"]
    assert out.loc["selected", "quality_mean"] == pytest.approx(0.925)
    assert out.loc["selected", "quality_min"] == 0.85 and out.loc["random", "quality_max"] == 0.9
    assert out.loc["random", "background_psnr_mean"] == 40.0 and out.loc["random", "seeds"] == 2


def test_policy_comparison_trains_every_run_once_per_seed(random_shapes_teacher):
    base = DistillConfig(prompts=["a red object"], timestep_policy="selected",
                         selected_timesteps={"a red object": [300, 350]}, steps=2, batch_size=4,
                         manipulator={"architecture": "salient_recolour", "width": 8}, seed=0)
    table = studies.policy_comparison(random_shapes_teacher, base, [300, 350], 900, ShapesJudge.from_pretrained(),
                                      n_eval=16, seeds=[0, 1], log=lambda *_: None)
    assert sorted(zip(table["seed"], table["run"])) == sorted(
        (s, r) for s in (0, 1) for r in ("selected [300, 350]", "random:20,980", "worst fixed:900"))
    assert set(table["policy"]) == {"selected", "random:20,980", "fixed:900"}
    summary = studies.seed_summary(table, ["prompt", "run"])
    assert set(summary["seeds"]) == {2}
    # --reuse: every (run, seed) is measured already, so nothing trains and the table comes back
    logged = []
    again = studies.policy_comparison(random_shapes_teacher, base, [300, 350], 900, ShapesJudge.from_pretrained(),
                                      n_eval=16, seeds=[0, 1], previous=table, log=logged.append)
    assert len(logged) == 6 and all("measured already" in line for line in logged)
    assert sorted(again["quality"]) == sorted(table["quality"])


def test_quality_plot_draws_the_seed_mean_and_each_seed():
    from sdd.plots import quality_vs_indicators_png

    sweep = sweep_table({100: [0.1, 0.3], 300: [1.0, 0.9], 500: [0.9, 0.95]})
    png = quality_vs_indicators_png(sweep, scores_preferring(300, [100, 300, 500]), "a red object")
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5_000


def test_reuse_trains_only_the_rows_the_previous_table_lacks(random_shapes_teacher, tmp_path):
    judge = ShapesJudge.from_pretrained()
    base = DistillConfig(prompts=["a red object"], timestep_policy="fixed:500", steps=2, batch_size=4,
                         manipulator={"architecture": "salient_recolour", "width": 8}, seed=0)
    first = studies.fixed_t_sweep(random_shapes_teacher, base, [300], judge, n_eval=16, log=lambda *_: None)
    first.to_csv(tmp_path / "fixed_t_quality.csv", index=False)
    previous = studies.read_rows(tmp_path / "fixed_t_quality.csv")

    logged = []
    extended = studies.fixed_t_sweep(random_shapes_teacher, base, [300, 700], judge, n_eval=16, seeds=[0, 1],
                                     previous=previous, log=logged.append)
    assert sorted(zip(extended["seed"], extended["t"])) == [(0, 300), (0, 700), (1, 300), (1, 700)]
    assert [line for line in logged if "measured already" in line] == [
        "'a red object' fixed t=300 seed 0: measured already (--reuse)"]
    assert len(logged) == 4 and extended["recipe"].nunique() == 1
    kept = extended[(extended["seed"] == 0) & (extended["t"] == 300)].iloc[0]
    assert kept["quality"] == first["quality"].iloc[0] and kept["train_seconds"] == first["train_seconds"].iloc[0]

    # another recipe (or another evaluation set) reuses nothing, and its table holds only its own rows
    logged.clear()
    other = studies.fixed_t_sweep(random_shapes_teacher, replace(base, fidelity_weight=0.5), [300], judge,
                                  n_eval=16, previous=previous, log=logged.append)
    assert len(other) == 1 and other["recipe"].iloc[0] != first["recipe"].iloc[0]
    assert not any("measured already" in line for line in logged)
    assert studies.recipe_id(base, 16, 10_000) != studies.recipe_id(base, 32, 10_000)
    assert studies.recipe_id(base, 16, 10_000) == studies.recipe_id(replace(base, seed=3, timestep_policy="fixed:700"),
                                                                    16, 10_000)
