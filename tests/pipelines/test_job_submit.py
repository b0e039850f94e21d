"""The jobs as users run them: `ray job submit --working-dir .` to a multi-node cluster on loopback."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq

from sdd.artifacts import Registry
from sdd.domains.shapes.dataset import shapes_table
from sdd.domains.shapes.render import generate

REPO = Path(__file__).resolve().parents[2]


def submit(address: str, *entrypoint: str) -> str:
    """`ray job submit` and wait; returns the job's output, fails the test with it otherwise."""
    env = dict(os.environ, RAY_ADDRESS=address, RAY_AUTH_MODE="disabled")
    ray_cli = str(Path(sys.executable).with_name("ray"))
    deadline = time.time() + 120
    while True:
        done = subprocess.run([ray_cli, "job", "submit", "--working-dir", ".", "--", sys.executable, *entrypoint],
                              cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
        # a freshly started head's job API answers before its dashboard agent registers
        if "No available agent to submit job" not in done.stdout + done.stderr or time.time() > deadline:
            break
        time.sleep(3)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    return done.stdout


def test_distill_all_then_augment_through_ray_job_submit(loopback_cluster, random_teacher_dir, tmp_path):
    config = tmp_path / "job.yaml"
    config.write_text(json.dumps({
        "run_dir": str(tmp_path / "run"), "teacher": str(random_teacher_dir),
        "prompts": ["a red object", "a blue object"],
        "select": {"images": 2, "shard_images": 1, "draws": 2, "policy": "argmin",
                   "timesteps": {"start": 200, "stop": 600, "step": 400}},
        "distill": {"steps": 4, "batch_size": 2, "checkpoint_every": 2, "max_concurrent_trials": 2,
                    "manipulator": {"width": 8, "depth": 1}},
        "eval": {"images": 10},
    }))
    out = submit(loopback_cluster.dashboard_url, "pipelines/distill_all.py", "--config", str(config))
    assert "distill_all finished" in out and "a blue object" in out
    assert [m["prompt"] for m in Registry(str(tmp_path / "run")).list()] == ["a blue object", "a red object"]

    pq.write_table(shapes_table(generate(16, seed=1)), tmp_path / "in.parquet")
    out = submit(loopback_cluster.dashboard_url, "pipelines/augment.py", "--input", str(tmp_path / "in.parquet"),
                 "--output", str(tmp_path / "aug"), "--manipulators", str(tmp_path / "run"))
    manifest = json.loads((tmp_path / "aug" / "manifest.json").read_text())
    assert manifest["counts"] == {"input_rows": 16, "output_rows": 32, "edits_per_row": 2, "rejected_rows": 0,
                                  "consistent": True}
