"""Train one pack of edit prompts with a recipe variant; strict figures and a before/after grid.

The recipe comparison of docs/experiments/general_manipulator.md is this script run once per
variant, on one prompt of each edit family in one pack:

    python docs/experiments/edit_families.py --config configs/shapes_edits.yaml \\
        --set distill.manipulator.architecture=image_residual --out runs/families/residual

It trains what `sdd distill` trains for that config (the same `DistillConfig`, built by
`sdd.runs.make_distiller`), evaluates each manipulator with the strict evaluation on
``eval.images`` held-out images, appends one JSON row per prompt to ``<out>/rows.jsonl`` and
writes ``<out>/before_after.png``. Timesteps: the config's policy; ``selected`` takes them
from ``--selected-from`` (a run directory's selected_timesteps.json).
"""

from __future__ import annotations

import argparse
import json
import time

import yaml

from sdd.config import load_config, parse_config
from sdd.domains.shapes.edits import EDIT_FAMILIES, held_out_sources
from sdd.io.images import from_tensor_range, to_tensor_range
from sdd.io.storage import join
from sdd.plots import before_after_png
from sdd.runs import RunDir, load_run_teacher, make_distiller, save_pack

ONE_PER_FAMILY = ["a red object", "a object on a black background", "a large object", "a circle"]


def apply_override(data: dict, item: str) -> None:
    """``a.b.c=<yaml>`` sets data['a']['b']['c']."""
    key, _, value = item.partition("=")
    *path, last = key.split(".")
    node = data
    for part in path:
        node = node.setdefault(part, {})
    node[last] = yaml.safe_load(value)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="configs/shapes_edits.yaml")
    p.add_argument("--prompt", action="append", help=f"default: one per family, {ONE_PER_FAMILY}")
    p.add_argument("--set", action="append", default=[], metavar="KEY=YAML",
                   help="config value to override, dotted, e.g. distill.guidance_scale=20")
    p.add_argument("--selected-from", default=None, help="run dir whose selected_timesteps.json to use")
    p.add_argument("--grid-images", type=int, default=12)
    p.add_argument("--out", required=True)
    args = p.parse_args()

    prompts = args.prompt or ONE_PER_FAMILY
    data = load_config(args.config, prompts=prompts).model_dump()
    for item in args.set:
        apply_override(data, item)
    config = parse_config(data, "--set")
    selected = RunDir(args.selected_from).read_json("selected_timesteps.json", default={}) if args.selected_from else {}
    teacher = load_run_teacher(config)
    distiller = make_distiller(config, teacher, prompts, selected)
    started = time.time()
    distiller.run()
    run = RunDir(args.out)
    records = save_pack(config, run, teacher, distiller, time.time() - started)
    with open(join(args.out, "rows.jsonl"), "a") as f:
        for record in records:
            family = next(name for name, family in EDIT_FAMILIES.items() if record["prompt"] in family)
            row = {"set": args.set, "family": family, **record}
            f.write(json.dumps(row, default=str) + "\n")
            ev = record["evaluation"]
            print(f"{record['prompt']:34s} edit {ev['editability']:.3f} (judge {ev['judge']['editability']:.3f}) "
                  f"kept {min(ev['preservation'].values()):.3f} clean {ev['clean']:.3f} psnr {ev['background_psnr']:.1f} "
                  f"fail {ev['failures']}", flush=True)
    x = to_tensor_range(held_out_sources(args.grid_images, config.eval.seed).images)
    rows = {m: from_tensor_range(m_.eval()(x).detach()) for m, m_ in zip(prompts, distiller.manipulators)}
    run.write_bytes(before_after_png(from_tensor_range(x), rows), "before_after.png")


if __name__ == "__main__":
    main()
