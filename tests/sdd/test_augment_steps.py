"""The augment steps on Arrow tables: counts add up, rejects carry reasons, nothing is lost."""

import numpy as np
import pyarrow as pa
import torch

from sdd.artifacts import load_manipulator, save_manipulator
from sdd.augment import augment_rows, decode_rows, edit_rows, encode_rows, read_image_cell, size_groups, split_rows
from sdd.domains.shapes.dataset import shapes_table
from sdd.domains.shapes.judge import ShapesJudge
from sdd.domains.shapes.render import generate
from sdd.domains.shapes.spec import ATTRIBUTES
from sdd.io.images import decode_image, encode_image
from sdd.manipulators import ImageManipulator


def artifacts(tmp_path, prompts):
    out = []
    for i, prompt in enumerate(prompts):
        torch.manual_seed(i)
        m = ImageManipulator(width=8, depth=1)
        save_manipulator(str(tmp_path / f"m{i}"), m, prompt=prompt)
        out.append(load_manipulator(str(tmp_path / f"m{i}")))
    return out


def test_steps_end_to_end(tmp_path):
    table = shapes_table(generate(6, seed=0))
    cells = table.column("image").to_pylist()
    cells[1] = {"bytes": b"garbage", "path": None}
    cells[4] = None
    table = table.set_column(table.column_names.index("image"), "image", pa.array(cells, type=table.schema.field("image").type))
    decoded = decode_rows(table, image_column="image", source_ids=table.column("id"), max_pixels=10**6)
    edited = edit_rows(decoded, artifacts(tmp_path, ["a red object", "a blue object"]),
                       judge=ShapesJudge.from_pretrained(), judge_names=ATTRIBUTES)
    assert edited.num_rows == 4 * 2 + 2
    data, rejects = split_rows(encode_rows(edited))
    assert data.num_rows == 8 and rejects.num_rows == 2
    assert sorted(rejects.column("source_id").to_pylist()) == [1, 4]
    assert "cannot decode" in rejects.column("reason")[0].as_py() + rejects.column("reason")[1].as_py()
    assert sorted(set(data.column("source_id").to_pylist())) == [0, 2, 3, 5]
    assert set(data.column("edit_prompt").to_pylist()) == {"a red object", "a blue object"}
    assert data.column("judge_color")[0].as_py() in ATTRIBUTES["color"]
    # identity manipulators at init: edited pixels equal the source
    first = data.filter(pa.compute.equal(data.column("source_id"), 0)).column("edited_image")[0].as_py()
    assert np.array_equal(decode_image(first["bytes"]), generate(6, seed=0).images[0])
    assert "_pixels" not in data.column_names and "_reason" not in data.column_names


def test_image_cells_of_every_kind(tmp_path):
    png = encode_image(np.zeros((4, 4, 3), np.uint8))
    (tmp_path / "a.png").write_bytes(png)
    assert read_image_cell(png) == png
    assert read_image_cell({"bytes": png, "path": "x"}) == png
    assert read_image_cell({"bytes": None, "path": str(tmp_path / "a.png")}) == png
    assert read_image_cell(str(tmp_path / "a.png")) == png
    assert read_image_cell(None) is None


def test_every_block_has_one_schema_whatever_it_holds(tmp_path):
    """A block of only rejects, one of only good rows and an empty one come out with the same
    columns and types: a writer gathering blocks into one file needs one schema."""
    table = shapes_table(generate(4, seed=2))
    bad = table.set_column(table.column_names.index("image"), "image",
                           pa.array([{"bytes": b"junk", "path": None}] * 4, type=table.schema.field("image").type))
    manipulators = artifacts(tmp_path, ["a red object"])
    judge = ShapesJudge.from_pretrained()
    schemas = []
    for block in (table, bad, table.slice(0, 0)):
        decoded = decode_rows(block, image_column="image", source_ids=block.column("id"), max_pixels=10**6)
        out = encode_rows(edit_rows(decoded, manipulators, judge=judge, judge_names=ATTRIBUTES))
        schemas.append({f.name: f.type for f in out.schema})
    assert schemas[0] == schemas[1] == schemas[2]
    assert {"edit_prompt", "manipulator_id", "judge_color", "edited_image"} <= set(schemas[0])


