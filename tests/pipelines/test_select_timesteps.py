"""select_timesteps on a real local Ray: tasks over (prompt group, image shard), gathered, cached."""

import json

import pandas as pd
import pytest

from pipelines.select_timesteps import plan_tasks, select_timesteps
from sdd.config import parse_config


def small_config(run_dir, teacher, prompts=("a red object", "a blue object")):
    return parse_config({
        "run_dir": str(run_dir), "prompts": list(prompts), "teacher": str(teacher),
        "select": {"images": 4, "shard_images": 2, "draws": 2, "policy": "argmin",
                   "timesteps": {"start": 100, "stop": 700, "step": 300}},
    })


def test_scores_every_prompt_image_and_t_and_skips_what_is_done(local_ray, random_teacher_dir, tmp_path, capsys):
    selected = select_timesteps(small_config(tmp_path, random_teacher_dir))
    scores = pd.read_parquet(tmp_path / "indicator_scores.parquet")
    assert len(scores) == 2 * 4 * 3
    # two 1-CPU slots, two shards: both prompts in each task, and the numbers of one process
    from sdd.runs import load_run_teacher, score_prompts, selection_images

    config = small_config(tmp_path, random_teacher_dir)
    teacher = load_run_teacher(config)
    images, ids = selection_images(config, teacher)
    local = pd.concat([t for _, t in score_prompts(config, teacher, config.prompts, images, ids)])
    pd.testing.assert_frame_equal(scores, local.sort_values(["prompt", "image_id", "t"]).reset_index(drop=True),
                                  rtol=1e-5)
    assert sorted(scores["image_id"].unique()) == [0, 1, 2, 3]
    assert set(selected) == {"a red object", "a blue object"}
    assert json.loads((tmp_path / "selected_timesteps.json").read_text()) == selected
    assert len(list((tmp_path / "plots").glob("*.png"))) == 2

    # same run dir, one new prompt: only the new one is scored
    again = select_timesteps(small_config(tmp_path, random_teacher_dir, ("a red object", "a blue object", "a green object")))
    out = capsys.readouterr().out
    assert "'a red object': already scored" in out and "'a green object': scored" in out
    assert len(pd.read_parquet(tmp_path / "indicator_scores.parquet")) == 3 * 4 * 3
    assert again["a red object"] == selected["a red object"]


SIX = [f"prompt {i}" for i in range(6)]


@pytest.mark.parametrize("prompts, images, shard, slots", [
    (SIX, 16, 8, 2), (SIX, 16, 8, 4), (SIX, 16, 8, 12), (SIX, 16, 3, 5), (SIX[:1], 5, 2, 8), (SIX[:5], 1, 4, 3),
])
def test_plan_scores_every_prompt_on_every_image_once(prompts, images, shard, slots):
    plan = plan_tasks(prompts, images, shard, slots)
    pairs = [(p, i) for group, ids in plan for p in group for i in ids]
    assert sorted(pairs) == sorted((p, i) for p in prompts for i in range(images))
    assert all(len(ids) <= shard for _, ids in plan)


def test_plan_groups_prompts_by_the_slots_it_can_fill():
    # as many slots as shards: one group, 7 teacher rows per (image, t, draw) instead of 12
    assert [len(g) for g, _ in plan_tasks(SIX, 16, 8, 2)] == [6, 6]
    # 4 slots: two groups of three fill them (4 rows each, in one round)
    assert [len(g) for g, _ in plan_tasks(SIX, 16, 8, 4)] == [3, 3, 3, 3]
    # a slot per (prompt, shard): no sharing beats waiting
    assert [len(g) for g, _ in plan_tasks(SIX, 16, 8, 12)] == [1] * 12
    assert plan_tasks([], 16, 8, 2) == []
