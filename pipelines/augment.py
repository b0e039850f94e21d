"""Job 3 — augment: apply manipulators to a Parquet image dataset with Ray Data.

    python pipelines/augment.py --input URL --output URL --manipulators DIR[,DIR...]
    python pipelines/augment.py --config augment.yaml
    ray job submit --working-dir . -- python pipelines/augment.py --input s3://... --output s3://... --manipulators s3://run/

Read (one Parquet file or a directory, local or ``s3://``; image column as HF struct, plain
binary or path/URL) -> decode, at each image's own size by default (CPU tasks) -> every manipulator (actors that load
their artifacts once; ``concurrency``, ``num_gpus``, ``batch_size`` from the config; on CPUs
each actor also decodes and encodes its rows) -> encode
(PNG, or JPEG/WebP) -> write. Output:

    <output>/data/*.parquet      edited rows, HF image convention, lineage columns
    <output>/rejects/*.parquet   source_id, reason
    <output>/manifest.json       counts: input = output / edits_per_row + rejected

Ray Data writes every row (edited or rejected) to ``<output>/_staging/`` under Ray Data
checkpointing on the input id (a re-run skips rows already written); a finalize step then
splits each staged file into ``data/`` and ``rejects/`` atomically. Everything that can be
checked before Ray work (config, manipulators, input files and schema) is checked first.
"""

from __future__ import annotations

import argparse
import io
import math
import sys
import time
from functools import lru_cache

import pyarrow as pa
import pyarrow.parquet as pq
import ray
from pydantic import ValidationError

from pipelines.common import connect, log
from sdd.artifacts import ArtifactError, Registry, load_manipulator, read_manifest
from sdd.augment import OUTPUT_COLUMNS, SOURCE_ID, augment_rows, decode_rows, edit_rows, encode_rows, split_rows
from sdd.config import AugmentConfig, ConfigError, format_validation_error
from sdd.io.parquet_images import write_table
from sdd.io.storage import filesystem, join, write_bytes_atomic
from sdd.preflight import check_reachable

STAGING, CHECKPOINT = "_staging", "_checkpoint"
ROW_HASH = "row_hash"


def load_augment_config(path: str | None, **overrides) -> AugmentConfig:
    import yaml

    data = {}
    if path:
        fs, p = filesystem(path)
        try:
            with fs.open(p, "rb") as f:
                data = yaml.safe_load(f) or {}
        except FileNotFoundError:
            raise ConfigError(f"config file not found: {path}") from None
    data.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return AugmentConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, path or "command line")) from None


def resolve_manipulators(urls: list[str]) -> list[str]:
    """Artifact directories from artifact or registry/run URLs; fails fast with a reason."""
    out = []
    for url in urls:
        fs, path = filesystem(url)
        if fs.exists(join(path, "manifest.json")):
            out.append(url)
            continue
        root = url[: -len("/manipulators")] if url.rstrip("/").endswith("/manipulators") else url
        listed = Registry(root).list()
        if not listed:
            raise ArtifactError(f"unknown manipulator {url}: neither an artifact (manifest.json) nor a registry")
        out += [m["url"] for m in listed]
    for url in out:
        read_manifest(url)
    return out


def input_files(url: str) -> list[str]:
    fs, path = filesystem(url)
    if not fs.exists(path):
        raise FileNotFoundError(f"input {url} does not exist")
    files = sorted(f for f in fs.find(path) if f.endswith(".parquet")) if fs.isdir(path) else [path]
    if not files:
        raise ValueError(f"no .parquet files under {url}")
    return [f if "://" in f or not url.startswith("s3://") else f"s3://{f}" for f in files]


