"""cluster/ and configs/: every file parses, carries what KubeRay / the cluster launcher
require, names entrypoints and configs that exist and validate, and agrees with pyproject."""

import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
IMAGE_ROOT = "/home/ray/sdd-ray/"  # where cluster/Dockerfile puts the project


def load(name: str) -> dict:
    return yaml.safe_load((REPO / "cluster" / name).read_text())


def check_cluster_spec(spec: dict) -> None:
    assert spec["rayVersion"] == "2.60.0"
    head = spec["headGroupSpec"]
    assert head["rayStartParams"]["dashboard-host"] == "0.0.0.0"
    assert head["template"]["spec"]["containers"][0]["image"]
    groups = spec["workerGroupSpecs"]
    gpu = [g for g in groups if g["template"]["spec"]["containers"][0]["resources"]["limits"].get("nvidia.com/gpu")]
    assert gpu, "a GPU worker group requesting nvidia.com/gpu"
    for g in gpu:
        assert g["groupName"] and 0 <= g["minReplicas"] <= g["replicas"] <= g["maxReplicas"]
    assert spec["enableInTreeAutoscaling"] is True


def local_path(entry_path: str) -> Path:
    assert entry_path.startswith(IMAGE_ROOT), entry_path
    return REPO / entry_path[len(IMAGE_ROOT):]


def test_raycluster_has_a_head_and_an_autoscaling_gpu_group():
    doc = load("raycluster.yaml")
    assert doc["apiVersion"] == "ray.io/v1" and doc["kind"] == "RayCluster" and doc["metadata"]["name"]
    check_cluster_spec(doc["spec"])


@pytest.mark.parametrize("name", ["rayjob-distill.yaml", "rayjob-augment.yaml"])
def test_rayjobs_name_existing_entrypoints_and_configs(name):
    doc = load(name)
    assert doc["apiVersion"] == "ray.io/v1" and doc["kind"] == "RayJob"
    spec = doc["spec"]
    assert spec["shutdownAfterJobFinishes"] is True
    check_cluster_spec(spec["rayClusterSpec"])
    yaml.safe_load(spec["runtimeEnvYAML"])
    argv = shlex.split(spec["entrypoint"])
    assert argv[0] == "python"
    script = local_path(argv[1])
    assert script.is_file(), script
    config = local_path(argv[argv.index("--config") + 1])
    assert config.is_file(), config
    done = subprocess.run([sys.executable, str(script.relative_to(REPO)), "--help"], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "usage:" in done.stdout, done.stderr[-2000:]


def test_example_configs_validate():
    from pipelines.augment import load_augment_config
    from sdd.config import load_config

    job = load_config(REPO / "configs" / "sd_celeba_s3.yaml")
    assert job.teacher.startswith("s3://") and job.run_dir.startswith("s3://")
    assert job.distill.resources.num_gpus >= 1 and 0 < job.select.resources.num_gpus < 1
    augment = load_augment_config(str(REPO / "configs" / "augment_celeba_s3.yaml"))
    assert augment.input.startswith("s3://") and augment.resources.num_gpus > 0
    load_config(REPO / "configs" / "studies" / "shapes_recolour.yaml")


def test_cluster_launcher_config():
    doc = load("aws.yaml")
    assert doc["cluster_name"] and doc["provider"]["type"] == "aws" and doc["provider"]["region"]
    types = doc["available_node_types"]
    assert doc["head_node_type"] in types
    workers = [t for name, t in types.items() if name != doc["head_node_type"]]
    assert workers and all(t["max_workers"] >= t["min_workers"] >= 0 for t in workers)
    assert all(re.match(r"(g|p)\d", t["node_config"]["InstanceType"]) for t in workers), "GPU instance types"
    assert doc["max_workers"] >= max(t["max_workers"] for t in workers)


def test_runtime_env_pip_list_is_pyproject_dependencies():
    runtime_env = load("runtime_env.yaml")
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert runtime_env["pip"] == project["dependencies"]
    assert runtime_env["working_dir"] == "."


def test_dockerfile_installs_the_project_where_the_jobs_expect_it():
    text = (REPO / "cluster" / "Dockerfile").read_text()
    assert "FROM rayproject/ray:2.60.0" in text and f"WORKDIR {IMAGE_ROOT.rstrip('/')}" in text
    assert "pip install" in text


def test_local_cluster_script_is_valid_bash_with_usage():
    script = REPO / "cluster" / "local.sh"
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    done = subprocess.run(["bash", str(script)], capture_output=True, text=True)
    assert done.returncode == 2 and "start|status|stop-node <node>|stop" in done.stderr
