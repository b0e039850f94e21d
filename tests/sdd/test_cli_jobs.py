"""`sdd select`, `sdd distill`, `sdd edit`, `sdd eval` end to end on small settings, including
the Stable Diffusion code path on the tiny checkpoint (quality is meaningless there)."""

import json
from pathlib import Path

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sdd.artifacts import Registry
from sdd.cli import main


def tiny_sd_job(tmp_path, checkpoint, settings: str, images: int = 8) -> str:
    """A small `sdd distill` config on the tiny SD checkpoint, sources written beside it."""
    data = tmp_path / "sources.parquet"
    main(["data", "shapes", "--n", str(images), "--seed", "0", "--out", str(data)])
    config = tmp_path / "sd.yaml"
    config.write_text(f"""
run_dir: {tmp_path / 'run'}
teacher: {checkpoint}
sources: {data}
select: {{images: 2, draws: 2, timesteps: {{start: 100, stop: 900, step: 400}}, policy: argmin}}
{settings}
""")
    return str(config)


def test_distill_runs_end_to_end_on_tiny_stable_diffusion(tiny_sd_checkpoint, tmp_path, capsys):
    config = tiny_sd_job(tmp_path, tiny_sd_checkpoint, """prompts: [a red car, white hair]
distill: {steps: 2, batch_size: 2, manipulator: {width: 8, depth: 1}, pack: 2}""")
    main(["distill", "--config", config])
    run = tmp_path / "run"
    assert (run / "indicator_scores.parquet").is_file() and (run / "selected_timesteps.json").is_file()
    assert len(list((run / "plots").glob("indicator_*.png"))) == 2
    assert (run / "plots" / "before_after.png").read_bytes()[:4] == b"\x89PNG"
    listed = Registry(str(run)).list()
    assert [m["prompt"] for m in listed] == ["a red car", "white hair"]
    assert all(m["teacher_id"].startswith("sd:") and len(m["timesteps"]) == 1 for m in listed)
    summary = json.loads((run / "summary.json").read_text())
    assert [r["prompt"] for r in summary] == ["a red car", "white hair"]

    # a re-run skips finished prompts instead of retraining them
    before = {m["slug"]: m["weights_sha256"] for m in listed}
    main(["distill", "--config", config])
    assert "already in the registry" in capsys.readouterr().out
    assert {m["slug"]: m["weights_sha256"] for m in Registry(str(run)).list()} == before


def test_the_stable_diffusion_example_recipe_distils_on_tiny_stable_diffusion(tiny_sd_checkpoint, tmp_path):
    """configs/sd_celeba_s3.yaml's method settings (estimator, guidance, costs, manipulator
    and its options) through `sdd distill`, only the budget and the network's width shrunk."""
    import yaml

    recipe = yaml.safe_load((Path(__file__).resolve().parents[2] / "configs" / "sd_celeba_s3.yaml").read_text())["distill"]
    method = {k: v for k, v in recipe.items() if k not in ("steps", "batch_size", "pack", "max_concurrent_trials",
                                                          "checkpoint_every", "max_failures", "resources")}
    method["manipulator"] = {**method["manipulator"], "width": 8, "levels": 2}
    distill = {**method, "steps": 2, "batch_size": 2}
    config = tiny_sd_job(tmp_path, tiny_sd_checkpoint, f"prompts: [a photo of a smiling person]\ndistill: {json.dumps(distill)}",
                         images=4)
    main(["distill", "--config", config])
    [manifest] = Registry(str(tmp_path / "run")).list()
    assert manifest["architecture"] == recipe["manipulator"]["architecture"]
    assert manifest["metrics"]["steps"] == 2 and manifest["metrics"]["final_grad_norm"] > 0


def test_distill_runs_with_a_bfloat16_teacher_on_cpu(tiny_sd_checkpoint, tmp_path):
    """The reduced-precision path end to end (UNet in bfloat16, VAE, manipulator and losses in
    float32): what a GPU float16 run goes through, checked where no GPU is."""
    config = tiny_sd_job(tmp_path, tiny_sd_checkpoint, """dtype: bfloat16
prompts: [a red car]
distill: {steps: 2, batch_size: 2, manipulator: {width: 8, depth: 1}}""", images=4)
    main(["distill", "--config", config])
    [manifest] = Registry(str(tmp_path / "run")).list()
    assert manifest["teacher_dtype"] == "bfloat16"
    assert manifest["metrics"]["steps"] == 2 and manifest["metrics"]["final_grad_norm"] > 0


