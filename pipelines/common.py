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
    try:
        return load_config(args.config, run_dir=args.run_dir, prompts=args.prompt or None)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)


def connect(address: str | None) -> None:
    import ray

    address = address or os.environ.get("RAY_ADDRESS")
    ray.init(address=address, log_to_driver=True, ignore_reinit_error=True)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)
