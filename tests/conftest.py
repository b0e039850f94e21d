"""Shared fixtures: real servers on loopback, small artifacts built on disk."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import torch

torch.set_num_threads(min(2, os.cpu_count() or 1))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def s3_server():
    """moto in server mode on 127.0.0.1: a real S3-compatible endpoint over HTTP.
    Sets the standard AWS variables so every S3 client in the process finds it."""
    port = free_port()
    moto = Path(sys.executable).with_name("moto_server")
    proc = subprocess.Popen(
        [str(moto), "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.time() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            if time.time() > deadline or proc.poll() is not None:
                proc.kill()
                raise RuntimeError("moto_server did not start")
            time.sleep(0.1)
    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing-secret",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": endpoint,
    }
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield endpoint
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def s3_bucket(s3_server, request):
    """A fresh bucket per test, as an s3:// URL prefix."""
    import s3fs

    import hashlib

    digest = hashlib.sha256(request.node.nodeid.encode()).hexdigest()[:8]  # parametrized tests differ
    import re

    name = "t-" + re.sub(r"[^a-z0-9-]", "-", request.node.name.lower())[:40].strip("-") + "-" + digest
    fs = s3fs.S3FileSystem(client_kwargs={"endpoint_url": s3_server})
    fs.mkdir(name)
    return f"s3://{name}"


@pytest.fixture(scope="session")
def tiny_sd_checkpoint(tmp_path_factory):
    from tiny_sd import build_tiny_sd

    return build_tiny_sd(tmp_path_factory.mktemp("tiny-sd"))


@pytest.fixture(scope="session")
def random_shapes_teacher():
    """The shapes teacher's architecture with random weights: fast, for mechanics tests
    (what the loop does), never for quality tests (what the teacher knows)."""
    from sdd.domains.shapes.train_teacher import TEACHER_CONFIG
    from sdd.teachers.shapes import ShapesTeacher, build_modules

    torch.manual_seed(0)
    unet, text_encoder, tokenizer = build_modules(TEACHER_CONFIG)
    # random init leaves the UNet's output layer at small values; that is fine for mechanics
    return ShapesTeacher(unet, text_encoder, tokenizer, TEACHER_CONFIG, "shapes-teacher@random")


@pytest.fixture(scope="session")
def random_teacher_dir(tmp_path_factory, random_shapes_teacher):
    """The random shapes teacher saved like the shipped one, for jobs that load teachers by
    URL (pipelines, CLI): mechanics tests must not depend on the trained weights."""
    import json

    from safetensors.torch import save_file

    from sdd.domains.shapes.train_teacher import modules_state

    d = tmp_path_factory.mktemp("random-teacher")
    t = random_shapes_teacher
    save_file(modules_state(t.unet, t.text_encoder), d / "model.safetensors")
    (d / "config.json").write_text(json.dumps(t.config))
    return d
