"""The augment steps on Arrow tables: counts add up, rejects carry reasons, nothing is lost."""

import numpy as np
import pyarrow as pa
import torch

from sdd.artifacts import load_manipulator, save_manipulator
from sdd.augment import decode_rows, edit_rows, encode_rows, read_image_cell, split_rows
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
    decoded = decode_rows(table, image_column="image", source_ids=table.column("id"), size=32, max_pixels=10**6)
    edited = edit_rows(decoded, artifacts(tmp_path, ["a red object", "a blue object"]), size=32,
                       judge=ShapesJudge.from_pretrained(), judge_names=ATTRIBUTES)
    assert edited.num_rows == 4 * 2 + 2
    data, rejects = split_rows(encode_rows(edited, size=32))
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
        decoded = decode_rows(block, image_column="image", source_ids=block.column("id"), size=32, max_pixels=10**6)
        out = encode_rows(edit_rows(decoded, manipulators, size=32, judge=judge, judge_names=ATTRIBUTES), size=32)
        schemas.append({f.name: f.type for f in out.schema})
    assert schemas[0] == schemas[1] == schemas[2]
    assert {"edit_prompt", "manipulator_id", "judge_color", "edited_image"} <= set(schemas[0])
