"""What every Ray job shares: arguments, config validation at the edge, connecting to Ray."""

from __future__ import annotations

import argparse
import os
import sys
import time

from sdd.config import ConfigError, JobConfig, load_config


def add_job_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default=None, help="YAML job config (default: the shapes world)")
    parser.add_argument("--run-dir", default=None, help="run directory URL (overrides the config)")
    parser.add_argument("--prompt", action="append", help="override the config's prompts (repeatable)")
    parser.add_argument("--address", default=None,
                        help="Ray address (default: RAY_ADDRESS, else a local Ray started for this job)")


def job_config(args) -> JobConfig:
    """Load and validate, or exit with the message: nothing has touched Ray yet."""
    from sdd.preflight import check_job, check_ray_precision

    try:
        config = absolute_local_paths(load_config(args.config, run_dir=args.run_dir, prompts=args.prompt or None))
        check_ray_precision(config)
        check_job(config)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    return config


def absolute(url: str | None) -> str | None:
    """A local path made absolute against the driver's directory; URLs (and the embedded
    ``shapes`` default) as they are."""
    if url is None or "://" in url or url == "shapes" or os.path.isabs(url):
        return url
    return os.path.abspath(url)


def absolute_local_paths(config: JobConfig) -> JobConfig:
    """Local run/storage/teacher/source paths made absolute against the driver's directory:
    Ray Train workers run in a per-run working directory, so a relative path there would
    silently point somewhere else."""
    return config.model_copy(update={
        "run_dir": absolute(config.run_dir), "storage_path": absolute(config.storage_path),
        "teacher": absolute(config.teacher), "sources": absolute(config.sources),
    })


def connect(address: str | None) -> None:
    import ray

    address = address or os.environ.get("RAY_ADDRESS")
    ray.init(address=address, log_to_driver=True, ignore_reinit_error=True)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def ray_storage(url: str) -> tuple[str, object | None]:
    """(storage_path, storage_filesystem) for Ray Train/Tune RunConfig.

    Local paths become absolute (every node of a local cluster shares them). ``s3://`` URLs
    get a pyarrow S3 filesystem honouring ``AWS_ENDPOINT_URL`` and, as Ray requires when a
    filesystem is given, a path without the scheme.
    """
    if url.startswith("s3://"):
        import pyarrow.fs as pafs

        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        kwargs = {"region": os.environ.get("AWS_DEFAULT_REGION", "us-east-1")}
        if endpoint:
            scheme, _, host = endpoint.partition("://")
            kwargs.update(endpoint_override=host or scheme, scheme=scheme if host else "https")
        return url[len("s3://"):].rstrip("/"), pafs.S3FileSystem(**kwargs)
    if "://" in url and not url.startswith("file://"):
        raise ValueError(f"Ray storage must be a local path or s3:// URL, got {url}")
    return os.path.abspath(url.removeprefix("file://")), None
