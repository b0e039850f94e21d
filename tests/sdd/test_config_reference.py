"""docs/config.md is the generated reference of the job configs, and stays so."""

import subprocess
import sys
from pathlib import Path

from sdd.config_reference import COMMAND, markdown

DOC = Path(__file__).resolve().parents[2] / "docs" / "config.md"


def test_docs_config_is_the_generated_reference():
    assert DOC.read_text() == markdown(), f"docs/config.md is stale; regenerate it with `{COMMAND}`"


def test_the_reference_names_its_command_and_renders_no_reprs():
    text = markdown()
    assert COMMAND in text.split("## ")[0]
    cells = [c.strip() for line in text.splitlines() if line.startswith("|") for c in line.split(" | ")]
    assert cells
    for bad in ("PydanticUndefined", "Grid(", "Settings(", "Resources("):
        assert not any(bad in c for c in cells), bad


def test_every_key_of_both_configs_has_a_row_with_a_readable_default():
    text = markdown()
    for key in ("`run_dir`", "`select.timesteps`", "`distill.manipulator.architecture`",
                "`distill.resources.num_gpus`", "`eval.seed`", "`input`", "`resources.num_cpus`"):
        assert f"| {key} |" in text, key
    assert "| `select.timesteps` | {start, stop, step} or list of int | `{start: 100, stop: 900, step: 50}` |" in text
    assert "| `input` | str | required |" in text


def test_rendering_the_reference_imports_no_ray():
    code = "import sys, sdd.config_reference as r; r.markdown(); sys.exit('ray' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
