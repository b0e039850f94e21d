"""Storage and inputs a config names are checked before any Ray work, with one clear line."""

import subprocess
import sys
import time
from pathlib import Path

import pytest

from loopback import free_port
from sdd.config import ConfigError, parse_config
from sdd.preflight import check_job

REPO = Path(__file__).resolve().parents[2]


def test_missing_or_wrong_teacher_directories(tmp_path):
    with pytest.raises(ConfigError, match="teacher checkpoint directory .* does not exist"):
        check_job(parse_config({"teacher": str(tmp_path / "nope")}))
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "config.json").write_text("{}")
    with pytest.raises(ConfigError, match="neither a diffusers checkpoint"):
        check_job(parse_config({"teacher": str(tmp_path / "half")}))
    with pytest.raises(ConfigError, match="sources .* does not exist"):
        check_job(parse_config({"sources": str(tmp_path / "images.parquet")}))
    check_job(parse_config({}))  # the embedded default needs nothing


def test_missing_bucket_on_a_live_endpoint(s3_server):
    with pytest.raises(ConfigError, match="bucket 'no-such-bucket' does not exist"):
        check_job(parse_config({"run_dir": "s3://no-such-bucket/run"}))


def test_unreachable_s3_endpoint_fails_fast_before_ray(tmp_path, monkeypatch):
    """A dead endpoint: botocore alone would retry for minutes; the job says so at once."""
    dead = f"http://127.0.0.1:{free_port()}"
    env = {"AWS_ENDPOINT_URL": dead, "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "y", "PATH": "/usr/bin:/bin",
           "RAY_ADDRESS": ""}
    started = time.time()
    done = subprocess.run([sys.executable, "pipelines/distill_all.py", "--run-dir", "s3://bucket/run"], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr[-2000:]
    assert f"the S3 endpoint {dead} is unreachable" in done.stderr
    assert "Started a local Ray instance" not in done.stdout + done.stderr
    assert time.time() - started < 60