def inspect_inputs(files: list[str], image_column: str, id_column: str = "id") -> tuple[pa.Schema, dict[str, int]]:
    """Read every footer (cheap): a corrupt file, a missing image column or a column of a type
    the job cannot read is named here, with its file, before any Ray work."""
    schema, counts = None, {}
    for f in files:
        fs, path = filesystem(f)
        try:
            with fs.open(path, "rb") as fh:
                meta = pq.ParquetFile(fh).metadata
                file_schema = meta.schema.to_arrow_schema()
        except Exception as exc:
            raise ValueError(f"input file {f} is not a readable Parquet file: {exc}") from None
        if image_column not in file_schema.names:
            raise ValueError(f"input file {f} has no image column {image_column!r}; columns: {file_schema.names}")
        taken = [c for c in OUTPUT_COLUMNS if c in file_schema.names]
        if taken:
            raise ValueError(f"input file {f} has columns {taken}, which the output writes itself (the edited "
                             "image's size and the resize policy); rename them in the input")
        image_type = file_schema.field(image_column).type
        if not readable_image_type(image_type):
            raise ValueError(f"input file {f}: image column {image_column!r} has type {image_type}; expected an "
                             "HF image struct<bytes, path>, binary (encoded image) or string (path/URL)")
        if id_column in file_schema.names:
            id_type = file_schema.field(id_column).type
            if not (pa.types.is_integer(id_type) or pa.types.is_string(id_type) or pa.types.is_large_string(id_type)):
                raise ValueError(f"input file {f}: id column {id_column!r} has type {id_type}; expected integers "
                                 "or strings")
        if schema is not None and file_schema.field(image_column).type != schema.field(image_column).type:
            raise ValueError(f"input file {f}: image column type {image_type} differs from the first file's "
                             f"{schema.field(image_column).type}")
        counts[f] = meta.num_rows
        schema = schema or file_schema
    if id_column in schema.names:
        check_unique_ids(files, id_column)
    return schema, counts


def check_unique_ids(files: list[str], id_column: str) -> None:
    """Ids key the checkpoint and the lineage: a duplicate would make two rows one."""
    seen, dupes = set(), []
    for f in files:
        fs, path = filesystem(f)
        with fs.open(path, "rb") as fh:
            ids = pq.ParquetFile(fh).read(columns=[id_column]).column(0).to_pylist()
        for i in ids:
            if i in seen or i is None:
                dupes.append((i, f))
            seen.add(i)
    if dupes:
        shown = ", ".join(f"{i!r} in {f}" for i, f in dupes[:5])
        raise ValueError(f"id column {id_column!r} must hold unique, non-null ids; {len(dupes)} do not: {shown}")


def readable_image_type(t: pa.DataType) -> bool:
    if pa.types.is_struct(t):
        return t.get_field_index("bytes") >= 0 or t.get_field_index("path") >= 0
    return pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_string(t) or pa.types.is_large_string(t)


def row_positions(paths: list[str], row_hashes, offsets: dict[str, int]) -> list[int]:
    """Global row positions for inputs without an id column, from Ray's deterministic row hash
    (file path + row index) and each file's offset in the input order."""
    out = []
    for p, h in zip(paths, row_hashes):
        out.append(offsets[p] + _hash_index(p, offsets["__rows__" + p])[h])
    return out


@lru_cache(maxsize=64)
def _hash_index(path: str, num_rows: int) -> dict[int, int]:
    from ray.data._internal.datasource_v2.common.synthesized_columns import _compute_row_hashes

    return {int(h): i for i, h in enumerate(_compute_row_hashes(path, 0, num_rows))}


def source_ids(batch: pa.Table, *, config: AugmentConfig, has_id: bool,
               offsets: dict[str, int]) -> tuple[pa.Table, pa.Array]:
    """(the batch without Ray's path column, each row's source id: input id, or row position)."""
    if has_id:
        return batch, batch.column(config.id_column)
    ids = pa.array(row_positions(batch.column("path").to_pylist(), batch.column(ROW_HASH).to_pylist(),
                                 offsets), pa.int64())
    return batch.drop_columns(["path"]), ids


