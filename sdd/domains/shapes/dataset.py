"""Shapes datasets as Parquet tables in the Hugging Face image convention."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from sdd.io.images import encode_image
from sdd.io.parquet_images import image_column, write_table

from .render import ShapesBatch, generate

LABEL_COLUMNS = ("shape", "color", "size", "background")


def shapes_table(batch: ShapesBatch, first_id: int = 0) -> pa.Table:
    """One row per image: ``id``, ``image`` (PNG, HF struct), ``caption``, integer labels and
    the object's geometry (``cx``, ``cy``, ``radius`` in pixels)."""
    n = len(batch)
    columns = {
        "id": pa.array(np.arange(first_id, first_id + n, dtype=np.int64)),
        "image": image_column([encode_image(img) for img in batch.images]),
        "caption": pa.array(batch.captions(), type=pa.string()),
    }
    for name in LABEL_COLUMNS:
        columns[name] = pa.array(batch.labels[name].astype(np.int64))
    for name in ("cx", "cy", "radius"):
        columns[name] = pa.array(getattr(batch, name).astype(np.float32))
    return pa.table(columns)


def write_shapes_dataset(url: str, n: int, seed: int, **storage_options) -> pa.Table:
    """Generate ``n`` images deterministically from ``seed`` and write them to ``url``."""
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    table = shapes_table(generate(n, seed))
    write_table(table, url, **storage_options)
    return table
