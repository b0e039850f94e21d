"""augment on a real local Ray: counts add up, rejects have reasons, HF convention, re-runs."""

import json

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from builders import save_random_manipulators
from pipelines.augment import AugmentConfig, augment
from sdd.domains.shapes.dataset import shapes_table
from sdd.domains.shapes.render import generate


@pytest.fixture
def manipulators(tmp_path):
    return save_random_manipulators(tmp_path / "registry", ["a red object", "a blue object"])


def dataset_with_bad_rows(path, n=20, bad=(3, 11), with_id=True):
    table = shapes_table(generate(n, seed=0))
    cells = table.column("image").to_pylist()
    for i in bad:
        cells[i] = {"bytes": b"not an image", "path": None}
    table = table.set_column(table.column_names.index("image"), "image",
                             pa.array(cells, type=table.schema.field("image").type))
    if not with_id:
        table = table.drop_columns(["id"])
    pq.write_table(table, path)
    return table


@pytest.mark.parametrize("codecs_in_actor", [True, False], ids=["cpu-layout", "gpu-layout"])
def test_counts_add_up_and_output_is_hf_convention(local_ray, manipulators, tmp_path, codecs_in_actor):
    """Both layouts: codecs inside the edit actors (the CPU default) and in CPU tasks around
    them (the GPU default, run here on CPU)."""
    dataset_with_bad_rows(tmp_path / "in.parquet")
    out = tmp_path / "out"
    manifest = augment(AugmentConfig(input=str(tmp_path / "in.parquet"), output=str(out),
                                     manipulators=[str(tmp_path / "registry")], batch_size=8,
                                     codecs_in_actor=codecs_in_actor))
    counts = manifest["counts"]
    assert counts == {"input_rows": 20, "output_rows": 36, "edits_per_row": 2, "rejected_rows": 2, "consistent": True}
    assert json.loads((out / "manifest.json").read_text())["counts"] == counts
    ds = datasets.load_dataset("parquet", data_dir=str(out / "data"), split="train")
    assert isinstance(ds.features["edited_image"], datasets.Image) and ds[0]["edited_image"].size == (32, 32)
    assert sorted(set(ds["source_id"])) == [i for i in range(20) if i not in (3, 11)]
    assert {"edit_prompt", "manipulator_id", "judge_color", "caption"} <= set(ds.column_names)
    rejects = pq.read_table(out / "rejects").to_pylist()
    assert sorted(r["source_id"] for r in rejects) == [3, 11]
    assert all("cannot decode" in r["reason"] for r in rejects)

    # a re-run writes nothing new: every row is already checkpointed
    again = augment(AugmentConfig(input=str(tmp_path / "in.parquet"), output=str(out),
                                  manipulators=[str(tmp_path / "registry")], batch_size=8,
                                  codecs_in_actor=codecs_in_actor))
    assert again["counts"] == counts


def test_source_id_is_the_row_position_without_an_id_column(local_ray, manipulators, tmp_path):
    dataset_with_bad_rows(tmp_path / "in.parquet", n=10, bad=(), with_id=False)
    out = tmp_path / "out"
    augment(AugmentConfig(input=str(tmp_path / "in.parquet"), output=str(out), manipulators=manipulators[:1]))
    table = pq.read_table(out / "data")
    assert sorted(table.column("source_id").to_pylist()) == list(range(10))
    captions = dict(zip(table.column("source_id").to_pylist(), table.column("caption").to_pylist()))
    assert captions[7] == generate(10, seed=0).captions()[7]


def test_edit_actors_leave_room_for_reads_and_the_checkpoint_filter():
    from pipelines.augment import fit_actor_cpus

    assert fit_actor_cpus(1, 1, 2.0) == 0  # a 2-core laptop: tasks and the filter actor get both
    assert fit_actor_cpus(1, 2, 8.0) == 1
    assert fit_actor_cpus(4, 2, 8.0) == 3
    assert fit_actor_cpus(1, 3, 3.0) == 0  # not 1/3 each: that leaves no 1-CPU node whole for a read
    assert fit_actor_cpus(0.5, 2, 4.0) == 0.5


