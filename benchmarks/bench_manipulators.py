"""Manipulator cost side by side: GFLOP per image and images/s, at the teacher's 32 px and
at a 512-px photo size, for each architecture at its default options.

    python benchmarks/bench_manipulators.py [--architectures mask_blend,image_residual] [--device cuda]

One fresh manipulator per architecture (its cost does not depend on its weights), applied
under inference mode as the edit jobs apply it; every timed repetition runs enough calls to
last about a second.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402
from common import cuda_sync, parser, report, seconds_per_call, setup  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from sdd.manipulators import build  # noqa: E402

SIZES = {32: 32, 512: 4}  # side -> images per call


def gflop_per_image(module: torch.nn.Module, x: torch.Tensor) -> float:
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        module(x)
    return counter.get_total_flops() / x.shape[0] / 1e9


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--architectures", default="salient_recolour,image_residual,mask_blend")
    args = p.parse_args()
    setup(args)
    sync = cuda_sync(args.device)
    result = {"device": args.device, "threads": torch.get_num_threads()}
    for name in args.architectures.split(","):
        module = build(name).to(args.device).eval()
        result[f"{name}_params_M"] = round(sum(q.numel() for q in module.parameters()) / 1e6, 2)
        for side, batch in SIZES.items():
            x = torch.rand(batch, 3, side, side, device=args.device) * 2 - 1

            @torch.inference_mode()
            def edit(calls: int = 1):
                for _ in range(calls):
                    module(x)

            seconds = seconds_per_call(edit, args.repeats, args.warmup, sync)
            result[f"{name}_{side}px_gflop"] = round(gflop_per_image(module, x), 3)
            result[f"{name}_{side}px_images_per_s"] = round(batch / seconds, 1)
    report("bench_manipulators", result, args)


if __name__ == "__main__":
    main()
