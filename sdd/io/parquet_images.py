"""Parquet image tables in the Hugging Face ``datasets`` convention.

An image column is ``struct<bytes: binary, path: string>`` and the schema carries the
``huggingface`` metadata that makes ``datasets`` read it as an ``Image`` feature, so files
written here load with ``datasets.load_dataset("parquet", ...)`` and decode to PIL images.
"""

from __future__ import annotations

import io
import json

import pyarrow as pa
import pyarrow.parquet as pq

from .storage import write_bytes_atomic

IMAGE_STRUCT = pa.struct([("bytes", pa.binary()), ("path", pa.string())])

_HF_DTYPES = {
    pa.int8(): "int8", pa.int16(): "int16", pa.int32(): "int32", pa.int64(): "int64",
    pa.uint8(): "uint8", pa.float32(): "float32", pa.float64(): "float64",
    pa.bool_(): "bool", pa.string(): "string", pa.large_string(): "large_string", pa.binary(): "binary",
}


def image_column(encoded: list[bytes | None], paths: list[str | None] | None = None) -> pa.Array:
    """Encoded images -> an HF image struct column (null where the bytes are None)."""
    paths = paths or [None] * len(encoded)
    return pa.array(
        [None if b is None else {"bytes": b, "path": p} for b, p in zip(encoded, paths)], type=IMAGE_STRUCT
    )


def huggingface_features(schema: pa.Schema) -> dict:
    features = {}
    for field in schema:
        if field.type == IMAGE_STRUCT:
            features[field.name] = {"_type": "Image"}
        elif field.type in _HF_DTYPES:
            features[field.name] = {"dtype": _HF_DTYPES[field.type], "_type": "Value"}
        else:
            raise TypeError(f"column {field.name!r} has type {field.type} with no HF feature mapping here")
    return features


def with_huggingface_metadata(table: pa.Table) -> pa.Table:
    """Attach the schema metadata ``datasets`` reads to restore features (Image columns)."""
    meta = dict(table.schema.metadata or {})
    meta[b"huggingface"] = json.dumps({"info": {"features": huggingface_features(table.schema)}}).encode()
    return table.replace_schema_metadata(meta)


def write_table(table: pa.Table, url: str, **storage_options) -> None:
    """Write one Parquet file (HF metadata attached) atomically to any fsspec URL."""
    buf = io.BytesIO()
    pq.write_table(with_huggingface_metadata(table), buf)
    write_bytes_atomic(url, buf.getvalue(), **storage_options)
