"""Faults injected for real on a multi-node loopback cluster: processes SIGKILLed, a node
stopped, the driver killed, the S3 endpoint cut. Each test states the guarantee it proves.

Drivers run as separate processes (``python -m pipelines.<job> --address``), as a user's do,
so a test can kill one and so their Ray connection is not the test session's.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from loopback import REPO, wait_for
from sdd.artifacts import save_manipulator
from sdd.domains.shapes.dataset import shapes_table
from sdd.domains.shapes.render import generate
from sdd.manipulators import ImageManipulator

FILES, ROWS_PER_FILE = 6, 200
BAD_IDS = {7, 333, 1001}


def start_driver(module: str, *args: str, log: Path, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", f"pipelines.{module}", *args], cwd=REPO,
                            env={**os.environ, **(env or {})}, stdout=log.open("w"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def finish(proc: subprocess.Popen, log: Path, timeout_s: float = 400) -> str:
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        raise AssertionError(f"driver did not finish in {timeout_s}s:\n{log.read_text()[-4000:]}")
    return log.read_text()


@pytest.fixture
def augment_input(tmp_path):
    """FILES Parquet files of shapes images, ids 0..N-1, a few undecodable rows."""
    d = tmp_path / "in"
    d.mkdir()
    images = generate(FILES * ROWS_PER_FILE, seed=5)
    table = shapes_table(images)
    cells = table.column("image").to_pylist()
    for i in BAD_IDS:
        cells[i] = {"bytes": b"not an image", "path": None}
    table = table.set_column(1, "image", pa.array(cells, table.schema.field("image").type))
    for f in range(FILES):
        pq.write_table(table.slice(f * ROWS_PER_FILE, ROWS_PER_FILE), d / f"part-{f}.parquet")
    return d


@pytest.fixture
def two_manipulators(tmp_path):
    urls = []
    for i, prompt in enumerate(["a red object", "a blue object"]):
        torch.manual_seed(i)
        url = str(tmp_path / "registry" / "manipulators" / f"m{i}")
        save_manipulator(url, ImageManipulator(width=16, depth=2), prompt=prompt,
                         teacher_id="shapes-teacher@test", extra={"image_size": 32})
        urls.append(url)
    return ",".join(urls)


def assert_exactly_once(out: Path, n_input: int, edits: int) -> None:
    """Read the output back independently of the job's own manifest check."""
    data = pq.read_table(out / "data", columns=["source_id", "manipulator_id"]).to_pylist()
    rejects = pq.read_table(out / "rejects", columns=["source_id"]).column("source_id").to_pylist()
    keys = [(r["source_id"], r["manipulator_id"]) for r in data]
    assert len(keys) == len(set(keys)), "duplicate edited rows"
    edited_ids = {k[0] for k in keys}
    assert len(keys) == edits * len(edited_ids), "a row is missing some of its edits"
    assert sorted(rejects) == sorted(BAD_IDS), "rejects are exactly the undecodable rows, once each"
    assert edited_ids | set(rejects) == set(range(n_input)) and not (edited_ids & set(rejects))
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"]["consistent"] and manifest["counts"]["input_rows"] == n_input
    assert not (out / "_staging").exists() or not any((out / "_staging").rglob("*.parquet"))


def staged_files(out: Path) -> int:
    return len(list((out / "_staging").glob("*.parquet"))) if (out / "_staging").exists() else 0


def augment_args(cluster, augment_input, two_manipulators, out) -> list[str]:
    return ["--address", cluster.address, "--input", str(augment_input), "--output", str(out),
            "--manipulators", two_manipulators, "--config", str(small_batches(out.parent))]


def small_batches(d: Path) -> Path:
    """Small batches: many blocks in flight, so a fault lands mid-stream."""
    path = d / "augment.yaml"
    path.write_text("batch_size: 16\nrows_per_file: 32\n")
    return path


def test_killed_edit_actor_is_restarted_and_every_row_appears_once(fault_cluster, augment_input, two_manipulators,
                                                                   tmp_path):
    out = tmp_path / "out"
    log = tmp_path / "driver.log"
    driver = start_driver("augment", *augment_args(fault_cluster, augment_input, two_manipulators, out), log=log)
    wait_for(lambda: staged_files(out) >= 2, 300, "the first written blocks", proc=driver)
    fault_cluster.kill("EditBatch")
    assert driver.poll() is None and not (out / "manifest.json").exists(), "the kill must land mid-run"
    text = finish(driver, log)
    assert driver.returncode == 0, text[-4000:]
    assert_exactly_once(out, FILES * ROWS_PER_FILE, edits=2)


def test_stopped_worker_node_loses_no_row(fault_cluster, augment_input, two_manipulators, tmp_path):
    """The node running the edit actor is stopped mid-run: its tasks and actor move to the
    nodes left, lost blocks are recomputed from lineage, and no row is lost or doubled."""
    out = tmp_path / "out"
    log = tmp_path / "driver.log"
    driver = start_driver("augment", *augment_args(fault_cluster, augment_input, two_manipulators, out), log=log)
    wait_for(lambda: staged_files(out) >= 2, 300, "the first written blocks", proc=driver)
    on_workers = [node for _, node in fault_cluster.processes("EditBatch") if node in fault_cluster.workers]
    victim = on_workers[0] if on_workers else fault_cluster.workers[0]
    fault_cluster.stop_node(victim)
    assert driver.poll() is None and not (out / "manifest.json").exists(), "the node must stop mid-run"
    text = finish(driver, log)
    assert driver.returncode == 0, text[-4000:]
    assert_exactly_once(out, FILES * ROWS_PER_FILE, edits=2)
