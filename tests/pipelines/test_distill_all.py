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


def test_stable_diffusion_on_photos_from_distill_to_full_size_augment(local_ray, tiny_sd_checkpoint, tmp_path):
    """The photo path end to end: distill_all trains on crops of real photographs at the
    tiny SD teacher's size, then augment applies the manipulator to the full-size photos,
    each at its own width and height."""
    import pyarrow.parquet as pq

    from builders import PHOTOS, photo_size, photo_table
    from pipelines.augment import AugmentConfig, augment
    from sdd.io.images import decode_image

    pq.write_table(photo_table(), tmp_path / "photos.parquet")
    config = parse_config({
        "run_dir": str(tmp_path / "run"), "teacher": str(tiny_sd_checkpoint), "prompts": ["a photo at night"],
        "sources": str(tmp_path / "photos.parquet"),
        "select": {"images": 2, "shard_images": 2, "draws": 2, "policy": "argmin",
                   "timesteps": {"start": 200, "stop": 600, "step": 400}},
        "distill": {"steps": 2, "batch_size": 2, "checkpoint_every": 2, "estimator": "dds",
                    "manipulator": {"architecture": "mask_blend", "width": 8, "levels": 2}},
        "eval": {"images": 2},
    })
    [record] = distill_all(config)
    [manifest] = Registry(str(tmp_path / "run")).list()
    assert manifest["teacher_id"].startswith("sd:") and manifest["metrics"]["steps"] == 2
    out = tmp_path / "augmented"
    counts = augment(AugmentConfig(input=str(tmp_path / "photos.parquet"), output=str(out),
                                   manipulators=[str(tmp_path / "run")]))["counts"]
    assert counts["output_rows"] == len(PHOTOS) and counts["consistent"]
    for row in pq.read_table(out / "data").to_pylist():
        assert decode_image(row["edited_image"]["bytes"]).shape[:2] == photo_size(row["name"])