def test_edit_keeps_each_photos_size_and_labels(tmp_path):
    """`sdd edit` on real photographs: one row per input row in input order, each edited image
    at its source's size (the same row steps as the augment job), labels passed through."""
    import numpy as np

    from builders import PHOTOS, photo_size, photo_table, save_changing_manipulator
    from sdd.io.images import decode_image

    photos = photo_table()
    pq.write_table(photos, tmp_path / "photos.parquet")
    sources = [decode_image(c["bytes"]) for c in photos.column("image").to_pylist()]
    manipulator = save_changing_manipulator(tmp_path / "m")
    main(["edit", "--manipulator", manipulator, "--input", str(tmp_path / "photos.parquet"),
          "--out", str(tmp_path / "out.parquet"), "--batch-size", "2"])
    rows = pq.read_table(tmp_path / "out.parquet").to_pylist()
    assert [r["source_id"] for r in rows] == list(range(len(PHOTOS))) and [r["name"] for r in rows] == list(PHOTOS)
    assert "image" not in rows[0]
    for r, source in zip(rows, sources):
        edited = decode_image(r["edited_image"]["bytes"])
        assert r["error"] is None and edited.shape[:2] == source.shape[:2] == photo_size(r["name"])
        assert np.abs(edited.astype(int) - source.astype(int)).mean() > 10


def test_edit_writes_one_row_per_input_row(random_shapes_teacher, tmp_path):
    from sdd.artifacts import save_manipulator
    from sdd.manipulators import ImageManipulator

    save_manipulator(str(tmp_path / "m"), ImageManipulator(width=8, depth=1), prompt="a red object")
    src = tmp_path / "in.parquet"
    main(["data", "shapes", "--n", "5", "--seed", "0", "--out", str(src)])
    table = pq.read_table(src)
    images = table.column("image").to_pylist()
    images[2] = {"bytes": b"not an image", "path": None}
    table = table.set_column(table.column_names.index("image"), "image",
                             pa.array(images, type=table.schema.field("image").type))
    pq.write_table(table, src)
    out = tmp_path / "out.parquet"
    main(["edit", "--manipulator", str(tmp_path / "m"), "--input", str(src), "--out", str(out)])
    ds = datasets.load_dataset("parquet", data_files=str(out), split="train")
    assert ds["source_id"] == [0, 1, 2, 3, 4]
    assert ds[2]["edited_image"] is None and "cannot decode" in ds[2]["error"]
    assert ds[0]["edited_image"].size == (32, 32) and ds[0]["edit_prompt"] == "a red object"


def test_bad_config_fails_before_any_work(tmp_path, capsys):
    config = tmp_path / "bad.yaml"
    config.write_text(f"run_dir: {tmp_path / 'run'}\ndistill: {{stepz: 3}}\n")
    with pytest.raises(SystemExit) as exc:
        main(["distill", "--config", str(config)])
    assert exc.value.code == 2
    assert "distill.stepz" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_eval_reports_the_judges_measurements_and_a_per_group_breakdown(tmp_path, capsys):
    from sdd.artifacts import save_manipulator
    from sdd.manipulators import ColorGridManipulator

    save_manipulator(str(tmp_path / "m"), ColorGridManipulator(width=8, depth=1), prompt="a red object")
    out = tmp_path / "report.json"
    main(["eval", "--manipulator", str(tmp_path / "m"), "--n", "60", "--breakdown", "--out", str(out)])
    report = json.loads(out.read_text())
    (sdd,) = report["results"]
    assert sdd["n"] == 60 and sdd["background_psnr"] == float("inf")  # a fresh manipulator is the identity
    assert sum(g["n"] for g in report["breakdown"]) == 60
    assert all(g["background_shift"] == 0 for g in report["breakdown"])
    assert "source_color" in capsys.readouterr().err