def decode_batch(batch: pa.Table, *, config: AugmentConfig, has_id: bool, offsets: dict[str, int]) -> pa.Table:
    """CPU task: source ids and decoded pixels, at the size the resize policy gives."""
    batch, ids = source_ids(batch, config=config, has_id=has_id, offsets=offsets)
    return decode_rows(batch, image_column=config.image_column, source_ids=ids, resize=config.resize,
                       max_pixels=config.max_pixels)


class EditBatch:
    """Actor: loads (and verifies) every manipulator once, then edits batches.

    With ``decode``/``encode`` keyword arguments it also decodes its input and encodes its
    output (the CPU layout: each actor runs the whole row pipeline on its own core, as the
    no-Ray loop does, with no hand-off between processes); without them (GPU actors) those
    steps run in CPU tasks around it, so the GPU never waits for PNG codecs."""

    def __init__(self, manipulator_urls: list[str], call_pixels: int, use_judge: bool, num_gpus: float, threads: int,
                 decode: dict | None = None, encode: dict | None = None):
        import torch

        # The CPUs asked for, even where fit_actor_cpus reserved fewer: the reservation only
        # gates scheduling, and Ray would otherwise leave a 0-CPU actor one torch thread.
        torch.set_num_threads(threads)
        self.device = torch.device("cuda" if num_gpus > 0 and torch.cuda.is_available() else "cpu")
        self.artifacts = [load_manipulator(u, self.device) for u in manipulator_urls]
        self.call_pixels = call_pixels
        self.judge, self.names = None, None
        if use_judge:
            from sdd.domains.shapes.judge import ShapesJudge
            from sdd.domains.shapes.spec import ATTRIBUTES

            self.judge, self.names = ShapesJudge.from_pretrained(device=self.device), ATTRIBUTES
        self.decode, self.encode = decode, encode

    def __call__(self, batch: pa.Table) -> pa.Table:
        if self.decode is not None:  # the whole row pipeline, a pixel budget's worth of rows at a time
            config = self.decode["config"]
            batch, ids = source_ids(batch, **self.decode)
            return augment_rows(batch, self.artifacts, image_column=config.image_column, source_ids=ids,
                                resize=config.resize, max_pixels=config.max_pixels, device=self.device,
                                judge=self.judge, judge_names=self.names, call_pixels=self.call_pixels, **self.encode)
        out = edit_rows(batch, self.artifacts, device=self.device, judge=self.judge, judge_names=self.names,
                        call_pixels=self.call_pixels)
        return encode_rows(out, **self.encode) if self.encode is not None else out


