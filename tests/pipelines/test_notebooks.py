"""The notebooks run top to bottom against a run directory and an augmented dataset that
the real jobs produce here (distill_all, then augment, on a local Ray)."""

import json
from pathlib import Path

import nbformat
import pyarrow.parquet as pq
import pytest
from nbclient import NotebookClient

from pipelines.augment import augment, load_augment_config
from pipelines.distill_all import distill_all
from sdd.config import parse_config
from sdd.domains.shapes.dataset import shapes_table
from sdd.domains.shapes.render import generate

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
NAMES = ["01_indicator_analysis.ipynb", "02_distillation.ipynb", "03_augmented_dataset.ipynb"]


@pytest.fixture(scope="module")
def job_outputs(local_ray, random_teacher_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("notebook_run")
    config = parse_config({
        "run_dir": str(root / "run"), "teacher": str(random_teacher_dir), "prompts": ["a red object", "a blue object"],
        "select": {"images": 2, "shard_images": 2, "draws": 2, "policy": "argmin",
                   "timesteps": {"start": 200, "stop": 800, "step": 300}},
        "distill": {"steps": 6, "batch_size": 2, "checkpoint_every": 3, "manipulator": {"width": 8, "depth": 1}},
        "eval": {"images": 10},
    })
    distill_all(config)
    pq.write_table(shapes_table(generate(12, seed=2)), root / "in.parquet")
    augment(load_augment_config(None, input=str(root / "in.parquet"), output=str(root / "aug"),
                                manipulators=[str(root / "run")]))
    return root


@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs_on_real_job_outputs(name, job_outputs, monkeypatch):
    monkeypatch.setenv("SDD_RUN_DIR", str(job_outputs / "run"))
    monkeypatch.setenv("SDD_AUGMENTED", str(job_outputs / "aug"))
    monkeypatch.setenv("SDD_STUDY_DIR", str(NOTEBOOKS.parent / "docs" / "results" / "shapes_recolour"))
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    book = nbformat.read(NOTEBOOKS / name, as_version=4)
    NotebookClient(book, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    outputs = [o for c in book.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert any(o.output_type == "display_data" and "image/png" in o.get("data", {}) for o in outputs), "a plot"


def test_notebooks_are_committed_without_outputs():
    for name in NAMES:
        book = json.loads((NOTEBOOKS / name).read_text())
        code = [c for c in book["cells"] if c["cell_type"] == "code"]
        assert code and all(not c["outputs"] and c["execution_count"] is None for c in code), name
