"""A multi-node Ray cluster on 127.0.0.1 for tests, with handles for injecting faults.

A head (with the dashboard: ``ray job submit`` and Ray Train V2's state API need it) and
worker nodes with their own CPUs, each a separate raylet. Ray's own Cluster helper stops
exactly these processes (``ray stop`` would kill every Ray process on the machine, the
session's local Ray included).

Each worker node gets its own runtime-env directory, as separate machines have separate
disks: sharing one, a node that unpacks a job's working_dir for the first time replaces the
directory the driver runs in (Ray unpacks with overwrite). Every node's dashboard agent gets
its own free port: the default (52365) may still be held by a Ray that another test module
just shut down, and a head whose agent cannot bind answers ``ray job submit`` with "No
available agent to submit job".
"""

from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LoopbackCluster:
    def __init__(self, workers: int = 2, cpus_per_node: int = 1, checkout_on_path: bool = False):
        """``checkout_on_path``: the nodes' workers import ``pipelines``/``sdd`` from this checkout,
        as for a driver started in it with ``python -m``; without it a job must ship its code
        (``ray job submit --working-dir .``), as on a real cluster."""
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
        saved = os.environ.get("PYTHONPATH")
        if checkout_on_path:
            os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), saved]))
        try:
            self._start(workers, cpus_per_node)
        finally:
            if saved is None:
                os.environ.pop("PYTHONPATH", None)
            else:
                os.environ["PYTHONPATH"] = saved

    def _start(self, workers: int, cpus_per_node: int) -> None:
        from ray.cluster_utils import Cluster

        self.dashboard_port = free_port()
        self.cluster = Cluster(initialize_head=True, head_node_args={
            "num_cpus": cpus_per_node, "include_dashboard": True, "dashboard_host": "127.0.0.1",
            "dashboard_port": self.dashboard_port, "dashboard_agent_listen_port": free_port(),
        })
        self.workers = [
            self.cluster.add_node(num_cpus=cpus_per_node, resources={f"worker{i}": 1},
                                  runtime_env_dir_name=f"runtime_resources_worker{i}",
                                  dashboard_agent_listen_port=free_port())
            for i in range(workers)
        ]
        self.cluster.wait_for_nodes()

    @property
    def address(self) -> str:
        return self.cluster.address

    @property
    def dashboard_url(self) -> str:
        return f"http://127.0.0.1:{self.dashboard_port}"

    def nodes(self):
        return [self.cluster.head_node, *self.workers]

    @staticmethod
    def raylet_pid(node) -> int:
        return node.all_processes["raylet"][0].process.pid

    def processes(self, cmdline_contains: str) -> list[tuple[psutil.Process, object]]:
        """(process, node) for this cluster's worker processes whose command line (Ray sets it
        to ``ray::<actor or task>``) contains the string."""
        found = []
        for node in self.nodes():
            try:
                children = psutil.Process(self.raylet_pid(node)).children(recursive=True)
            except psutil.NoSuchProcess:
                continue
            for p in children:
                try:
                    if cmdline_contains in " ".join(p.cmdline()):
                        found.append((p, node))
                except psutil.Error:
                    pass
        return found

    def kill(self, cmdline_contains: str, timeout_s: float = 120) -> object:
        """SIGKILL the first matching worker process (waiting for one to exist); its node."""
        deadline = time.time() + timeout_s
        while time.time() < deadline:
            for proc, node in self.processes(cmdline_contains):
                proc.send_signal(signal.SIGKILL)
                return node
            time.sleep(0.2)
        raise AssertionError(f"no process matching {cmdline_contains!r} appeared within {timeout_s}s")

    def stop_node(self, node) -> None:
        """What `ray stop` does on one machine: its raylet and workers die, no graceful drain."""
        self.cluster.remove_node(node, allow_graceful=False)
        self.workers = [w for w in self.workers if w is not node]

    def shutdown(self) -> None:
        self.cluster.shutdown()


def wait_for(predicate, timeout_s: float, what: str, proc=None, poll_s: float = 0.2):
    """Poll until ``predicate()`` is truthy; fails early if ``proc`` (a driver) has exited."""
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"driver exited ({proc.returncode}) before {what}")
        time.sleep(poll_s)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
