"""A real local Ray for the pipeline tests (one per session: starting Ray costs seconds)."""

import os

import pytest


@pytest.fixture(scope="session")
def local_ray(s3_server):
    import ray

    # started after the S3 server, so every Ray worker inherits its AWS_* variables
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    # The dashboard hosts the state API, which Ray Train V2 needs to clean up worker placement
    # groups: without it a finished trial's group is never released and the next one waits forever.
    ray.init(num_cpus=2, include_dashboard=True, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def loopback_cluster(s3_server):
    """A multi-node Ray cluster on 127.0.0.1 started with `cluster/local.sh` (what developers
    use): `ray start --head` plus two `ray start --address` worker nodes, each a separate raylet
    with its own CPUs, --temp-dir and dashboard-agent port (see local.sh for why). Yields the
    dashboard URL for `ray job submit`. Stopped with `ray stop`, which stops every Ray process
    on the machine: other test modules' local Rays are module-scoped and already shut down."""
    import shutil
    import socket
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    def free_port() -> int:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]

    script = Path(__file__).resolve().parents[2] / "cluster" / "local.sh"
    dashboard_port = free_port()
    root = tempfile.mkdtemp(prefix="sddray", dir="/tmp")
    env = dict(os.environ, RAY=str(Path(sys.executable).with_name("ray")), RAY_AUTH_MODE="disabled",
               SDD_LOCAL_CLUSTER_DIR=root,  # short: Ray's socket paths must stay under 108 bytes
               PORT=str(free_port()), DASHBOARD_PORT=str(dashboard_port), AGENT_PORT=str(free_port()))
    env.pop("RAY_ADDRESS", None)
    started = subprocess.run(["bash", str(script), "start"], env=env, capture_output=True, text=True, timeout=300)
    try:
        assert started.returncode == 0, started.stdout[-3000:] + started.stderr[-3000:]
        yield f"http://127.0.0.1:{dashboard_port}"
    finally:
        subprocess.run(["bash", str(script), "stop"], env=env, capture_output=True, timeout=120)
        shutil.rmtree(root, ignore_errors=True)
