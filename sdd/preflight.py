"""Checks that a job's storage and inputs are usable, run before any Ray work starts.

A config can be valid YAML with valid types and still name a teacher directory that does
not exist or an S3 endpoint that does not answer. Found on a cluster, such mistakes cost a
cluster start and surface as a traceback from a worker; found here, they are one line.
Every check is cheap: a TCP connect, an ``exists``, a file listing.
"""

from __future__ import annotations

import os
import socket
from urllib.parse import urlparse

from sdd.config import ConfigError, JobConfig
from sdd.io.storage import filesystem, join

CONNECT_TIMEOUT_S = 5.0


def s3_endpoint() -> str:
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or "https://s3.amazonaws.com"


def check_reachable(url: str, what: str) -> None:
    """An ``s3://`` URL's endpoint answers a TCP connect; its bucket exists. Without this,
    botocore retries a dead endpoint for minutes before the first error."""
    if not url.startswith("s3://"):
        return
    endpoint = urlparse(s3_endpoint())
    host = endpoint.hostname or ""
    port = endpoint.port or (443 if endpoint.scheme == "https" else 80)
    try:
        socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        raise ConfigError(f"{what} {url}: the S3 endpoint {s3_endpoint()} is unreachable ({exc}); "
                          "check AWS_ENDPOINT_URL and the network") from None
    bucket = url[len("s3://"):].split("/", 1)[0]
    fs, _ = filesystem(url)
    try:
        fs.ls(bucket, refresh=True)
    except FileNotFoundError:
        raise ConfigError(f"{what} {url}: bucket {bucket!r} does not exist at {s3_endpoint()}") from None
    except PermissionError as exc:
        raise ConfigError(f"{what} {url}: access to bucket {bucket!r} denied ({type(exc).__name__})") from None
    except Exception as exc:  # noqa: BLE001 -- botocore/aiohttp raise many types; the message matters
        raise ConfigError(f"{what} {url}: cannot list bucket {bucket!r} at {s3_endpoint()}: "
                          f"{type(exc).__name__}: {str(exc)[:300]}") from None


def check_exists(url: str, what: str) -> tuple:
    """(filesystem, path) of a URL that is reachable and exists."""
    check_reachable(url, what)
    fs, path = filesystem(url)
    if not fs.exists(path):
        raise ConfigError(f"{what} {url} does not exist")
    return fs, path


def check_teacher(url: str) -> None:
    if url == "shapes":
        return
    fs, path = check_exists(url, "teacher checkpoint directory")
    if fs.exists(join(path, "model_index.json")):
        return
    if fs.exists(join(path, "config.json")) and fs.exists(join(path, "model.safetensors")):
        return
    raise ConfigError(f"teacher {url} is neither a diffusers checkpoint (model_index.json) nor a shapes "
                      "teacher (config.json + model.safetensors)")


def check_sources(url: str) -> None:
    if url != "shapes":
        check_exists(url, "sources")


def check_ray_precision(config: JobConfig) -> None:
    """In the Ray pipelines ``device: auto`` means the GPU a task was given: a stage that asks
    for no GPU runs its teacher on CPU, where float16 is refused. Found in a task, that is a
    worker traceback after the cluster started; found here, one line."""
    if config.dtype != "float16" or config.device != "auto":
        return
    on_cpu = [f"{stage}.resources.num_gpus" for stage, settings in (("select", config.select), ("distill", config.distill))
              if not settings.resources.num_gpus]
    if on_cpu:
        from sdd.teachers.precision import CPU_FLOAT16_ERROR

        raise ConfigError(f"dtype float16, but {' and '.join(on_cpu)} {'is' if len(on_cpu) == 1 else 'are'} 0, so "
                          f"those tasks run the teacher on CPU: {CPU_FLOAT16_ERROR}")


def check_job(config: JobConfig) -> None:
    """Everything a select/distill job reads or writes, in the order a user would fix it."""
    check_reachable(config.run_dir, "run_dir")
    if config.storage_path:
        check_reachable(config.storage_path, "storage_path")
    check_teacher(config.teacher)
    check_sources(config.sources)
