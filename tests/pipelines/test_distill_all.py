"""distill_all on a real local Ray: Tune trials of Train workers, registry, summary, resume."""

import json

from pipelines.distill_all import distill_all
from sdd.artifacts import Registry
from sdd.config import parse_config


def small_config(run_dir, teacher):
    return parse_config({
        "run_dir": str(run_dir), "teacher": str(teacher), "prompts": ["a red object", "a blue object"],
        "select": {"images": 2, "shard_images": 2, "draws": 2, "policy": "argmin",
                   "timesteps": {"start": 200, "stop": 600, "step": 400}},
        "distill": {"steps": 4, "batch_size": 2, "checkpoint_every": 2, "max_concurrent_trials": 2,
                    "manipulator": {"width": 8, "depth": 1}},
        "eval": {"images": 20},
    })


def test_trains_one_manipulator_per_prompt_and_skips_them_on_rerun(local_ray, random_teacher_dir, tmp_path):
    config = small_config(tmp_path / "run", random_teacher_dir)
    records = distill_all(config)
    assert [r["prompt"] for r in records] == ["a red object", "a blue object"]
    listed = Registry(str(tmp_path / "run")).list()
    assert len(listed) == 2 and all(m["metrics"]["steps"] == 4 for m in listed)
    assert all(len(m["timesteps"]) == 1 for m in listed)
    assert (tmp_path / "run" / "summary.json").is_file()
    assert (tmp_path / "run" / "plots" / "before_after.png").stat().st_size > 0
    assert json.loads((tmp_path / "run" / "run.json").read_text())["records"] == records
    # Train checkpoints were reported to the run's storage
    assert list((tmp_path / "run" / "ray").glob("distill-*/checkpoint_*"))

    before = {m["slug"]: m["weights_sha256"] for m in listed}
    distill_all(config)
    assert {m["slug"]: m["weights_sha256"] for m in Registry(str(tmp_path / "run")).list()} == before


def test_run_directory_registry_and_checkpoints_on_s3(local_ray, random_teacher_dir, s3_bucket):
    from sdd.io.storage import filesystem

    config = small_config(f"{s3_bucket}/run", random_teacher_dir).model_copy(update={"prompts": ["a red object"]})
    records = distill_all(config)
    assert [r["prompt"] for r in records] == ["a red object"]
    assert [m["prompt"] for m in Registry(f"{s3_bucket}/run").list()] == ["a red object"]
    fs, path = filesystem(f"{s3_bucket}/run")
    assert fs.glob(f"{path}/ray/distill-*/checkpoint_*")
    assert fs.exists(f"{path}/summary.json") and fs.exists(f"{path}/selected_timesteps.json")
