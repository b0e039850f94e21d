"""Train one pack of prompts with a recipe variant and print the judge's figures for each.

Each six-prompt recipe table of docs/experiments/recolour_*.md is two runs of this per recipe,
one pack of three prompts each, side by side with one torch thread each:

    OMP_NUM_THREADS=1 python docs/experiments/recipe_pack.py --set contrast_weight=0.15 \\
        --set contrast_scope=moved --prompt "a red object" --prompt "a green object" --prompt "a blue object"

It trains exactly what `sdd distill` trains for that config (the same `DistillConfig`, built
by `sdd.runs.make_distiller`), on timesteps already selected by a run (default: `make demo`'s),
so that a variant is compared at the same selection, and puts the artifacts in the registry
of the run dir --out (`sdd eval --manipulator <out>/manipulators/<slug>` reads them again).
"""

from __future__ import annotations

import argparse
import json
import time

import yaml

from sdd.config import load_config, parse_config
from sdd.runs import RunDir, load_run_teacher, make_distiller, save_pack


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="configs/studies/shapes_recolour.yaml")
    p.add_argument("--prompt", action="append", required=True)
    p.add_argument("--set", action="append", default=[], metavar="KEY=YAML",
                   help="distill setting to override, e.g. contrast_weight=0.15 or timestep_policy=selected-anneal:200")
    p.add_argument("--selected-from", default="runs/demo/run", help="run dir whose selected_timesteps.json to use")
    p.add_argument("--out", default="runs/recipe_pack")
    args = p.parse_args()

    data = load_config(args.config, prompts=args.prompt).model_dump()
    for item in args.set:
        key, _, value = item.partition("=")
        data["distill"][key] = yaml.safe_load(value)
    config = parse_config(data, "--set")
    selected = RunDir(args.selected_from).read_json("selected_timesteps.json", default={})
    teacher = load_run_teacher(config)
    distiller = make_distiller(config, teacher, args.prompt, selected)
    started = time.time()
    distiller.run()
    for record in save_pack(config, RunDir(args.out), teacher, distiller, time.time() - started):
        print(json.dumps({"set": args.set, **record}), flush=True)


if __name__ == "__main__":
    main()
