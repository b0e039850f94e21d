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

from builders import save_random_manipulators
from loopback import REPO, wait_for
from sdd.domains.shapes.dataset import shapes_table
from sdd.domains.shapes.render import generate

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
    return ",".join(save_random_manipulators(tmp_path / "registry", ["a red object", "a blue object"], width=16, depth=2))


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


def test_stopped_worker_node_loses_no_row(fresh_cluster, augment_input, two_manipulators, tmp_path):
    """The node running the edit actor is stopped mid-run: its tasks and actor move to the
    nodes left, lost blocks are recomputed from lineage, and no row is lost or doubled."""
    out = tmp_path / "out"
    log = tmp_path / "driver.log"
    driver = start_driver("augment", *augment_args(fresh_cluster, augment_input, two_manipulators, out), log=log)
    wait_for(lambda: staged_files(out) >= 2, 300, "the first written blocks", proc=driver)
    on_workers = [node for _, node in fresh_cluster.processes("EditBatch") if node in fresh_cluster.workers]
    victim = on_workers[0] if on_workers else fresh_cluster.workers[0]
    fresh_cluster.stop_node(victim)
    assert driver.poll() is None and not (out / "manifest.json").exists(), "the node must stop mid-run"
    text = finish(driver, log)
    assert driver.returncode == 0, text[-4000:]
    assert_exactly_once(out, FILES * ROWS_PER_FILE, edits=2)


def distill_config(tmp_path: Path, prompts: list[str], steps: int) -> Path:
    """Real teacher (so the result has an evaluation), a fixed timestep (no selection sweep),
    checkpoints often, packs of one run one after the other."""
    path = tmp_path / "job.yaml"
    path.write_text(json.dumps({
        "run_dir": str(tmp_path / "run"), "prompts": prompts,
        "distill": {"steps": steps, "batch_size": 16, "checkpoint_every": 10, "pack": 1, "max_concurrent_trials": 1,
                    "timestep_policy": "fixed:300", "max_failures": 2},
        "eval": {"images": 50},
    }))
    return path


def checkpoints(run: Path, prompt: str) -> list[Path]:
    from sdd.artifacts import slugify

    return sorted((run / "ray").glob(f"distill-{slugify(prompt)}/checkpoint_*"))


def uninterrupted_weights(config_path: Path, prompt: str) -> dict:
    """The same training in this process, never interrupted: what a resume must reproduce
    (every step's randomness derives from (seed, step), and checkpoints hold the optimizer)."""
    from sdd.config import load_config
    from sdd.runs import load_run_teacher, make_distiller

    config = load_config(str(config_path))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the Train worker (1 CPU): same reduction order
    try:
        distiller = make_distiller(config, load_run_teacher(config), [prompt], {})
        distiller.run(progress=False)
    finally:
        torch.set_num_threads(threads)
    return distiller.manipulators[0].state_dict()


def assert_same_weights(artifact_url: str, expected: dict) -> None:
    from sdd.artifacts import load_manipulator

    loaded = load_manipulator(artifact_url).manipulator.state_dict()  # verifies the SHA-256
    assert loaded.keys() == expected.keys()
    for k in expected:
        assert torch.allclose(loaded[k], expected[k], atol=1e-6), k


def test_killed_train_worker_restores_from_its_checkpoint(fault_cluster, tmp_path):
    from sdd.artifacts import Registry

    prompt = "a green object"
    config = distill_config(tmp_path, [prompt], steps=40)
    log = tmp_path / "driver.log"
    driver = start_driver("distill_all", "--config", str(config), "--address", fault_cluster.address, log=log)
    # A checkpoint directory appears before the controller has registered the report; the one
    # before the newest is registered for sure.
    wait_for(lambda: len(checkpoints(tmp_path / "run", prompt)) >= 2, 300, "two checkpoints", proc=driver)
    fault_cluster.kill("RayTrainWorker")
    text = finish(driver, log)
    assert driver.returncode == 0, text[-4000:]
    assert f"{prompt}']: resumed from step" in text, text[-4000:]
    (artifact,) = Registry(str(tmp_path / "run")).list()
    assert artifact["metrics"]["steps"] == 40
    assert 0 <= artifact["metrics"]["evaluation"]["editability"] <= 1
    assert_same_weights(artifact["url"], uninterrupted_weights(config, prompt))


