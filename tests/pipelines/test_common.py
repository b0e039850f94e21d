"""Shared job plumbing: config paths that survive Ray Train's per-run working directory."""

import os

from pipelines.common import absolute_local_paths
from sdd.config import parse_config


def test_relative_local_paths_become_absolute_and_urls_are_kept(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = absolute_local_paths(parse_config({
        "run_dir": "runs/x", "teacher": "shapes", "sources": "data/in.parquet", "storage_path": "s3://b/ray",
    }))
    assert config.run_dir == os.path.join(str(tmp_path), "runs/x")
    assert config.sources == os.path.join(str(tmp_path), "data/in.parquet")
    assert config.teacher == "shapes" and config.storage_path == "s3://b/ray"
    assert absolute_local_paths(parse_config({"teacher": "s3://b/sd", "run_dir": "/abs/run"})).teacher == "s3://b/sd"


def test_every_script_has_help_and_bad_configs_fail_before_ray(tmp_path):
    """`--help` on every entrypoint, run as users run it; a bad config is a clear message and
    exit code 2 before any cluster work (no Ray process is started for it)."""
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    for script in ("select_timesteps", "distill_all", "augment", "demo"):
        done = subprocess.run([sys.executable, f"pipelines/{script}.py", "--help"], cwd=repo,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0 and "usage:" in done.stdout, (script, done.stderr[-2000:])
    bad = tmp_path / "bad.yaml"
    bad.write_text("distill: {stepz: 3}\n")
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    for script in ("select_timesteps", "distill_all", "augment"):
        done = subprocess.run([sys.executable, f"pipelines/{script}.py", "--config", str(bad)], cwd=repo, env=env,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 2, (script, done.stdout[-1000:], done.stderr[-2000:])
        assert "stepz" in done.stderr or "invalid config" in done.stderr, (script, done.stderr[-2000:])
        assert "Started a local Ray instance" not in done.stdout + done.stderr
