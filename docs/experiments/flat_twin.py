"""Does a judge charge an edit with a size or shape change its outline does not have?

Each edited image is compared with two twins built on the source's exact coverage mask: its
"flat twin" (the edit's mean object colour over its mean background colour) and the target's
canonical colour over the edit's background. A `color_grid` edit keeps the source's outline
by construction, so every size or shape miss that the flat twin repeats and the target-colour
twin does not is the judge reading geometry off colour (docs/experiments/recolour_calibration.md):

    python docs/experiments/flat_twin.py --manipulator runs/demo/run/manipulators/a-red-object-9a748699 \\
        [--judge DIR_OF_ANOTHER_JUDGE]
"""

from __future__ import annotations

import argparse

import numpy as np

from sdd.artifacts import load_manipulator
from sdd.domains.shapes import spec
from sdd.domains.shapes.edits import held_out_sources, target_of
from sdd.domains.shapes.judge import ShapesJudge
from sdd.domains.shapes.render import composite, region_colours
from sdd.eval.metrics import edit_all


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--manipulator", required=True)
    p.add_argument("--judge", default=None, help="judge weights dir (default: the shipped judge)")
    p.add_argument("--n", type=int, default=1000)
    args = p.parse_args()

    artifact = load_manipulator(args.manipulator)
    manipulator = artifact.manipulator.eval()
    sources = held_out_sources(args.n)
    edited = edit_all(manipulator, sources, 250)
    object_rgb = region_colours(edited, sources.masks > 0.99)
    background_rgb = region_colours(edited, sources.masks == 0)
    target = np.array(spec.COLOR_RGB[target_of(artifact.manifest["prompt"])["color"]], float)
    images = {
        "edited": edited,
        "flat twin": composite(sources.masks, object_rgb, background_rgb),
        "target colour over the edit's background": composite(sources.masks, np.broadcast_to(target, object_rgb.shape), background_rgb),
    }
    judge = ShapesJudge.from_pretrained(args.judge)
    before = judge.predict(sources.images)
    print(f"{artifact.manifest['prompt']!r}, judge {judge.id}")
    for name, batch in images.items():
        after = judge.predict(batch)
        kept = {a: 100 * float((after[a] == before[a]).mean()) for a in ("shape", "size")}
        print(f"  {name:42s} shape kept {kept['shape']:5.1f}%  size kept {kept['size']:5.1f}%")


if __name__ == "__main__":
    main()
