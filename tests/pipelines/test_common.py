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
