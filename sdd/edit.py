"""Apply one manipulator to a Parquet image dataset on a single machine (``sdd edit``).

The same row steps as the Ray augment job (``sdd.augment.augment_rows``: decode, edit at
each image's own size unless a resize policy says otherwise, encode), run in this process.
One output row per input row, in input order: the input's columns but the image (the
source stays where it is; a broken source cell would make the output unreadable), ``source_id`` (the
input's ``id`` column, else the row position), ``resize``, ``height`` and ``width`` of the
edited image, ``edit_prompt``, ``manipulator_id``, ``edited_image`` in the HF image
convention, and ``error`` (null, or why the row could not be edited, in which case
``edited_image`` is null). No row is dropped silently.
"""

from __future__ import annotations

import io

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from sdd.artifacts import load_manipulator
from sdd.augment import OUTPUT_COLUMNS, REASON, augment_rows
from sdd.batching import DEFAULT_CALL_PIXELS
from sdd.io.images import DEFAULT_MAX_PIXELS
from sdd.io.parquet_images import write_table
from sdd.io.storage import filesystem

POSITION = "_position"


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
                 image_format: str = "png", batch_size: int = 256, resize: str = "native",
                 call_pixels: int = DEFAULT_CALL_PIXELS, max_pixels: int = DEFAULT_MAX_PIXELS) -> dict:
    from sdd.io.resize import parse_resize

    parse_resize(resize)
    artifact = load_manipulator(manipulator_url)
    table = read_parquet(input_url)
    if image_column not in table.column_names:
        raise ValueError(f"{input_url} has no column {image_column!r}; columns: {table.column_names}")
    taken = [c for c in (*OUTPUT_COLUMNS, "error") if c in table.column_names]
    if taken:
        raise ValueError(f"{input_url} has columns {taken}, which the output writes itself; rename them in the input")
    n = table.num_rows
    ids = table.column("id") if "id" in table.column_names else pa.array(range(n), pa.int64())
    table = table.append_column(POSITION, pa.array(range(n), pa.int64()))
    parts = [augment_rows(table.slice(s, batch_size), [artifact], image_column=image_column,
                          source_ids=ids.slice(s, batch_size), resize=resize, max_pixels=max_pixels,
                          image_format=image_format, call_pixels=call_pixels)
             for s in range(0, n, batch_size)]
    result = pa.concat_tables(parts, promote_options="default") if parts else table
    result = result.take(pc.sort_indices(result, [(POSITION, "ascending")])).drop_columns([POSITION, image_column])
    if REASON in result.column_names:
        result = result.rename_columns(["error" if c == REASON else c for c in result.column_names])
        # one manipulator: a row that could not be edited still says which edit it was for
        for column, value in (("edit_prompt", artifact.manifest["prompt"]), ("manipulator_id", artifact.id)):
            result = result.set_column(result.column_names.index(column), column, pa.array([value] * n, pa.string()))
    write_table(result, output_url)
    failed = n - result.column("error").null_count if n else 0
    return {"input": n, "edited": n - failed, "failed": failed}
