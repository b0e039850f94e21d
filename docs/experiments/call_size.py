"""What one row costs the default manipulator and the shapes judge at each call size.

    python docs/experiments/call_size.py [--manipulator DIR]

The augment job hands its edit step 256-row blocks. This times each network per row at 8 to
256 rows per call, on 1 and 2 threads, with the weights in the default (NCHW) layout and in
channels-last (what ``load_manipulator`` and ``ShapesJudge`` now use); inputs are
channels-last, as ``to_tensor_range`` makes them. The median of 5 rounds over 1,024 rows.
Figures go to docs/benchmarks.md ("Augment, profiled", item 6) and ``sdd/batching.py``.
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from bench_edit import fresh_artifact  # noqa: E402
from common import median_seconds  # noqa: E402

from sdd.artifacts import load_manipulator  # noqa: E402
from sdd.domains.shapes.judge import ShapesJudge  # noqa: E402

CALL_SIZES = (8, 16, 32, 64, 128, 256)


def us_per_row(network, x: torch.Tensor, rows: int) -> float:
    """Microseconds per row over all of ``x`` in ``rows``-row calls: the benches' median of 5
    rounds, after a warm-up round."""

    def all_rows():
        for s in range(0, len(x), rows):
            network(x[s : s + rows])

    with torch.inference_mode():
        return 1e6 * median_seconds(all_rows, repeats=5, warmup=1) / len(x)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--manipulator", default=None, help="artifact directory (default: a fresh default manipulator)")
    args = p.parse_args()
    x = (torch.rand(1024, 3, 32, 32) * 2 - 1).contiguous(memory_format=torch.channels_last)
    # a fresh default manipulator unless one is given: its cost does not depend on its weights
    artifact = load_manipulator(args.manipulator) if args.manipulator else fresh_artifact(torch.device("cpu"))
    channels_last = {"manipulator": artifact.manipulator, "judge": ShapesJudge.from_pretrained().net}
    for name, network in channels_last.items():
        nchw = copy.deepcopy(network).to(memory_format=torch.contiguous_format)
        for threads in (1, 2):
            torch.set_num_threads(threads)
            for layout, net in (("nchw", nchw), ("channels_last", network)):
                costs = {rows: round(us_per_row(net, x, rows)) for rows in CALL_SIZES}
                print({"network": name, "threads": threads, "weights": layout, "us_per_row_by_call_size": costs}, flush=True)


if __name__ == "__main__":
    main()