def augment(config: AugmentConfig, inputs: tuple[list[str], pa.Schema, dict[str, int]] | None = None) -> dict:
    """The job as a function; returns the run manifest (also written to <output>/manifest.json).
    ``inputs``: (files, schema, row counts) when the caller has inspected them already."""
    from ray.data import ActorPoolStrategy, DataContext
    from ray.data.checkpoint import CheckpointConfig

    started = time.time()
    artifacts = resolve_manipulators(config.manipulators)
    manifests = [read_manifest(u) for u in artifacts]
    if inputs is None:
        files = input_files(config.input)
        inputs = (files, *inspect_inputs(files, config.image_column, config.id_column))
    files, schema, counts = inputs
    if not sum(counts.values()):
        log(f"augment: {config.input} has no rows; nothing to edit")
        return write_manifest(config, artifacts, manifests, 0, time.time() - started)
    has_id = config.id_column in schema.names
    use_judge = config.judge if config.judge is not None else all(
        str(m.get("teacher_id", "")).startswith("shapes-teacher@") for m in manifests)

    from pipelines.common import ray_storage

    fs_path, pa_fs = ray_storage(config.output) if config.output.startswith("s3://") else (None, None)
    read_paths = [f[len("s3://"):] if pa_fs else f for f in files]
    offsets, running = {}, 0
    for f, rp in zip(files, read_paths):
        offsets[rp], offsets["__rows__" + rp] = running, counts[f]
        running += counts[f]

    ctx = DataContext.get_current()
    id_column = config.id_column if has_id else ROW_HASH
    ctx.checkpoint_config = CheckpointConfig(
        id_column=id_column, checkpoint_path=_ray_path(join(config.output, CHECKPOINT), pa_fs),
        override_filesystem=pa_fs, delete_checkpoint_on_success=False,
    )
    ds = ray.data.read_parquet(read_paths, filesystem=pa_fs, include_paths=not has_id, include_row_hash=not has_id)
    # Parquet reads bin-pack small files into one block (a 2,000-row dataset is one block):
    # without this split, one task would decode, edit and encode everything, with no
    # parallelism, no streaming and memory that grows with the input.
    ds = ds.repartition(target_num_rows_per_block=config.batch_size)
    decode = {"config": config, "has_id": has_id, "offsets": offsets}
    encode = {"image_format": config.format, "quality": config.quality}
    on_gpu = config.resources.num_gpus > 0
    in_actor = config.codecs_in_actor if config.codecs_in_actor is not None else not on_gpu
    cluster_cpus = ray.cluster_resources().get("CPU", 0)
    concurrency = config.concurrency or edit_actors(config.resources.num_cpus, on_gpu, cluster_cpus)
    if not in_actor:
        ds = ds.map_batches(decode_batch, fn_kwargs=decode, batch_format="pyarrow", batch_size=config.batch_size)
    actor_cpus = fit_actor_cpus(config.resources.num_cpus, concurrency, cluster_cpus)
    if actor_cpus < config.resources.num_cpus:
        log(f"edit actors reserve {actor_cpus:g} CPU each (asked {config.resources.num_cpus:g}): "
            f"{RESERVED_CPUS:g} CPUs stay free for reading and Ray Data's checkpoint filter")
    ds = ds.map_batches(
        EditBatch, fn_constructor_args=(artifacts, config.call_pixels, use_judge, config.resources.num_gpus,
                                        max(1, round(config.resources.num_cpus)),
                                        decode if in_actor else None, encode if in_actor else None),
        batch_format="pyarrow", batch_size=config.batch_size,
        # Ray Data's default of two blocks in flight per actor: the next block is already on
        # the actor when one finishes. With one at a time (tried on CPUs, to shorten the tail),
        # each actor waited ~0.2 s per 256-row block for the executor's next dispatch (5% of
        # its time): 20,000 rows took 161 s against 145 s with two.
        compute=ActorPoolStrategy(size=concurrency),
        num_cpus=actor_cpus, num_gpus=config.resources.num_gpus or None,
    )
    if not in_actor:
        ds = ds.map_batches(encode_rows, fn_kwargs=encode, batch_format="pyarrow", batch_size=config.batch_size)
    staging = join(config.output, STAGING)
    ds.write_parquet(_ray_path(staging, pa_fs), filesystem=pa_fs, min_rows_per_file=config.rows_per_file)
    finalize(config.output)
    manifest = write_manifest(config, artifacts, manifests, sum(counts.values()), time.time() - started)
    log(f"augment: {manifest['counts']} in {manifest['wall_seconds']}s -> {config.output}")
    return manifest


RESERVED_CPUS = 2.0  # one for read/decode/encode tasks, one for Ray Data's CheckpointFilter actor