def test_s3_input_written_by_datasets_registry_and_output_on_s3(local_ray, manipulators, tmp_path, s3_bucket):
    """Everything on S3 (moto server): the input as the `datasets` library writes it, the
    manipulators as a registry, the output; read back with `datasets` and its Image feature."""
    from datasets import Dataset, Image

    from sdd.io.storage import filesystem

    images = generate(12, seed=3)
    local_png = []
    for i, img in enumerate(images.images):
        path = tmp_path / f"img{i}.png"
        from PIL import Image as PILImage

        PILImage.fromarray(img).save(path)
        local_png.append(str(path))
    Dataset.from_dict({"id": list(range(100, 112)), "image": local_png}).cast_column("image", Image()).to_parquet(
        str(tmp_path / "hf.parquet"))
    fs, _ = filesystem(s3_bucket)
    fs.put(str(tmp_path / "hf.parquet"), f"{s3_bucket[5:]}/in/part-0.parquet")
    fs.put(str(tmp_path / "registry"), f"{s3_bucket[5:]}/run", recursive=True)

    out = f"{s3_bucket}/out"
    manifest = augment(AugmentConfig(input=f"{s3_bucket}/in", output=out, manipulators=[f"{s3_bucket}/run"],
                                     batch_size=4))
    assert manifest["counts"] == {"input_rows": 12, "output_rows": 24, "edits_per_row": 2, "rejected_rows": 0,
                                  "consistent": True}
    fs.get(f"{out[5:]}/data", str(tmp_path / "back"), recursive=True)
    ds = datasets.load_dataset("parquet", data_dir=str(tmp_path / "back"), split="train")
    assert sorted(set(ds["source_id"])) == list(range(100, 112))
    assert ds[0]["edited_image"].size == (32, 32)
    assert {m["prompt"] for m in manifest["manipulators"]} == {"a red object", "a blue object"}


def test_finalize_drops_rows_of_retried_writes_and_sets_torn_files_aside(tmp_path):
    """At-least-once staging in, exactly-once output out: a staged row already written (by
    an earlier run or a retried write) is dropped, a torn staged file is quarantined unread."""
    from pipelines.augment import QUARANTINE, STAGING, finalize

    def staged(ids, manipulator):
        return pa.table({"source_id": ids, "manipulator_id": [manipulator] * len(ids),
                         "_reason": pa.nulls(len(ids), pa.string())})

    staging = tmp_path / "out" / STAGING
    staging.mkdir(parents=True)
    pq.write_table(staged([0, 1, 2], "m@1"), staging / "a.parquet")
    pq.write_table(staged([2, 3], "m@1"), staging / "b.parquet")  # a retried write: id 2 again
    (staging / "c.parquet").write_bytes((staging / "a.parquet").read_bytes()[:40])
    finalize(str(tmp_path / "out"))
    pq.write_table(staged([3, 4], "m@1"), staging / "d.parquet")  # a re-run: id 3 is already out
    finalize(str(tmp_path / "out"))
    ids = sorted(pq.read_table(tmp_path / "out" / "data").column("source_id").to_pylist())
    assert ids == [0, 1, 2, 3, 4]
    assert [p.name for p in (tmp_path / "out" / QUARANTINE).iterdir()] == ["c.parquet"]
    assert not list(staging.glob("*.parquet"))


@pytest.mark.parametrize("codecs_in_actor", [True, False], ids=["cpu-layout", "gpu-layout"])
def test_photos_are_edited_at_their_own_size_and_keep_their_labels(local_ray, tmp_path, codecs_in_actor):
    """Real photographs of five sizes and two modes (RGB JPEG, grayscale PNG) in one dataset:
    each edited image has its source's width and height, every id appears once, the label
    column passes through, and the edit changed the pixels."""
    import numpy as np

    from builders import PHOTOS, photo_size, photo_table, save_changing_manipulator
    from sdd.io.images import decode_image

    table = photo_table()
    pq.write_table(table, tmp_path / "photos.parquet")
    manipulator = save_changing_manipulator(tmp_path / "night")
    out = tmp_path / "out"
    manifest = augment(AugmentConfig(input=str(tmp_path / "photos.parquet"), output=str(out), manipulators=[manipulator],
                                     batch_size=2, call_pixels=600 * 400, codecs_in_actor=codecs_in_actor))
    assert manifest["counts"]["output_rows"] == len(PHOTOS) and manifest["counts"]["consistent"]
    assert manifest["resize"] == "native"
    rows = pq.read_table(out / "data").to_pylist()
    assert sorted(r["source_id"] for r in rows) == list(range(len(PHOTOS)))
    for row in rows:
        name = PHOTOS[row["source_id"]]
        assert row["name"] == name and row["resize"] == "native"
        source = decode_image(row["image"]["bytes"])
        edited = decode_image(row["edited_image"]["bytes"])
        assert edited.shape[:2] == photo_size(name) == source.shape[:2] == (row["height"], row["width"])
        assert np.abs(edited.astype(int) - source.astype(int)).mean() > 10  # the tint reached every pixel


def test_a_resize_policy_is_applied_and_recorded(local_ray, tmp_path):
    from builders import photo_table, save_changing_manipulator

    pq.write_table(photo_table(["chelsea", "rocket"]), tmp_path / "photos.parquet")
    out = tmp_path / "out"
    manifest = augment(AugmentConfig(input=str(tmp_path / "photos.parquet"), output=str(out),
                                     manipulators=[save_changing_manipulator(tmp_path / "m")], resize="shorter_side:64"))
    assert manifest["resize"] == "shorter_side:64"
    sizes = {r["name"]: (r["height"], r["width"]) for r in pq.read_table(out / "data").to_pylist()}
    assert sizes == {"chelsea": (64, 96), "rocket": (64, 96)}