def photo_table(sizes):
    """Rows of noise photos of the given (height, width), each with a label column."""
    rng = np.random.default_rng(0)
    cells = [{"bytes": encode_image(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)), "path": None} for h, w in sizes]
    return pa.table({"id": list(range(len(sizes))), "box": [[1, 2, 3, 4]] * len(sizes),
                     "image": pa.array(cells, type=pa.struct([("bytes", pa.binary()), ("path", pa.string())]))})


class Brighten(torch.nn.Module):
    """A fully convolutional edit that changes every pixel: where it ran is visible."""

    architecture = "image_residual"

    def forward(self, x):
        return (x + 0.25).clamp(-1, 1)


class Artifact:
    def __init__(self, prompt):
        self.manifest, self.id, self.calls = {"prompt": prompt}, f"{prompt}@0", []

    def edit(self, x):
        self.calls.append(tuple(x.shape))
        return Brighten()(x)


def test_mixed_sizes_are_edited_at_their_own_size_in_budgeted_calls():
    """Each image comes out at its source's size; a block of mixed sizes is edited in one call
    per size (never padded to the largest), each call within the pixel budget; labels pass
    through unchanged."""
    sizes = [(300, 451), (40, 64), (300, 451), (512, 512), (40, 64), (300, 451)]
    table = photo_table(sizes)
    artifact = Artifact("a red object")
    decoded = decode_rows(table, image_column="image", source_ids=table.column("id"), max_pixels=10**7)
    out = encode_rows(edit_rows(decoded, [artifact], call_pixels=2 * 300 * 451))
    data, rejects = split_rows(out)
    assert rejects.num_rows == 0 and sorted(data.column("source_id").to_pylist()) == list(range(6))
    for row in data.to_pylist():
        h, w = sizes[row["source_id"]]
        img = decode_image(row["edited_image"]["bytes"])
        assert img.shape == (h, w, 3) and (row["height"], row["width"]) == (h, w)
        assert row["box"] == [1, 2, 3, 4] and row["resize"] == "native"
    assert sorted(artifact.calls) == sorted([(2, 3, 300, 451), (1, 3, 300, 451), (2, 3, 40, 64), (1, 3, 512, 512)])
    assert size_groups([1, 1, 2], [1, 1, 2], call_pixels=1) == [[0], [1], [2]]


def test_a_resize_policy_sets_the_edited_size_and_is_recorded():
    table = photo_table([(300, 451), (400, 200)])
    for policy, expected in [("square:64", [(64, 64), (64, 64)]), ("shorter_side:100", [(100, 150), (200, 100)]),
                             ("longer_side:100", [(67, 100), (100, 50)]), ("native", [(300, 451), (400, 200)])]:
        decoded = decode_rows(table, image_column="image", source_ids=table.column("id"), resize=policy,
                              max_pixels=10**7)
        data, _ = split_rows(encode_rows(edit_rows(decoded, [Artifact("p")])))
        got = [decode_image(c["bytes"]).shape[:2] for c in data.column("edited_image").to_pylist()]
        assert got == expected and set(data.column("resize").to_pylist()) == {policy}


def test_augment_rows_holds_one_budget_of_pixels_and_matches_the_three_steps():
    """Decode, edit and encode in slices of at most the pixel budget give the same rows as the
    three steps on the whole block; no slice holds more than the budget (or one image)."""
    sizes = [(64, 64)] * 5 + [(128, 96)] * 3
    table = photo_table(sizes)
    cells = table.column("image").to_pylist()
    cells[2] = {"bytes": b"junk", "path": None}
    table = table.set_column(2, "image", pa.array(cells, type=table.schema.field("image").type))
    whole = encode_rows(edit_rows(decode_rows(table, image_column="image", source_ids=table.column("id"),
                                              max_pixels=10**7), [Artifact("p")]))
    artifact = Artifact("p")
    sliced = augment_rows(table, [artifact], image_column="image", source_ids=table.column("id"),
                          max_pixels=10**7, call_pixels=3 * 64 * 64)
    key = lambda t: sorted((r["source_id"], r["_reason"] or "", (r["edited_image"] or {}).get("bytes") or b"")  # noqa: E731
                           for r in t.to_pylist())
    assert key(sliced) == key(whole) and sliced.schema == whole.schema
    assert max(n * h * w for n, _, h, w in artifact.calls) <= 128 * 96  # 3 x 64^2 = 12,288 = one 128 x 96
    assert sum(n for n, *_ in artifact.calls) == 7
