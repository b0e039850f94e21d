"""Apply one manipulator to a Parquet image dataset on a single machine (``sdd edit``).

One output row per input row: ``source_id`` (the input's ``id`` column, else the row
position), ``edit_prompt``, ``manipulator_id``, ``edited_image`` in the HF image convention,
and ``error`` (null, or why the row could not be edited, in which case ``edited_image`` is
null). No row is dropped silently. The Ray augment job does the same at scale.
"""

from __future__ import annotations

import io

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from sdd.artifacts import load_manipulator
from sdd.augment import read_image_cell
from sdd.io.images import ImageDecodeError, decode_image, encode_image, from_tensor_range, to_tensor_range
from sdd.io.parquet_images import image_column as hf_image_column
from sdd.io.parquet_images import write_table
from sdd.io.storage import filesystem


def read_parquet(url: str, columns: list[str] | None = None) -> pa.Table:
    fs, path = filesystem(url)
    files = sorted(f for f in fs.find(path) if f.endswith(".parquet")) if fs.isdir(path) else [path]
    tables = []
    for f in files:
        with fs.open(f, "rb") as fh:
            tables.append(pq.read_table(io.BytesIO(fh.read()), columns=columns))
    if not tables:
        raise ValueError(f"no Parquet files at {url}")
    return pa.concat_tables(tables)


def edit_parquet(manipulator_url: str, input_url: str, output_url: str, *, image_column: str = "image",
                 image_format: str = "png", batch_size: int = 256) -> dict:
    artifact = load_manipulator(manipulator_url)
    table = read_parquet(input_url)
    if image_column not in table.column_names:
        raise ValueError(f"{input_url} has no column {image_column!r}; columns: {table.column_names}")
    ids = table.column("id").to_pylist() if "id" in table.column_names else list(range(table.num_rows))
    cells = table.column(image_column).to_pylist()
    edited: list[bytes | None] = [None] * len(cells)
    errors: list[str | None] = [None] * len(cells)
    decoded: dict[int, np.ndarray] = {}
    for i, cell in enumerate(cells):
        try:
            decoded[i] = decode_image(read_image_cell(cell))
        except ImageDecodeError as exc:
            errors[i] = str(exc)
    # group by size so each forward pass is one tensor (the manipulator is fully convolutional)
    by_size: dict[tuple, list[int]] = {}
    for i, arr in decoded.items():
        by_size.setdefault(arr.shape, []).append(i)
    for rows in by_size.values():
        for s in range(0, len(rows), batch_size):
            chunk = rows[s : s + batch_size]
            out = from_tensor_range(artifact.edit(to_tensor_range(np.stack([decoded[i] for i in chunk]))))
            for i, img in zip(chunk, out):
                edited[i] = encode_image(img, image_format)
    n = len(cells)
    result = pa.table({
        "source_id": pa.array(ids),
        "edit_prompt": pa.array([artifact.manifest["prompt"]] * n, type=pa.string()),
        "manipulator_id": pa.array([artifact.id] * n, type=pa.string()),
        "edited_image": hf_image_column(edited),
        "error": pa.array(errors, type=pa.string()),
    })
    write_table(result, output_url)
    failed = sum(e is not None for e in errors)
    return {"input": n, "edited": n - failed, "failed": failed}
