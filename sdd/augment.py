"""The augment steps as plain functions over Arrow tables; ``pipelines/augment.py`` composes
them with Ray Data, and nothing here knows which executor runs it.

    decode_rows  image cell (HF struct, binary, or path/URL) -> raw RGB pixels at the size
                 the resize policy gives (default: the image's own), or a reject reason;
                 adds ``source_id``, ``height`` and ``width``
    edit_rows    every manipulator on every decodable row -> one row per (source row, edit),
                 plus judge columns when a judge is given; rejects pass through once
    encode_rows  raw edited pixels -> ``edited_image`` in the HF image convention
    split_rows   (data rows, reject rows) for the writer
    augment_rows decode, edit and encode a block in slices of at most a pixel budget, so
                 memory is bounded by the budget whatever the block's image sizes

Between steps, pixels travel as binary cells (H*W*3 bytes, the size in the row's
``height`` and ``width``), so no step pays for Python objects per pixel and batches stay
Arrow-native. Images of one size are edited together; a block of mixed sizes is edited in
one call per size, each call at most ``call_pixels`` pixels, never padded to the largest.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch

from sdd.batching import DEFAULT_CALL_PIXELS
from sdd.io.images import ImageDecodeError, decode_image, encode_image, from_tensor_range, to_tensor_range
from sdd.io.parquet_images import IMAGE_STRUCT
from sdd.io.resize import resize_pixels, resize_tensor, target_size

PIXELS, REASON, SOURCE_ID = "_pixels", "_reason", "source_id"
HEIGHT, WIDTH = "height", "width"  # the edited image's size, written beside it
RESIZE = "resize"  # the policy the row was edited under (lineage)
OUTPUT_COLUMNS = (SOURCE_ID, RESIZE, HEIGHT, WIDTH, "edit_prompt", "manipulator_id", "edited_image")


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


def decode_cell(cell, *, resize: str, max_pixels: int) -> tuple[np.ndarray | None, str | None]:
    """(uint8 [H, W, 3] at the resize policy's size, None) or (None, the reason it is rejected)."""
    try:
        pixels = decode_image(read_image_cell(cell), max_pixels=max_pixels)
        return resize_pixels(pixels, target_size(resize, *pixels.shape[:2])), None
    except ImageDecodeError as exc:
        return None, str(exc)


def decode_rows(table: pa.Table, *, image_column: str, source_ids: pa.Array, resize: str = "native",
                max_pixels: int) -> pa.Table:
    """Adds ``source_id``, ``height``, ``width``, ``_pixels`` (raw bytes; null when rejected)
    and ``_reason``."""
    decoded = [decode_cell(cell, resize=resize, max_pixels=max_pixels)
               for cell in table.column(image_column).to_pylist()]
    return with_pixels(table, source_ids, decoded, resize)


def with_pixels(table: pa.Table, source_ids: pa.Array, decoded: list[tuple[np.ndarray | None, str | None]],
                resize: str) -> pa.Table:
    """The block plus ``source_id``, the ``resize`` policy (lineage), the decoded size and pixels, and the reason."""
    out = table.append_column(SOURCE_ID, source_ids) if SOURCE_ID not in table.column_names else table
    sizes = [(None, None) if a is None else a.shape[:2] for a, _ in decoded]
    out = out.append_column(RESIZE, pa.array([resize] * table.num_rows, pa.string()))
    return (out.append_column(HEIGHT, pa.array([h for h, _ in sizes], pa.int32()))
               .append_column(WIDTH, pa.array([w for _, w in sizes], pa.int32()))
               .append_column(PIXELS, pa.array([None if a is None else a.tobytes() for a, _ in decoded], pa.binary()))
               .append_column(REASON, pa.array([r for _, r in decoded], pa.string())))


def size_groups(heights: list[int], widths: list[int], call_pixels: int) -> list[list[int]]:
    """Row indices grouped by image size, each group at most ``call_pixels`` pixels (at least
    one image): one manipulator call each, in the rows' order within a size."""
    by_size: dict[tuple[int, int], list[int]] = {}
    for i, hw in enumerate(zip(heights, widths)):
        by_size.setdefault(hw, []).append(i)
    groups = []
    for (h, w), rows in by_size.items():
        per_call = max(1, call_pixels // (h * w))
        groups += [rows[s:s + per_call] for s in range(0, len(rows), per_call)]
    return groups


def edit_rows(table: pa.Table, manipulators: list, *, device: torch.device | str = "cpu",
              judge=None, judge_names: dict[str, tuple[str, ...]] | None = None,
              call_pixels: int = DEFAULT_CALL_PIXELS) -> pa.Table:
    """One output row per (decodable row, manipulator), then the rejected rows once each.

    ``manipulators`` are ``sdd.artifacts.Artifact``s (already loaded: actors load once),
    each run on every row at the row's own size. Adds ``edit_prompt``, ``manipulator_id``,
    ``_pixels`` (edited) and, with a judge, one ``judge_<attribute>`` column per attribute it
    reads (on the edited image resized to the judge's size when it is not that size).
    """
    reasons = table.column(REASON)
    ok_mask = pc.is_null(reasons)
    ok = table.filter(ok_mask)
    rejected = table.filter(pc.invert(ok_mask))
    parts = []
    if ok.num_rows:
        heights, widths = ok.column(HEIGHT).to_pylist(), ok.column(WIDTH).to_pylist()
        cells = ok.column(PIXELS).to_pylist()
        edited_rows: list[list[bytes | None]] = [[None] * ok.num_rows for _ in manipulators]
        judged: list[dict[str, list]] = [{} for _ in manipulators]
        for group in size_groups(heights, widths, call_pixels):
            h, w = heights[group[0]], widths[group[0]]
            raw = bytearray().join(cells[i] for i in group)  # writable: torch wants to own writable memory
            x = to_tensor_range(np.frombuffer(raw, dtype=np.uint8).reshape(len(group), h, w, 3)).to(device)
            for k, artifact in enumerate(manipulators):
                out = artifact.edit(x)
                edited = from_tensor_range(out)
                for i, img in zip(group, edited):
                    edited_rows[k][i] = img.tobytes()
                if judge is not None:
                    size = getattr(judge, "image_size", None)
                    seen = edited if size is None or (h, w) == (size, size) else from_tensor_range(
                        resize_tensor(out.clamp(-1, 1), (size, size)))
                    for attribute, labels in judge.predict(seen).items():
                        column = judged[k].setdefault(attribute, [None] * ok.num_rows)
                        for i, label in zip(group, labels):
                            column[i] = label
        for artifact, rows, labels_by_attribute in zip(manipulators, edited_rows, judged):
            part = ok.drop_columns([PIXELS]).append_column(PIXELS, pa.array(rows, type=pa.binary()))
            part = part.append_column("edit_prompt", pa.array([artifact.manifest["prompt"]] * ok.num_rows, pa.string()))
            part = part.append_column("manipulator_id", pa.array([artifact.id] * ok.num_rows, pa.string()))
            for attribute, labels in labels_by_attribute.items():
                names = (judge_names or {}).get(attribute)
                values = [names[int(i)] for i in labels] if names else [int(i) for i in labels]
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


def encode_rows(table: pa.Table, *, image_format: str = "png", quality: int = 95) -> pa.Table:
    """``_pixels`` -> ``edited_image`` (HF struct; null for rejected rows)."""
    cells = []
    for raw, h, w in zip(table.column(PIXELS).to_pylist(), table.column(HEIGHT).to_pylist(),
                         table.column(WIDTH).to_pylist()):
        if raw is None:
            cells.append(None)
        else:
            img = np.frombuffer(raw, dtype=np.uint8).reshape(h, w, 3)
            cells.append({"bytes": encode_image(img, image_format, quality), "path": None})
    return table.drop_columns([PIXELS]).append_column("edited_image", pa.array(cells, type=IMAGE_STRUCT))


def split_rows(table: pa.Table) -> tuple[pa.Table, pa.Table]:
    """(edited rows without the internal columns, rejects as ``source_id``, ``reason``)."""
    ok_mask = pc.is_null(table.column(REASON))
    data = table.filter(ok_mask).drop_columns([REASON])
    bad = table.filter(pc.invert(ok_mask))
    rejects = pa.table({SOURCE_ID: bad.column(SOURCE_ID), "reason": bad.column(REASON)})
    return data, rejects


def augment_rows(table: pa.Table, manipulators: list, *, image_column: str, source_ids: pa.Array,
                 resize: str = "native", max_pixels: int, image_format: str = "png", quality: int = 95,
                 device: torch.device | str = "cpu", judge=None, judge_names: dict | None = None,
                 call_pixels: int = DEFAULT_CALL_PIXELS) -> pa.Table:
    """decode -> edit -> encode for a block, in consecutive row slices whose decoded pixels
    stay within ``call_pixels`` (a slice holds at least one image): the raw pixels alive at
    once are one slice's and its edits', not the block's. Same rows, columns and order as
    the three steps run on the whole block, up to the order of rejects."""
    cells = table.column(image_column).to_pylist()
    parts, start, pending, budget = [], 0, [], 0

    def flush(stop: int) -> None:
        nonlocal start, pending, budget
        if stop > start:
            block = with_pixels(table.slice(start, stop - start), source_ids.slice(start, stop - start), pending, resize)
            parts.append(encode_rows(edit_rows(block, manipulators, device=device, judge=judge, judge_names=judge_names,
                                               call_pixels=call_pixels), image_format=image_format, quality=quality))
        start, pending, budget = stop, [], 0

    for i, cell in enumerate(cells):
        decoded = decode_cell(cell, resize=resize, max_pixels=max_pixels)
        pixels = 0 if decoded[0] is None else decoded[0].shape[0] * decoded[0].shape[1]
        if pending and budget + pixels > call_pixels:
            flush(i)
        pending.append(decoded)
        budget += pixels
    flush(len(cells))
    if not parts:
        return encode_rows(edit_rows(with_pixels(table, source_ids, [], resize), manipulators, judge=judge,
                                     judge_names=judge_names), image_format=image_format, quality=quality)
    return pa.concat_tables(parts, promote_options="default") if len(parts) > 1 else parts[0]
