"""bench_augment's CPU breakdown files each Ray process under its role by command line. Ray's
command lines name each other (every worker carries ``--raylet-name``, the raylet carries the
worker command), which once filed every worker under "raylet"; these are the real shapes."""

import sys
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from bench_augment import process_role  # noqa: E402

SITE = "/venv/lib/python3.11/site-packages/ray"
WORKER = (f"/venv/bin/python {SITE}/_private/workers/default_worker.py --node-ip-address=10.0.0.1 "
          "--raylet-name=/tmp/ray/session_x/sockets/raylet --object-store-name=/tmp/ray/session_x/sockets/plasma_store")


def role(*titles: str, pid: int = 7) -> str:
    return process_role(SimpleNamespace(pid=pid), 1, "".join(f" | {t}" for t in titles))


def test_each_ray_process_gets_its_own_role():
    assert role("python pipelines/augment.py --input x", pid=1) == "driver"
    assert role(WORKER) == "task_workers"
    assert role("ray::IDLE") == "task_workers"
    assert role(WORKER, "ray::IDLE", "ray::MapWorker(MapBatches(EditBatch))") == "edit_actors"
    assert role(f"{SITE}/core/src/ray/raylet/raylet --raylet_socket_name=/tmp/s "
                f"--python_worker_command=/venv/bin/python {SITE}/_private/workers/default_worker.py") == "raylet"
    assert role(f"{SITE}/core/src/ray/gcs/gcs_server --log_dir=/tmp/ray/logs") == "gcs_server"
    assert role(f"/venv/bin/python -u {SITE}/dashboard/agent.py --node-id=abc --raylet-name=/tmp/s") == "dashboard_agent"
    assert role(f"/venv/bin/python {SITE}/dashboard/dashboard.py --host=127.0.0.1") == "dashboard"
    assert role("/venv/bin/python -B -c from multiprocessing.forkserver import main; "
                "main(25, 27, ['ray', 'ray.dashboard.subprocesses.module'])") == "dashboard"
    assert role(f"/venv/bin/python -u {SITE}/_private/runtime_env/agent/main.py --node-id=abc",
                "ray::RuntimeEnvAgent") == "runtime_env_agent"
    assert role(f"/venv/bin/python -u {SITE}/_private/log_monitor.py --session-dir=/tmp/s") == "log_monitor"
    assert role(f"/venv/bin/python -u {SITE}/autoscaler/_private/monitor.py --logs-dir=/tmp/l") == "monitor"
    assert role("/usr/bin/something-else") == "other"


def test_the_job_gets_the_loops_batch_size_and_the_layouts_threads(tmp_path):
    from bench_augment import job_config

    from pipelines.augment import load_augment_config

    def loaded(layout, batch_size):
        return load_augment_config(job_config(tmp_path, layout, 2, batch_size), input="in", output="out",
                                   manipulators=["m"])

    default = loaded("default", 256)
    assert (default.batch_size, default.resources.num_cpus) == (256, 1)
    assert loaded("default", 128).batch_size == 128
    one_actor = loaded("one-actor", 64)
    assert (one_actor.batch_size, one_actor.resources.num_cpus) == (64, 2)
