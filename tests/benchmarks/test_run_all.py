"""run_all is what a short-lived GPU session runs: every bench it names must exist and be
given the artifacts and device it needs, and a wrong name must fail before anything runs."""

import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from run_all import NAMES, REPO, TEACHER_BENCHES, bench_command  # noqa: E402


def test_every_bench_is_a_script_with_its_inputs(tmp_path):
    (tmp_path / "a-red-object-0123abcd").mkdir()
    for name in NAMES:
        cmd = bench_command(name, tmp_path, "cuda")
        assert Path(cmd[1]).is_file(), cmd
        if name in ("edit", "indicator", "pack"):
            assert cmd[cmd.index("--device") + 1] == "cuda"
    assert str(tmp_path / "a-red-object-0123abcd") in bench_command("edit", tmp_path, "cpu")
    assert str(tmp_path) in bench_command("augment", tmp_path, "cpu")


def test_an_unknown_bench_fails_before_any_work(tmp_path):
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "run_all.py"), "--only", "edit,speed",
                           "--out", str(tmp_path / "bench")], capture_output=True, text=True)
    assert done.returncode == 2 and "unknown benches ['speed']" in done.stderr
    assert not (tmp_path / "bench").exists()


def test_the_teacher_dtype_reaches_every_bench_that_runs_a_teacher(tmp_path):
    """A flag a bench does not accept would cost a lent GPU session its first command."""
    (tmp_path / "a-red-object-0123abcd").mkdir()
    for name in NAMES:
        cmd = bench_command(name, tmp_path, "cpu", "bfloat16")
        assert ("--dtype" in cmd) == (name in TEACHER_BENCHES), cmd
        if name in TEACHER_BENCHES:
            assert cmd[cmd.index("--dtype") + 1] == "bfloat16"
            usage = subprocess.run([sys.executable, cmd[1], "--help"], capture_output=True, text=True, check=True)
            assert "--dtype" in usage.stdout
    assert "--dtype" not in bench_command("edit", tmp_path, "cpu")
