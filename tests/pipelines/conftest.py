"""A real local Ray for the pipeline tests (one per session: starting Ray costs seconds)."""

import os

import pytest


@pytest.fixture(scope="session")
def local_ray():
    import ray

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()
