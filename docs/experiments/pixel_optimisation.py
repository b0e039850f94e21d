"""Can the teacher's guidance make an edit at all? Optimise the pixels of each source directly.

A manipulator must learn one function that makes the edit on every image; optimising each
image's own pixels under the same guidance (dds, no fidelity or mask cost, Adam per pixel)
asks only whether the gradient leads to the edit. If it does and a manipulator trained on
the same guidance does not, the limit is the manipulator's learning, not the teacher.

    python docs/experiments/pixel_optimisation.py --out docs/experiments/general_manipulator/pixel_optimisation.png

Rows of the figure: the sources, then one row per (prompt, t range) in the order printed.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from PIL import Image

from sdd.domains.shapes import analytic
from sdd.domains.shapes.edits import held_out_sources
from sdd.guidance import guided_gradient, inject
from sdd.io.images import from_tensor_range, image_grid, to_tensor_range
from sdd.teachers import load_teacher
from sdd.teachers.base import Conditioning

RUNS = [("a large object", 50, 400), ("a large object", 200, 600), ("a circle", 50, 400), ("a circle", 200, 600)]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=12)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--lr", type=float, default=0.02)
    p.add_argument("--guidance", type=float, default=7.5)
    p.add_argument("--out", required=True)
    args = p.parse_args()

    teacher = load_teacher("shapes")
    sources = held_out_sources(args.images, 10_000)
    x = to_tensor_range(sources.images)
    before = analytic.read(sources.images)
    rows = [sources.images]
    for prompt, lo, hi in RUNS:
        c = teacher.embed([prompt])
        emb = Conditioning(c.cond.repeat_interleave(len(x)), c.uncond.repeat_interleave(len(x)))
        y = x.clone().requires_grad_(True)
        opt = torch.optim.Adam([y], lr=args.lr)
        gen = torch.Generator().manual_seed(0)
        for _ in range(args.steps):
            t = torch.randint(lo, hi + 1, (len(x),), generator=gen)
            noise = torch.randn(x.shape, generator=gen)
            with torch.no_grad():
                g = guided_gradient(teacher, y.detach().clamp(-1, 1), emb, t, noise, guidance_scale=args.guidance,
                                    estimator="dds", source_latents=x)
            opt.zero_grad()
            inject(y, g).backward()
            opt.step()
            with torch.no_grad():
                y.clamp_(-1, 1)
        out = from_tensor_range(y.detach())
        after = analytic.read(out)
        kept = {a: float((after.labels[a] == before.labels[a]).mean()) for a in ("color", "background")}
        print(f"{prompt:16s} t in [{lo}, {hi}]: clean {after.clean.mean():.2f}, mean radius "
              f"{before.radius.mean():.1f} -> {after.radius.mean():.1f}, shapes {after.labels['shape'].tolist()}, "
              f"sizes {after.labels['size'].tolist()}, colour kept {kept['color']:.2f}, "
              f"background kept {kept['background']:.2f}", flush=True)
        rows.append(out)
    Image.fromarray(image_grid(np.concatenate(rows), rows=len(rows), scale=3)).save(args.out)


if __name__ == "__main__":
    main()
