"""How hard, and how consistently, the teacher pushes each edit prompt at each t.

For held-out shapes images left unedited, the dds guidance gradient (at identity it is the
classifier term times the guidance scale) is drawn under several noises per image and t:

    |g|  mean per-image norm of one draw
    snr  |mean over draws|^2 / mean |draw|^2 per image: 1 when every draw agrees,
         1/draws when they are pure noise

and the mean over draws at two timesteps is drawn as a map of the descent direction (what the
edit should add; grey = nothing):

    python docs/experiments/guidance_probe.py --out docs/experiments/general_manipulator/guidance_probe.png
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from PIL import Image

from sdd.domains.shapes.edits import held_out_sources
from sdd.guidance import guided_gradient
from sdd.io.images import from_tensor_range, image_grid, to_tensor_range
from sdd.teachers import load_teacher
from sdd.teachers.base import Conditioning

PROMPTS = ["a red object", "a object on a black background", "a large object", "a small object", "a circle",
           "a square"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=16)
    p.add_argument("--draws", type=int, default=8)
    p.add_argument("--guidance", type=float, default=7.5)
    p.add_argument("--timesteps", default="100,200,300,400,500,600,700,800")
    p.add_argument("--maps-at", default="200,500", help="timesteps whose mean gradient is drawn")
    p.add_argument("--out", required=True, help="PNG of the maps (sources on top, then two rows per prompt)")
    args = p.parse_args()
    timesteps = [int(v) for v in args.timesteps.split(",")]
    maps_at = {int(v) for v in args.maps_at.split(",")}

    teacher = load_teacher("shapes")
    sources = held_out_sources(args.images, 10_000)
    z = teacher.encode(to_tensor_range(sources.images))
    n, draws, shown = args.images, args.draws, min(args.images, 8)
    maps = []
    for prompt in PROMPTS:
        c = teacher.embed([prompt])
        cells = []
        for t in timesteps:
            zz = z.repeat(draws, 1, 1, 1)
            emb = Conditioning(c.cond.repeat_interleave(len(zz)), c.uncond.repeat_interleave(len(zz)))
            noise = torch.randn(zz.shape, generator=torch.Generator().manual_seed(t))
            with torch.no_grad():
                g = guided_gradient(teacher, zz, emb, torch.full((len(zz),), t), noise,
                                    guidance_scale=args.guidance, estimator="dds", source_latents=zz)
            g = g.view(draws, n, -1)
            mean = g.mean(0)
            snr = (mean.norm(dim=1) ** 2 / (g.norm(dim=2) ** 2).mean(0)).mean().item()
            cells.append(f"t{t} |g| {g.norm(dim=2).mean():.2f} snr {snr:.2f}")
            if t in maps_at:
                m = mean.view(n, *z.shape[1:])[:shown]
                maps.append(from_tensor_range(-m / m.abs().amax((1, 2, 3), keepdim=True)))
        print(f"{prompt:32s} " + " | ".join(cells), flush=True)
    grid = image_grid(np.concatenate([sources.images[:shown]] + maps), rows=1 + len(maps), scale=3)
    Image.fromarray(grid).save(args.out)


if __name__ == "__main__":
    main()
