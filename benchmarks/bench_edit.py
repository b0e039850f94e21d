"""Edit throughput: an SDD manipulator (one forward pass) against SDEdit with the same teacher
at the strength that reaches the manipulator's editability, same batch size and threads.

    python benchmarks/bench_edit.py [--manipulator DIR] [--strength 0.7] [--device cuda] [--dtype bfloat16]

The default strength, 0.7, is where SDEdit first reaches the default recolour
manipulator's editability on `a red object` (99.5% against 100%;
docs/results/shapes_recolour/sdedit_a_red_object.csv). Without ``--manipulator`` a freshly
built default manipulator is timed: its cost does not depend on its weights.
Target: >= 200x images per second. ``--dtype`` sets the teacher's (SDEdit's) dtype; the
manipulator is loaded and applied as ``pipelines/augment.py`` does (``Artifact.edit``, float32).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402
from common import cuda_sync, median_seconds, parser, report, seconds_per_call, setup, teacher_dtype  # noqa: E402

from sdd.artifacts import Artifact, load_manipulator, save_manipulator  # noqa: E402
from sdd.config import DistillSettings  # noqa: E402
from sdd.domains.shapes.render import generate  # noqa: E402
from sdd.eval.sdedit import SDEditEditor  # noqa: E402
from sdd.io.images import to_tensor_range  # noqa: E402
from sdd.manipulators import build  # noqa: E402
from sdd.teachers import load_teacher  # noqa: E402
from sdd.teachers.precision import dtype_name  # noqa: E402


def fresh_artifact(device: torch.device) -> Artifact:
    """A freshly built default manipulator, saved and loaded as the jobs load theirs."""
    with tempfile.TemporaryDirectory(prefix="bench_edit_") as url:
        save_manipulator(url, build(**DistillSettings().manipulator.hparams()), prompt="a red object")
        return load_manipulator(url, device=device)


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--manipulator", default=None, help="artifact directory (default: a fresh default manipulator)")
    p.add_argument("--strength", type=float, default=0.7)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--sdedit-steps", type=int, default=50, help="DDIM steps of the full schedule")
    args = p.parse_args()
    setup(args)
    device = torch.device(args.device)
    teacher = load_teacher(None, device=device, dtype=teacher_dtype(args.dtype))
    artifact = load_manipulator(args.manipulator, device=device) if args.manipulator else fresh_artifact(device)
    guidance = getattr(teacher, "sampling_defaults", {}).get("guidance_scale", 2.0)
    sdedit = SDEditEditor(teacher, "a red object", strength=args.strength, guidance_scale=guidance, steps=args.sdedit_steps)
    images = to_tensor_range(generate(args.batch_size, seed=4).images).to(device)
    sync = cuda_sync(args.device)

    @torch.inference_mode()
    def sdd_edit(calls: int = 1):
        for _ in range(calls):
            artifact.edit(images)

    t_sdd = seconds_per_call(sdd_edit, args.repeats, args.warmup, sync)
    t_sdedit = median_seconds(lambda: sdedit(images), args.repeats, args.warmup, sync)
    n = args.batch_size
    report("bench_edit", {
        "device": args.device, "teacher_dtype": dtype_name(teacher.dtype), "threads": torch.get_num_threads(), "batch_size": n, "strength": args.strength,
        "sdedit_denoiser_calls_per_image": sdedit.denoiser_calls_per_image,
        "sdd_images_per_s": round(n / t_sdd, 1), "sdedit_images_per_s": round(n / t_sdedit, 2),
        "speedup": round(t_sdedit / t_sdd, 1),
    }, args)


if __name__ == "__main__":
    main()
