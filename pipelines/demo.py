"""`make demo`: the main job end to end on the embedded shapes world, on a local Ray.

    python pipelines/demo.py [--out runs/demo] [--images 2000]

1. distill_all with no config: six `a {color} object` manipulators (timestep selection,
   then Ray Tune trials of Ray Train distillation), summary table printed;
2. a fresh shapes Parquet of ``--images`` rows (a seed the distillation never saw);
3. augment it with all six manipulators (``--images`` x 6 edited rows), manifest counts
   printed.

Re-running with the same ``--out`` reuses what is done (the registry, the written rows).
"""

from __future__ import annotations

import argparse
import sys
import time

from pipelines.common import absolute, connect, log

DATA_SEED = 20_000  # disjoint from training (seed 0..) and evaluation (10_000) draws


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="runs/demo", help="directory for the run, the input and the augmented data")
    parser.add_argument("--images", type=int, default=2000, help="rows of the shapes Parquet to augment")
    parser.add_argument("--address", default=None, help="Ray address (default: RAY_ADDRESS or a local Ray)")
    args = parser.parse_args(argv)

    from pipelines.augment import augment, load_augment_config
    from pipelines.distill_all import distill_all
    from sdd.cli import print_summary
    from sdd.config import load_config
    from sdd.domains.shapes.dataset import write_shapes_dataset
    from sdd.io.storage import join

    started = time.time()
    out = absolute(args.out)
    config = load_config(None, run_dir=join(out, "run"))
    connect(args.address)

    log(f"[1/3] distill_all: {len(config.prompts)} prompts -> {config.run_dir}")
    records = distill_all(config)
    print_summary(records)
    distilled = time.time()

    data_url = join(out, "shapes.parquet")
    table = write_shapes_dataset(data_url, args.images, DATA_SEED)
    log(f"[2/3] wrote {table.num_rows} shapes images to {data_url}")

    augment_config = load_augment_config(None, input=data_url, output=join(out, "augmented"), manipulators=[config.run_dir])
    log(f"[3/3] augment: {table.num_rows} rows x {len(records)} manipulators -> {augment_config.output}")
    manifest = augment(augment_config)
    finished = time.time()
    log(f"manifest counts: {manifest['counts']}")
    log(f"demo finished in {finished - started:.0f}s (distill_all {distilled - started:.0f}s, "
        f"augment {finished - distilled:.0f}s); before/after grid: {config.run_dir}/plots/before_after.png")


if __name__ == "__main__":
    from pipelines.demo import main as package_main

    sys.exit(package_main())
