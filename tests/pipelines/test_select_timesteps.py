"""select_timesteps on a real local Ray: tasks over (prompt, shard), gathered, cached."""

import json

import pandas as pd

from pipelines.select_timesteps import select_timesteps
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
