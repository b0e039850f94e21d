"""Is a recolour's shortfall the objective or the network? Optimise one affine colour transform
per held-out image directly on the distillation loss (no manipulator network), then measure it
like any editor. docs/experiments/recolour_calibration.md, the first table's last row:

    python docs/experiments/per_image_affine.py --prompt "a red object" --n 128 --steps 600

If these edits miss where the trained manipulator misses, the loss's fixed point is the limit.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from sdd.config import JobConfig
from sdd.distill import fidelity_penalty
from sdd.domains.shapes.edits import held_out_sources, target_of
from sdd.domains.shapes.judge import ShapesJudge
from sdd.eval import breakdown, evaluate
from sdd.guidance import guided_gradient, inject
from sdd.io.images import to_tensor_range
from sdd.manipulators.color_grid import cell_medians
from sdd.manipulators.range import clamp_to_image
from sdd.runs import load_run_teacher
from sdd.teachers.base import Conditioning


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--prompt", default="a red object")
    p.add_argument("--n", type=int, default=128, help="held-out images, one transform each")
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--lr", type=float, default=1e-2)
    p.add_argument("--timesteps", default="350,400", help="sampled uniformly per image and step")
    p.add_argument("--guidance", type=float, default=10.0)
    p.add_argument("--fidelity-weight", type=float, default=0.1)
    p.add_argument("--fidelity-loss", default="l1")
    p.add_argument("--pivot-median", action="store_true",
                   help="y = x + A (x - median) with no offset: the color_grid manipulator's pivot: median, bias: false")
    args = p.parse_args()

    teacher = load_run_teacher(JobConfig())
    sources = held_out_sources(args.n)
    x = to_tensor_range(sources.images)
    a = torch.zeros(args.n, 3, 3, requires_grad=True)
    b = torch.zeros(args.n, 3, 1, 1, requires_grad=True)
    optimizer = torch.optim.Adam([a, b], lr=args.lr)
    one = teacher.embed([args.prompt])
    emb = Conditioning(one.cond.repeat_interleave(args.n), one.uncond.repeat_interleave(args.n))
    timesteps = [int(t) for t in args.timesteps.split(",")]
    rng = np.random.default_rng(0)

    def edit(images: torch.Tensor) -> torch.Tensor:
        if args.pivot_median:
            return clamp_to_image(images + torch.einsum("bij,bjhw->bihw", a, images - cell_medians(images, 1)))
        return clamp_to_image(images + torch.einsum("bij,bjhw->bihw", a, images) + b)

    for step in range(args.steps):
        y = edit(x)
        t = torch.from_numpy(rng.choice(timesteps, size=args.n)).long()
        noise = torch.randn(y.shape, generator=torch.Generator().manual_seed(step))
        grad = guided_gradient(teacher, y.detach(), emb, t, noise, guidance_scale=args.guidance, estimator="classifier")
        fidelity = fidelity_penalty((y - x) ** 2, args.fidelity_loss).flatten(1).mean(1).sum()
        loss = inject(y, grad) / y[0].numel() + args.fidelity_weight * fidelity
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    judge, target = ShapesJudge.from_pretrained(), target_of(args.prompt)
    print(evaluate(edit, sources, target, judge, batch_size=args.n).as_dict())
    groups = breakdown(edit, sources, target, judge, batch_size=args.n)
    shift = np.average(groups["background_shift"], weights=groups["n"])
    print(f"mean background shift {shift:.2f}/255")
    print(groups.round(2).to_string(index=False))


if __name__ == "__main__":
    main()
