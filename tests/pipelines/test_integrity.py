"""Integrity and security: no pickle is loaded from storage, credentials stay out of what the
jobs write, and files appear whole or not at all."""

from __future__ import annotations

import ast
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from loopback import REPO, LoopbackCluster, wait_for
from sdd.domains.shapes.dataset import shapes_table
from sdd.domains.shapes.render import generate

# calls that turn stored bytes into arbitrary Python objects
UNPICKLERS = {("pickle", "load"), ("pickle", "loads"), ("cloudpickle", "load"), ("cloudpickle", "loads"),
              ("torch", "load"), ("pd", "read_pickle"), ("pandas", "read_pickle"), ("joblib", "load"),
              ("dill", "load"), ("dill", "loads"), ("torch", "save")}


def project_sources() -> list[Path]:
    return [p for d in ("sdd", "pipelines", "benchmarks", "cluster") for p in (REPO / d).rglob("*.py")]


def test_no_project_code_loads_or_writes_pickles():
    """Weights are safetensors, tables Parquet, metadata JSON/YAML: nothing in the project calls
    an unpickler (or torch.save), and no numpy load allows pickles."""
    found = []
    for path in project_sources():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                owner = node.func.value.id if isinstance(node.func.value, ast.Name) else None
                if (owner, node.func.attr) in UNPICKLERS:
                    found.append(f"{path.relative_to(REPO)}:{node.lineno} {owner}.{node.func.attr}")
                if node.func.attr == "load" and any(k.arg == "allow_pickle" for k in node.keywords):
                    found.append(f"{path.relative_to(REPO)}:{node.lineno} allow_pickle")
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] + ([node.module] if isinstance(node, ast.ImportFrom) else [])
                if any(n and n.split(".")[0] in ("pickle", "cloudpickle", "dill", "joblib") for n in names):
                    found.append(f"{path.relative_to(REPO)}:{node.lineno} imports a pickler")
    assert not found, found
    shipped = [p.name for p in (REPO / "sdd").rglob("weights/**/*") if p.is_file()]
    assert shipped and all(n.endswith((".safetensors", ".json")) for n in shipped), shipped


@pytest.fixture
def secret_cluster(s3_server):
    """A loopback cluster whose every process holds a unique S3 secret in its environment."""
    secret = f"sdd-secret-{uuid.uuid4().hex}"
    saved = os.environ["AWS_SECRET_ACCESS_KEY"]
    os.environ["AWS_SECRET_ACCESS_KEY"] = secret
    cluster = LoopbackCluster(checkout_on_path=True)
    try:
        yield cluster, secret
    finally:
        cluster.shutdown()
        os.environ["AWS_SECRET_ACCESS_KEY"] = saved


def run_driver(module: str, *args: str, log: Path) -> str:
    done = subprocess.run([sys.executable, "-m", f"pipelines.{module}", *args], cwd=REPO, env=dict(os.environ),
                          stdout=log.open("w"), stderr=subprocess.STDOUT, timeout=600)
    text = log.read_text()
    assert done.returncode == 0, text[-4000:]
    return text


def test_credentials_never_appear_in_run_directories_outputs_or_logs(secret_cluster, random_teacher_dir, s3_bucket,
                                                                     tmp_path):
    """distill_all and augment with everything on S3; then every byte they wrote (the bucket),
    their logs and the cluster's session logs are searched for the secret they ran with."""
    from sdd.io.storage import filesystem

    cluster, secret = secret_cluster
    config = tmp_path / "job.yaml"
    config.write_text(json.dumps({
        "run_dir": f"{s3_bucket}/run", "teacher": str(random_teacher_dir), "prompts": ["a red object"],
        "distill": {"steps": 4, "batch_size": 2, "checkpoint_every": 2, "timestep_policy": "fixed:300",
                    "manipulator": {"architecture": "image_residual", "width": 8, "depth": 1}},
    }))
    logs = [tmp_path / "distill.log", tmp_path / "augment.log"]
    run_driver("distill_all", "--config", str(config), "--address", cluster.address, log=logs[0])
    fs, _ = filesystem(s3_bucket)
    bucket = s3_bucket[len("s3://"):]
    pq.write_table(shapes_table(generate(20, seed=1)), tmp_path / "in.parquet")
    fs.put(str(tmp_path / "in.parquet"), f"{bucket}/in/part-0.parquet")
    run_driver("augment", "--input", f"{s3_bucket}/in", "--output", f"{s3_bucket}/out", "--manipulators",
               f"{s3_bucket}/run", "--address", cluster.address, log=logs[1])

    stored = tmp_path / "bucket"
    fs.get(bucket, str(stored), recursive=True)
    written = [p for p in stored.rglob("*") if p.is_file()]
    assert any(p.name == "manifest.json" for p in written) and any(p.name == "summary.json" for p in written)
    session = cluster.session_logs()
    searched = written + logs + [p for p in session.rglob("*") if p.is_file()]
    leaks = [str(p) for p in searched if secret.encode() in p.read_bytes()]
    assert not leaks, leaks
    assert len(searched) > 50  # the search covered real files


WRITER = """
import sys
from sdd.io.storage import write_bytes_atomic
print("writing", flush=True)
write_bytes_atomic(sys.argv[1], b"x" * (int(sys.argv[2]) << 20))
print("done", flush=True)
"""


@pytest.mark.parametrize("where", ["local", "s3"])
def test_a_writer_killed_mid_write_leaves_no_partial_file(where, tmp_path, s3_bucket):
    """A reader sees the whole file or none: a writer SIGKILLed while writing 256 MiB leaves
    no file at the target name (the temporary name is never what readers look for)."""
    from sdd.io.storage import filesystem

    url = str(tmp_path / "out" / "part-0.parquet") if where == "local" else f"{s3_bucket}/out/part-0.parquet"
    fs, path = filesystem(url)
    proc = subprocess.Popen([sys.executable, "-c", WRITER, url, "256"], cwd=REPO, stdout=subprocess.PIPE, text=True,
                            start_new_session=True)
    assert proc.stdout.readline().strip() == "writing"
    if where == "local":
        wait_for(lambda: list((tmp_path / "out").glob(".tmp-*")), 60, "the temporary file", proc=proc, poll_s=0.01)
    else:
        time.sleep(0.5)  # bytes are flowing to the server
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    fs.invalidate_cache()
    assert not fs.exists(path), f"a killed writer left {url}"

    done = subprocess.run([sys.executable, "-c", WRITER, url, "1"], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    fs.invalidate_cache()
    assert fs.size(path) == 1 << 20
