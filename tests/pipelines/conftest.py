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
    """A head and two 1-CPU worker nodes on 127.0.0.1 (tests/loopback.py), shared by a module."""
    from loopback import LoopbackCluster

    cluster = LoopbackCluster()
    try:
        yield cluster
    finally:
        cluster.shutdown()


@pytest.fixture(scope="module")
def fault_cluster(s3_server):
    """A loopback cluster for faults the cluster survives whole (killed workers and drivers,
    an S3 outage): shared by a module, as starting one costs seconds."""
    from loopback import LoopbackCluster

    cluster = LoopbackCluster(checkout_on_path=True)
    try:
        yield cluster
    finally:
        cluster.shutdown()


@pytest.fixture
def fresh_cluster(s3_server):
    """A loopback cluster of its own, for a test that stops one of its nodes."""
    from loopback import LoopbackCluster

    cluster = LoopbackCluster(checkout_on_path=True)
    try:
        yield cluster
    finally:
        cluster.shutdown()
