"""The augment steps as plain functions over Arrow tables; ``pipelines/augment.py`` composes
them with Ray Data, and nothing here knows which executor runs it.

    decode_rows  image cell (HF struct, binary, or path/URL) -> raw RGB pixels at a fixed size,
                 or a reject reason; adds ``source_id``
    edit_rows    every manipulator on every decodable row -> one row per (source row, edit),
                 plus judge columns when a judge is given; rejects pass through once
    encode_rows  raw edited pixels -> ``edited_image`` in the HF image convention
    split_rows   (data rows, reject rows) for the writer

Between steps, pixels travel as fixed-size binary cells (H*W*3 bytes), so no step pays for
Python objects per pixel and batches stay Arrow-native.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch
import torch.nn.functional as F

from sdd.io.images import ImageDecodeError, decode_image, encode_image, from_tensor_range, to_tensor_range
from sdd.io.parquet_images import IMAGE_STRUCT

PIXELS, REASON, SOURCE_ID = "_pixels", "_reason", "source_id"


def read_image_cell(value, open_url=None) -> bytes | None:
    """Encoded bytes of one image cell: HF struct {bytes, path} (path read when bytes are
    missing), plain binary, or a path/URL string."""
    if value is None or isinstance(value, (bytes, bytearray)):
        return value
    if isinstance(value, dict):
        if value.get("bytes") is not None:
            return value["bytes"]
        value = value.get("path")
        if value is None:
            return None
    if isinstance(value, str):
        if open_url is None:
            import fsspec

            open_url = fsspec.open
        try:
            with open_url(value, "rb") as f:
                return f.read()
        except (FileNotFoundError, OSError) as exc:
            raise ImageDecodeError(f"cannot read image from {value!r}: {exc}") from exc
    raise ImageDecodeError(f"unsupported image cell of type {type(value).__name__}")


def resize(pixels: np.ndarray, size: int) -> np.ndarray:
    """Square resize (antialiased bilinear); a no-op at the right size."""
    if pixels.shape[:2] == (size, size):
        return pixels
    x = to_tensor_range(pixels[None])
    return from_tensor_range(F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False))[0]


def decode_rows(table: pa.Table, *, image_column: str, source_ids: pa.Array, size: int,
                max_pixels: int) -> pa.Table:
    """Adds ``source_id``, ``_pixels`` (raw bytes; null when rejected) and ``_reason``."""
    pixels, reasons = [], []
    for cell in table.column(image_column).to_pylist():
        try:
            arr = resize(decode_image(read_image_cell(cell), max_pixels=max_pixels), size)
            pixels.append(arr.tobytes())
            reasons.append(None)
        except ImageDecodeError as exc:
            pixels.append(None)
            reasons.append(str(exc))
    out = table.append_column(SOURCE_ID, source_ids) if SOURCE_ID not in table.column_names else table
    return out.append_column(PIXELS, pa.array(pixels, type=pa.binary())).append_column(
        REASON, pa.array(reasons, type=pa.string()))


def edit_rows(table: pa.Table, manipulators: list, *, size: int, device: torch.device | str = "cpu",
              judge=None, judge_names: dict[str, tuple[str, ...]] | None = None) -> pa.Table:
    """One output row per (decodable row, manipulator), then the rejected rows once each.

    ``manipulators`` are ``sdd.artifacts.Artifact``s (already loaded: actors load once).
    Adds ``edit_prompt``, ``manipulator_id``, ``_pixels`` (edited) and, with a judge, one
    ``judge_<attribute>`` column per attribute it reads.
    """
    reasons = table.column(REASON)
    ok_mask = pc.is_null(reasons)
    ok = table.filter(ok_mask)
    rejected = table.filter(pc.invert(ok_mask))
    parts = []
    if ok.num_rows:
        raw = bytearray().join(ok.column(PIXELS).to_pylist())  # writable: torch wants to own writable memory
        images = np.frombuffer(raw, dtype=np.uint8).reshape(ok.num_rows, size, size, 3)
        x = to_tensor_range(images).to(device)
        for artifact in manipulators:
            edited = from_tensor_range(artifact.edit(x))
            rows = [row.tobytes() for row in edited.reshape(ok.num_rows, -1)]
            part = ok.drop_columns([PIXELS]).append_column(PIXELS, pa.array(rows, type=pa.binary()))
            part = part.append_column("edit_prompt", pa.array([artifact.manifest["prompt"]] * ok.num_rows, pa.string()))
            part = part.append_column("manipulator_id", pa.array([artifact.id] * ok.num_rows, pa.string()))
            if judge is not None:
                for attribute, labels in judge.predict(edited).items():
                    names = (judge_names or {}).get(attribute)
                    values = [names[i] for i in labels] if names else labels.tolist()
                    part = part.append_column(f"judge_{attribute}", pa.array(values))
            parts.append(part)
    if rejected.num_rows or not parts:
        # Rejected rows carry the edit columns as nulls, so that every block has one schema
        # whatever it holds (a writer that gathers blocks into one file needs that).
        for field in edit_fields(judge, judge_names):
            rejected = rejected.append_column(field, pa.nulls(rejected.num_rows, field.type))
        parts.append(rejected)
    return pa.concat_tables(parts, promote_options="default") if len(parts) > 1 else parts[0]


def edit_fields(judge, judge_names: dict | None) -> list[pa.Field]:
    """The columns ``edit_rows`` adds to an edited row."""
    fields = [pa.field("edit_prompt", pa.string()), pa.field("manipulator_id", pa.string())]
    if judge is not None and judge_names:  # without names the judge's columns are known only from a prediction
        fields += [pa.field(f"judge_{a}", pa.string()) for a in judge_names]
    return fields


def encode_rows(table: pa.Table, *, size: int, image_format: str = "png", quality: int = 95) -> pa.Table:
    """``_pixels`` -> ``edited_image`` (HF struct; null for rejected rows)."""
    cells = []
    for raw in table.column(PIXELS).to_pylist():
        if raw is None:
            cells.append(None)
        else:
            img = np.frombuffer(raw, dtype=np.uint8).reshape(size, size, 3)
            cells.append({"bytes": encode_image(img, image_format, quality), "path": None})
    return table.drop_columns([PIXELS]).append_column("edited_image", pa.array(cells, type=IMAGE_STRUCT))


def split_rows(table: pa.Table) -> tuple[pa.Table, pa.Table]:
    """(edited rows without the internal columns, rejects as ``source_id``, ``reason``)."""
    ok_mask = pc.is_null(table.column(REASON))
    data = table.filter(ok_mask).drop_columns([REASON])
    bad = table.filter(pc.invert(ok_mask))
    rejects = pa.table({SOURCE_ID: bad.column(SOURCE_ID), "reason": bad.column(REASON)})
    return data, rejects