def test_killed_driver_rerun_skips_finished_prompts_and_resumes_the_interrupted_one(fault_cluster, tmp_path):
    from sdd.artifacts import Registry

    first, second = "a red object", "a blue object"
    config = distill_config(tmp_path, [first, second], steps=40)
    args = ["--config", str(config), "--address", fault_cluster.address]
    log = tmp_path / "driver.log"
    driver = start_driver("distill_all", *args, log=log)
    wait_for(lambda: len(checkpoints(tmp_path / "run", second)) >= 2, 600, "two checkpoints of the second prompt",
             proc=driver)
    os.killpg(driver.pid, signal.SIGKILL)
    driver.wait()
    registry = Registry(str(tmp_path / "run"))
    assert [m["prompt"] for m in registry.list()] == [first], "killed while the second prompt trained"
    finished = registry.list()[0]["weights_sha256"]

    log2 = tmp_path / "rerun.log"
    rerun = start_driver("distill_all", *args, log=log2)
    text = finish(rerun, log2)
    assert rerun.returncode == 0, text[-4000:]
    assert f"{first!r}: already in the registry, skipped" in text
    assert f"{second}']: resumed from step" in text and f"{first}']: resumed" not in text
    by_prompt = {m["prompt"]: m for m in registry.list()}
    assert by_prompt[first]["weights_sha256"] == finished
    assert_same_weights(by_prompt[second]["url"], uninterrupted_weights(config, second))


def test_s3_outage_during_writes_then_a_rerun_completes_without_duplicates(fault_cluster, augment_input,
                                                                           two_manipulators, s3_bucket, s3_server,
                                                                           tmp_path):
    """Input, manipulators and output on S3 behind a proxy that is cut mid-write for ten
    seconds: the job either rides it out (Ray Data retries S3 writes) or fails with a clear
    error; a re-run then completes, and every id is in the output exactly once."""
    import time
    from urllib.parse import urlparse

    from sdd.io.storage import filesystem
    from tcp_proxy import TcpProxy

    fs, _ = filesystem(s3_bucket)
    bucket = s3_bucket[len("s3://"):]
    fs.put(str(augment_input), f"{bucket}/in", recursive=True)
    fs.put(str(Path(two_manipulators.split(",")[0]).parent), f"{bucket}/registry/manipulators", recursive=True)
    proxy = TcpProxy(urlparse(s3_server).port)
    out = f"{s3_bucket}/out"
    args = ["--address", fault_cluster.address, "--input", f"{s3_bucket}/in", "--output", out,
            "--manipulators", f"{s3_bucket}/registry", "--config", str(small_batches(tmp_path))]
    env = {"AWS_ENDPOINT_URL": proxy.endpoint}

    def staged() -> int:
        fs.invalidate_cache()
        return len(fs.glob(f"{bucket}/out/_staging/*.parquet"))

    log = tmp_path / "driver.log"
    driver = start_driver("augment", *args, log=log, env=env)
    wait_for(lambda: staged() >= 2, 300, "the first written blocks", proc=driver)
    proxy.cut()
    time.sleep(10)
    proxy.restore()
    assert proxy.refused > 0, "the outage must be felt: S3 requests were attempted while it lasted"
    text = finish(driver, log)
    runs = 1
    if driver.returncode != 0:
        last = text.strip().splitlines()[-1]
        assert last.startswith("error: augment failed:") and "re-run" in last, text[-3000:]
        rerun_log = tmp_path / "rerun.log"
        rerun = start_driver("augment", *args, log=rerun_log, env=env)
        text = finish(rerun, rerun_log)
        assert rerun.returncode == 0, text[-4000:]
        runs = 2
    local = tmp_path / "back"
    fs.get(f"{bucket}/out", str(local), recursive=True)
    assert_exactly_once(local, FILES * ROWS_PER_FILE, edits=2)
    print(f"S3 outage: {proxy.refused} connections refused, finished after {runs} run(s)")
