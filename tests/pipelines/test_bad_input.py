"""Bad input through the real augment job: every row is edited or rejected with its reason,
and what is wrong with a whole file is named, with the file, before any Ray work."""

import io
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from skimage import data

from builders import save_random_manipulators
from pipelines.augment import AugmentConfig, augment, main
from sdd.domains.shapes.dataset import shapes_table
from sdd.domains.shapes.render import generate
from sdd.io.images import decode_image
from sdd.io.parquet_images import IMAGE_STRUCT


def enc(img: Image.Image, fmt="PNG", **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def half_red_half_blue(w=12, h=8) -> Image.Image:
    arr = np.zeros((h, w, 3), np.uint8)
    arr[:, : w // 2] = (255, 0, 0)
    arr[:, w // 2 :] = (0, 0, 255)
    return Image.fromarray(arr)


def exif_rotated_jpeg() -> bytes:
    img = half_red_half_blue()
    exif = img.getexif()
    exif[0x0112] = 6  # stored landscape, shown rotated 90 degrees clockwise: red on top
    return enc(img, "JPEG", exif=exif, quality=100)


GOOD_PNG = enc(half_red_half_blue())
# row id -> (encoded cell, expected outcome: "ok" or a substring of the reject reason)
CELLS = {
    0: (GOOD_PNG, "ok"),
    1: (GOOD_PNG[: len(GOOD_PNG) // 2], "truncated"),
    2: (b"", "zero bytes"),
    3: (b"a caption, not an image", "not a recognised image format"),
    4: (enc(Image.new("1", (15000, 15000))), "over the limit"),  # PIL's own bomb ceiling
    5: (enc(Image.new("L", (300, 300))), "over the limit"),  # over the job's max_pixels
    6: (enc(Image.fromarray((np.arange(32 * 32).reshape(32, 32) * 64).astype(np.uint16))), "ok"),  # 16-bit
    7: (enc(Image.new("L", (32, 32), 90)), "ok"),
    8: (enc(Image.new("RGB", (32, 32), (200, 10, 10)).convert("P")), "ok"),
    9: (enc(Image.new("RGBA", (32, 32), (0, 0, 0, 0))), "ok"),
    10: (enc(Image.new("CMYK", (32, 32), (0, 255, 255, 0)), "JPEG"), "ok"),
    11: (exif_rotated_jpeg(), "ok"),
    12: (None, "null"),
    13: ({"bytes": None, "path": "/nonexistent/x.png"}, "cannot read image"),
    14: (enc(Image.fromarray(data.chelsea()[:100, :150]), "JPEG")[:2_000], "truncated"),  # a real photo, cut
    15: (enc(Image.fromarray(data.chelsea()[100:200, 150:300]), "JPEG"), "ok"),
}
# (height, width) each edited row must have: its source's, after EXIF rotation
SIZES = {0: (8, 12), 15: (100, 150), 6: (32, 32), 7: (32, 32), 8: (32, 32), 9: (32, 32), 10: (32, 32), 11: (12, 8)}


@pytest.fixture
def manipulator(tmp_path):
    # identity at init: the edited image is the decoded source
    return save_random_manipulators(tmp_path / "registry", ["a red object"])[0]


def test_every_bad_row_is_rejected_with_its_reason_and_the_rest_are_edited(local_ray, manipulator, tmp_path):
    cells = [v if isinstance(v, dict) or v is None else {"bytes": v, "path": None} for v, _ in CELLS.values()]
    pq.write_table(pa.table({"id": list(CELLS), "image": pa.array(cells, IMAGE_STRUCT)}), tmp_path / "in.parquet")
    out = tmp_path / "out"
    manifest = augment(AugmentConfig(input=str(tmp_path / "in.parquet"), output=str(out), manipulators=[manipulator],
                                     max_pixels=200 * 200, batch_size=4))
    expected_ok = sorted(i for i, (_, want) in CELLS.items() if want == "ok")
    assert manifest["counts"] == {"input_rows": len(CELLS), "output_rows": len(expected_ok), "edits_per_row": 1,
                                  "rejected_rows": len(CELLS) - len(expected_ok), "consistent": True}
    data = pq.read_table(out / "data").to_pylist()
    assert sorted(r["source_id"] for r in data) == expected_ok
    reasons = {r["source_id"]: r["reason"] for r in pq.read_table(out / "rejects").to_pylist()}
    for i, (_, want) in CELLS.items():
        if want != "ok":
            assert want in reasons[i], (i, reasons[i])
    edited = {r["source_id"]: decode_image(r["edited_image"]["bytes"]) for r in data}
    assert {i: img.shape[:2] for i, img in edited.items()} == SIZES  # each at its own size, never squashed
    assert all((r["height"], r["width"]) == SIZES[r["source_id"]] for r in data)
    assert edited[7][16, 16].tolist() == [90, 90, 90]  # grayscale spread to RGB
    assert edited[9][16, 16].tolist() == [255, 255, 255]  # transparent over white
    rotated = edited[11].astype(int)
    assert rotated[1, 4, 0] > 200 and rotated[10, 4, 2] > 200  # EXIF rotation applied: red top, blue bottom


def write_shapes(path, n=8, start=0, **columns):
    table = shapes_table(generate(n, seed=start)).set_column(0, "id", pa.array(range(start, start + n), pa.int64()))
    for name, values in columns.items():
        table = table.set_column(table.column_names.index(name), name, values)
    pq.write_table(table, path)
    return table


def run_main(capsys, *args) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
    return exit_info.value.code, capsys.readouterr().err


def test_file_level_errors_name_the_file_before_any_ray_work(manipulator, tmp_path, capsys, monkeypatch):
    """Each of these must exit 2 before the job connects to Ray."""
    import pipelines.augment

    def no_ray(address):
        raise AssertionError("connected to Ray before the input was checked")

    monkeypatch.setattr(pipelines.augment, "connect", no_ray)
    good = tmp_path / "good"
    good.mkdir()
    write_shapes(good / "a.parquet")
    write_shapes(good / "b.parquet", start=8)

    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    write_shapes(corrupt / "a.parquet")
    (corrupt / "b.parquet").write_bytes((good / "b.parquet").read_bytes()[:-100])

    no_image = tmp_path / "no_image.parquet"
    pq.write_table(pa.table({"id": [1, 2], "picture": [b"x", b"y"]}), no_image)
    int_image = tmp_path / "int_image.parquet"
    pq.write_table(pa.table({"id": [1, 2], "image": [1, 2]}), int_image)
    float_ids = tmp_path / "float_ids.parquet"
    pq.write_table(pa.table({"id": [1.5, 2.5], "image": [b"x", b"y"]}), float_ids)
    dupes = tmp_path / "dupes"
    dupes.mkdir()
    write_shapes(dupes / "a.parquet")
    write_shapes(dupes / "b.parquet", start=4)  # ids 4..7 twice
    empty_dir = tmp_path / "empty_dir"
    empty_dir.mkdir()

    cases = [
        (corrupt, ["b.parquet", "not a readable Parquet file"]),
        (no_image, ["no_image.parquet", "no image column 'image'", "picture"]),
        (int_image, ["int_image.parquet", "has type int64"]),
        (float_ids, ["float_ids.parquet", "id column 'id' has type double"]),
        (dupes, ["unique", "4 do not", "b.parquet"]),
        (empty_dir, ["no .parquet files"]),
        (tmp_path / "missing", ["does not exist"]),
    ]
    for path, wanted in cases:
        code, err = run_main(capsys, "--input", str(path), "--output", str(tmp_path / "out"),
                             "--manipulators", manipulator)
        assert code == 2, (path, err)
        for w in wanted:
            assert w in err, (path, w, err)

    code, err = run_main(capsys, "--input", str(good), "--output", str(tmp_path / "out"),
                         "--manipulators", str(tmp_path / "nothing-here"))
    assert code == 2 and "unknown manipulator" in err
    (tmp_path / "bad.yaml").write_text(f"input: {good}\noutput: {tmp_path}/o\nmanipulators: [{manipulator}]\n"
                                       "batch_size: many\nconcurency: 2\n")
    code, err = run_main(capsys, "--config", str(tmp_path / "bad.yaml"))
    assert code == 2 and "batch_size" in err and "concurency: Extra inputs are not permitted" in err


def test_an_empty_dataset_is_a_finished_job_with_zero_rows(local_ray, manipulator, tmp_path):
    table = write_shapes(tmp_path / "full.parquet", n=2)
    pq.write_table(table.slice(0, 0), tmp_path / "empty.parquet")
    manifest = augment(AugmentConfig(input=str(tmp_path / "empty.parquet"), output=str(tmp_path / "out"),
                                     manipulators=[manipulator]))
    assert manifest["counts"] == {"input_rows": 0, "output_rows": 0, "edits_per_row": 1, "rejected_rows": 0,
                                  "consistent": True}
    assert json.loads((tmp_path / "out" / "manifest.json").read_text())["counts"] == manifest["counts"]
