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
    """A multi-node Ray cluster on 127.0.0.1: a head (with the dashboard, for `ray job submit`)
    and two worker nodes with their own CPUs, each a separate raylet. Yields the dashboard URL.
    Ray's own Cluster helper stops exactly these processes (``ray stop`` would kill every
    Ray process on the machine, the session's local Ray included).

    Each worker node gets its own runtime-env directory, as separate machines have separate
    disks: sharing one, a node that unpacks the job's working_dir for the first time replaces
    the directory the driver runs in (Ray unpacks with overwrite), and the driver's cwd is
    gone mid-job (FileNotFoundError from os.getcwd in Tune)."""
    import socket

    from ray.cluster_utils import Cluster

    def free_port() -> int:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    dashboard_port = free_port()
    # Every node's dashboard agent on its own free port: the default (52365) may still be held
    # by a Ray that another test module just shut down, and a head whose agent cannot bind
    # answers `ray job submit` with "No available agent to submit job".
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 1, "include_dashboard": True, "dashboard_host": "127.0.0.1", "dashboard_port": dashboard_port,
        "dashboard_agent_listen_port": free_port(),
    })
    for i in range(2):
        cluster.add_node(num_cpus=1, resources={f"worker{i}": 1}, runtime_env_dir_name=f"runtime_resources_worker{i}",
                         dashboard_agent_listen_port=free_port())
    cluster.wait_for_nodes()
    try:
        yield f"http://127.0.0.1:{dashboard_port}"
    finally:
        cluster.shutdown()