def edit_actors(num_cpus: float, on_gpu: bool, cluster_cpus: float) -> int:
    """Default actor count: one per GPU job (raise ``concurrency`` for more GPUs); on CPUs, as
    many actors of ``num_cpus`` threads as the cluster has cores for, each running the whole
    row pipeline (decode, edit, encode) like the no-Ray loop."""
    if on_gpu:
        return 1
    return max(1, int(cluster_cpus // max(1.0, num_cpus)))


def fit_actor_cpus(requested: float, concurrency: int, cluster_cpus: float) -> float:
    """CPUs each edit actor may reserve so the pipeline can always make progress.

    On a re-run Ray Data adds a CheckpointFilter actor (1 CPU, not configurable); with the edit
    actors pinned as well, a small cluster has no CPU left for the read tasks and the job
    waits forever. Edit actors therefore get at most what is left after ``RESERVED_CPUS``
    (possibly 0: logical CPUs only gate scheduling, the actors still use the cores), in whole
    CPUs when they cannot have what they asked: three actors of 1/3 CPU on three 1-CPU nodes
    leave no node a whole CPU for a read task, and the job deadlocks."""
    per_actor = max(0.0, cluster_cpus - RESERVED_CPUS) / concurrency
    return requested if per_actor >= requested else float(math.floor(per_actor))


def _ray_path(url: str, pa_fs) -> str:
    return url[len("s3://"):] if pa_fs is not None and url.startswith("s3://") else url


def finalize(output: str) -> None:
    """Split each staged file into data/ and rejects/ (atomic writes), then drop it.

    Execution is at least once (Ray retries tasks of dead workers and nodes; a re-run after a
    failure redoes rows whose checkpoint was not yet written), so the output is made exactly
    once here: a row whose key (source id, manipulator) is already written is dropped. A staged
    file that cannot be read is what a write killed mid-way leaves; its rows were not
    checkpointed, so the retry or re-run wrote them again. It is moved aside, never read."""
    fs, path = filesystem(join(output, STAGING))
    if not fs.exists(path):
        return
    data_keys, reject_keys = written_keys(output)
    seen = set(data_keys) | set(reject_keys)
    for f in sorted(x for x in fs.find(path) if x.endswith(".parquet")):
        name = f.rsplit("/", 1)[-1]
        try:
            with fs.open(f, "rb") as fh:
                table = pq.read_table(io.BytesIO(fh.read()))
        except Exception as exc:  # noqa: BLE001 -- any unreadable file is a torn write
            log(f"staged file {name} is unreadable ({exc}); moved to {QUARANTINE}/")
            quarantine = filesystem(join(output, QUARANTINE))[1]
            fs.makedirs(quarantine, exist_ok=True)
            fs.mv(f, f"{quarantine}/{name}")
            continue
        if ROW_HASH in table.column_names:  # Ray's checkpoint id for inputs without one; source_id says it all
            table = table.drop_columns([ROW_HASH])
        table, dropped = drop_written(table, seen)
        data, rejects = split_rows(table)
        if data.num_rows:
            write_table(data, join(output, "data", name))
        if rejects.num_rows:
            write_table(rejects, join(output, "rejects", name))
        log(f"wrote {name}: {data.num_rows} edited rows, {rejects.num_rows} rejects"
            + (f", {dropped} duplicate rows of a retried write dropped" if dropped else ""))
        fs.rm(f)


QUARANTINE = "_quarantine"


def row_keys(table: pa.Table) -> list[tuple]:
    """(source id, manipulator id or None for a reject): what must appear exactly once."""
    ids = table.column(SOURCE_ID).to_pylist()
    if "manipulator_id" in table.column_names:
        return list(zip(ids, table.column("manipulator_id").to_pylist()))
    return [(i, None) for i in ids]


def written_keys(output: str) -> tuple[list[tuple], list[tuple]]:
    """Keys of every row already in data/ and in rejects/, duplicates kept."""
    return tuple([k for t in read_column_files(join(output, part), [SOURCE_ID, "manipulator_id"]) for k in row_keys(t)]
                 for part in ("data", "rejects"))


def drop_written(table: pa.Table, seen: set[tuple]) -> tuple[pa.Table, int]:
    """Rows whose key is new (also within the table); ``seen`` is updated."""
    keep = []
    for key in row_keys(table):
        fresh = key not in seen
        keep.append(fresh)
        seen.add(key)
    dropped = keep.count(False)
    return (table.filter(pa.array(keep)) if dropped else table), dropped


def read_column_files(url: str, columns: list[str]):
    """Each Parquet file under ``url``, only the named columns that it has (read through a
    seekable file: the image bytes beside them are never downloaded)."""
    fs, path = filesystem(url)
    if not fs.exists(path):
        return
    for f in sorted(fs.find(path)):
        if f.endswith(".parquet"):
            with fs.open(f, "rb") as fh:
                pf = pq.ParquetFile(fh)
                yield pf.read(columns=[c for c in columns if c in pf.schema_arrow.names])


def write_manifest(config: AugmentConfig, artifacts: list[str], manifests: list[dict], n_input: int, seconds: float) -> dict:
    """Counts, and the exactly-once check: every input id in data/ (once per manipulator) or in
    rejects/ (once), never both; the job fails loudly if not."""
    edits = len(artifacts)
    data_keys, reject_keys = written_keys(config.output)
    reject_ids = [k[0] for k in reject_keys]
    out_ids, rej_ids = {k[0] for k in data_keys}, set(reject_ids)
    consistent = (len(data_keys) == len(set(data_keys)) == edits * len(out_ids)
                  and len(reject_ids) == len(rej_ids) and not (out_ids & rej_ids)
                  and len(out_ids) + len(rej_ids) == n_input)
    manifest = {
        "input": config.input, "output": config.output,
        "manipulators": [{"url": u, "prompt": m["prompt"], "id": f"{m['slug']}@{m['weights_sha256'][:12]}"}
                         for u, m in zip(artifacts, manifests)],
        "counts": {"input_rows": n_input, "output_rows": len(data_keys), "edits_per_row": edits,
                   "rejected_rows": len(reject_ids), "consistent": consistent},
        "format": config.format, "resize": config.resize, "wall_seconds": round(seconds, 1),
    }
    import json

    write_bytes_atomic(join(config.output, "manifest.json"), json.dumps(manifest, indent=2).encode())
    if not consistent:
        raise RuntimeError(f"augment counts do not add up: {manifest['counts']}")
    return manifest


def failure_reason(exc: BaseException) -> str:
    """The innermost cause in one line: Ray wraps a worker's exception in several layers."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    return f"{type(exc).__name__}: {lines[-1] if lines else ''}"[:500]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=None, help="YAML augment config")
    parser.add_argument("--input", default=None, help="Parquet file or directory URL")
    parser.add_argument("--output", default=None, help="output directory URL")
    parser.add_argument("--manipulators", default=None, help="comma-separated artifact or registry URLs")
    parser.add_argument("--format", default=None, choices=["png", "jpeg", "webp"])
    parser.add_argument("--address", default=None, help="Ray address (default: RAY_ADDRESS or a local Ray)")
    args = parser.parse_args(argv)
    try:
        config = load_augment_config(
            args.config, input=args.input, output=args.output, format=args.format,
            manipulators=args.manipulators.split(",") if args.manipulators else None,
        )
        for url, what in [(config.input, "input"), (config.output, "output"),
                          *((m, "manipulator") for m in config.manipulators)]:
            check_reachable(url, what)
        resolve_manipulators(config.manipulators)
        files = input_files(config.input)
        inputs = (files, *inspect_inputs(files, config.image_column, config.id_column))
    except (ConfigError, ArtifactError, ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    connect(args.address)
    try:
        manifest = augment(config, inputs)
    except Exception as exc:  # noqa: BLE001 -- the traceback is printed; the last line says what to do
        import traceback

        traceback.print_exc()
        print(f"error: augment failed: {failure_reason(exc)}; re-run the same command to resume: rows already "
              f"written to {config.output} are kept and not redone", file=sys.stderr, flush=True)
        sys.exit(1)
    print(manifest["counts"])


if __name__ == "__main__":
    # Run through the package, not as __main__: functions shipped to Ray workers are then
    # found by import there (pickling __main__'s lru_cache'd helpers by reference fails).
    from pipelines.augment import main as package_main

    sys.exit(package_main())
