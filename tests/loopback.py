"""The tests' multi-node Ray cluster on 127.0.0.1: ``cluster/local.sh`` itself, the one
developers start, with handles for injecting faults (kill a worker process, stop a node).

A head (with the dashboard: ``ray job submit`` and Ray Train V2's state API need it) and
worker nodes with their own CPUs, each a separate raylet with its own temp dir (so its own
runtime-env directory, as separate machines have separate disks). Every port is free and
every node's dashboard agent has its own (the default 52365 may still be held by a Ray
another test module just shut down; a head whose agent cannot bind answers ``ray job
submit`` with "No available agent to submit job"). ``local.sh stop`` stops exactly these
processes, never the session's other Ray.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LoopbackCluster:
    """``cluster/local.sh`` itself, on free ports under a short temporary root, with handles
    for injecting faults. Nodes are named as local.sh names them: ``head``, ``worker1``, ..."""

    def __init__(self, workers: int = 2, cpus_per_node: int = 1, checkout_on_path: bool = False):
        """``checkout_on_path``: the nodes' workers import ``pipelines``/``sdd`` from this checkout,
        as for a driver started in it with ``python -m``; without it a job must ship its code
        (``ray job submit --working-dir .``), as on a real cluster."""
        self.root = tempfile.mkdtemp(prefix="sr", dir="/tmp")  # Ray's socket paths live under it
        self.port, self.dashboard_port = free_port(), free_port()
        self.workers = [f"worker{i}" for i in range(1, workers + 1)]
        self.env = dict(os.environ, RAY=str(Path(sys.executable).with_name("ray")), SDD_LOCAL_CLUSTER_DIR=self.root,
                        HEAD_CPUS=str(cpus_per_node), WORKER_CPUS=str(cpus_per_node), WORKERS=str(workers),
                        PORT=str(self.port), DASHBOARD_PORT=str(self.dashboard_port),
                        AGENT_PORT=str(free_port_run(workers + 1)))
        self.env.setdefault("RAY_AUTH_MODE", "disabled")
        self.env.pop("RAY_ADDRESS", None)
        if checkout_on_path:
            self.env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
        try:
            self.local_sh("start")
            wait_for(lambda: self.alive_nodes() == workers + 1, 120, f"{workers + 1} nodes to register")
        except BaseException:
            self.shutdown()
            raise

    def local_sh(self, *args: str) -> str:
        done = subprocess.run(["bash", str(REPO / "cluster" / "local.sh"), *args], env=self.env, capture_output=True,
                              text=True, timeout=300)
        if done.returncode:
            raise RuntimeError(f"cluster/local.sh {' '.join(args)} failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
        return done.stdout

    def alive_nodes(self) -> int:
        try:
            with urllib.request.urlopen(f"{self.dashboard_url}/nodes?view=summary", timeout=5) as r:
                summary = json.load(r)["data"]["summary"]
        except (OSError, ValueError, KeyError):
            return 0
        return sum(1 for n in summary if n.get("raylet", {}).get("state") == "ALIVE")

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def dashboard_url(self) -> str:
        return f"http://127.0.0.1:{self.dashboard_port}"

    def nodes(self) -> list[str]:
        return ["head", *self.workers]

    def session_logs(self) -> Path:
        return Path(self.root) / "head" / "session_latest" / "logs"

    def raylet(self, node: str) -> psutil.Process | None:
        marker = f"{self.root}/{node}/"
        for p in psutil.process_iter(["name", "cmdline"]):
            try:
                if p.info["name"] == "raylet" and marker in " ".join(p.info["cmdline"] or []):
                    return p
            except psutil.Error:
                pass
        return None

    def processes(self, cmdline_contains: str) -> list[tuple[psutil.Process, str]]:
        """(process, node) for this cluster's worker processes whose command line (Ray sets it
        to ``ray::<actor or task>``) contains the string."""
        found = []
        for node in self.nodes():
            raylet = self.raylet(node)
            if raylet is None:
                continue
            try:
                children = raylet.children(recursive=True)
            except psutil.Error:
                continue
            for p in children:
                try:
                    if cmdline_contains in " ".join(p.cmdline()):
                        found.append((p, node))
                except psutil.Error:
                    pass
        return found

    def kill(self, cmdline_contains: str, timeout_s: float = 120) -> str:
        """SIGKILL the first matching worker process (waiting for one to exist); its node."""
        deadline = time.time() + timeout_s
        while time.time() < deadline:
            for proc, node in self.processes(cmdline_contains):
                proc.send_signal(signal.SIGKILL)
                return node
            time.sleep(0.2)
        raise AssertionError(f"no process matching {cmdline_contains!r} appeared within {timeout_s}s")

    def stop_node(self, node: str) -> None:
        """``cluster/local.sh stop-node``: that node's raylet, daemons and workers die."""
        self.local_sh("stop-node", node)
        self.workers = [w for w in self.workers if w != node]

    def shutdown(self) -> None:
        try:
            self.local_sh("stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


def free_port_run(n: int) -> int:
    """A port p with p .. p + n - 1 all free (local.sh gives node i the agent port p + i)."""
    for _ in range(100):
        base = free_port()
        try:
            for k in range(n):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", base + k))
            return base
        except OSError:
            continue
    raise RuntimeError(f"no run of {n} free ports found")


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
