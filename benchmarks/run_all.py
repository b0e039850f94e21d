"""Run the benchmarks one after another, each in its own process, and collect their results.

    python benchmarks/run_all.py [--device cuda] [--dtype bfloat16] [--only edit,indicator,pack,select,augment,codecs] [--out runs/bench]

This is the one command for a machine that is lent for a short while (a GPU session): the
manipulator artifacts that bench_edit and bench_augment need are trained first if missing
(`sdd distill --steps 5 --timestep-policy fixed:300`: the architecture, not the weights, sets
an edit's cost), every bench writes ``<out>/<name>.json``, and a summary of the ratios is
printed at the end. ``--only`` runs a subset, for machines that limit a command's time.
``--dtype`` sets the teacher's dtype in the benches that run a teacher (results then go to
``<out>/<name>-<dtype>.json``, beside the default-dtype ones).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import DTYPES  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
NAMES = ("edit", "indicator", "pack", "select", "augment", "codecs")
TEACHER_BENCHES = ("edit", "indicator", "pack", "select")  # the ones that take --dtype
RATIO_KEYS = ("speedup", "steps_ratio", "memory_ratio_vs_one_run", "ray_vs_local", "shared_vs_per_prompt",
              "ray_vs_loop", "big_ray_vs_loop", "memory_ratio")


def bench_command(name: str, manipulators: Path, device: str, dtype: str | None = None) -> list[str]:
    """The command line of one bench; ``device`` and ``dtype`` go to those that take them."""
    command = _bench_command(name, manipulators, device)
    return command + ["--dtype", dtype] if dtype and name in TEACHER_BENCHES else command


def _bench_command(name: str, manipulators: Path, device: str) -> list[str]:
    script = [sys.executable, str(REPO / "benchmarks" / f"bench_{name}.py")]
    if name == "edit":
        red = next(manipulators.glob("a-red-object-*"))
        return script + ["--device", device, "--manipulator", str(red)]
    if name == "augment":
        return script + ["--manipulators", str(manipulators)]
    if name == "select":
        return script + ["--prompts", "2"]
    return script + ["--device", device]


def ensure_manipulators(out: Path) -> Path:
    """The six default-recipe artifacts under ``out/manips``, trained for 5 steps if missing."""
    manipulators = out / "manips" / "manipulators"
    if not any(manipulators.glob("a-red-object-*")):
        sdd = Path(sys.executable).with_name("sdd")
        subprocess.run([str(sdd), "distill", "--run-dir", str(out / "manips"), "--steps", "5",
                        "--timestep-policy", "fixed:300"], cwd=REPO, check=True)
    return manipulators


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu", help="cpu or cuda (for the benches that take one)")
    p.add_argument("--dtype", default=None, choices=DTYPES,
                   help="the teacher's dtype in the benches that run one (default: the teacher's own)")
    p.add_argument("--only", default=",".join(NAMES), help=f"comma-separated subset of {', '.join(NAMES)}")
    p.add_argument("--out", default="runs/bench", help="directory for the artifacts and the JSON results")
    args = p.parse_args()
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = sorted(set(names) - set(NAMES))
    if unknown:
        p.error(f"unknown benches {unknown}; expected some of {list(NAMES)}")
    out = (REPO / args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    manipulators = ensure_manipulators(out) if {"edit", "augment"} & set(names) else out

    summary = {}
    for name in names:
        dtype = args.dtype if name in TEACHER_BENCHES else None
        result = out / (f"{name}-{dtype}.json" if dtype else f"{name}.json")
        cmd = bench_command(name, manipulators, args.device, dtype) + ["--json", str(result)]
        print(f"== bench_{name}: {' '.join(cmd[1:])}", flush=True)
        start = time.perf_counter()
        done = subprocess.run(cmd, cwd=REPO)
        took = time.perf_counter() - start
        if done.returncode:
            summary[name] = f"failed (exit {done.returncode}) after {took:.0f} s"
            continue
        data = json.loads(result.read_text())
        ratios = ", ".join(f"{k}={data[k]}" for k in RATIO_KEYS if k in data)
        summary[name] = f"{ratios} ({took:.0f} s)"
    print(f"\n== summary ({args.device}{', ' + args.dtype if args.dtype else ''})")
    for name, line in summary.items():
        print(f"bench_{name}: {line}")
    if any(line.startswith("failed") for line in summary.values()):
        sys.exit(1)


if __name__ == "__main__":
    main()
