"""How well a teacher follows prompts, judged by the shapes judge.

Three prompt sets, each sampled with DDIM + classifier-free guidance and read by the judge:
``full`` (random full captions of combinations seen in training), ``held_out`` (the eight
combinations the teacher never saw, every background) and ``partial`` (``a {color} object``).
An attribute counts as followed when the judge reads the word the prompt said.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sdd.io.images import from_tensor_range
from sdd.sampling import sample
from sdd.teachers.base import Teacher

from . import spec
from .captions import caption
from .judge import ShapesJudge

# the bars: prompt set -> attribute -> minimum fraction followed
TARGETS = {
    "full": {"color": 0.95, "shape": 0.90, "size": 0.95, "background": 0.95},
    "held_out": {"color": 0.90, "shape": 0.85},
    "partial": {"color": 0.95},
}


@dataclass
class PromptSet:
    name: str
    prompts: list[str]
    expected: dict[str, np.ndarray]  # attribute -> label index the prompt asked for


def prompt_sets(n_full: int = 192, per_held_out: int = 24, per_color: int = 32, seed: int = 0) -> list[PromptSet]:
    rng = np.random.default_rng(seed)
    seen = [
        (size, color, shape) for size in spec.SIZES for color in spec.COLORS for shape in spec.SHAPES
        if not spec.is_held_out(size, color, shape)
    ]
    picks = rng.integers(0, len(seen), n_full)
    backgrounds = rng.integers(0, len(spec.BACKGROUNDS), n_full)
    full = [(*seen[i], spec.BACKGROUNDS[b]) for i, b in zip(picks, backgrounds)]
    held = [
        (size, color, shape, spec.BACKGROUNDS[k % len(spec.BACKGROUNDS)])
        for size, color, shape in spec.HELD_OUT for k in range(per_held_out)
    ]

    def labelled(name: str, combos: list[tuple[str, str, str, str]]) -> PromptSet:
        return PromptSet(
            name,
            [caption(*c) for c in combos],
            {
                "size": np.array([spec.SIZES.index(c[0]) for c in combos]),
                "color": np.array([spec.COLORS.index(c[1]) for c in combos]),
                "shape": np.array([spec.SHAPES.index(c[2]) for c in combos]),
                "background": np.array([spec.BACKGROUNDS.index(c[3]) for c in combos]),
            },
        )

    colors = [c for c in spec.COLORS for _ in range(per_color)]
    partial = PromptSet(
        "partial", [caption(color=c) for c in colors], {"color": np.array([spec.COLORS.index(c) for c in colors])}
    )
    return [labelled("full", full), labelled("held_out", held), partial]


def measure(
    teacher: Teacher, judge: ShapesJudge, *, guidance_scale: float, steps: int = 50, seed: int = 0,
    sets: list[PromptSet] | None = None,
) -> tuple[dict[str, dict[str, float]], dict[str, np.ndarray]]:
    """(fraction followed per set and attribute, the sampled uint8 images per set)."""
    results, images = {}, {}
    for k, ps in enumerate(sets or prompt_sets(seed=seed)):
        imgs = from_tensor_range(sample(teacher, ps.prompts, guidance_scale=guidance_scale, steps=steps, seed=seed + k))
        pred = judge.predict(imgs)
        results[ps.name] = {attr: float((pred[attr] == want).mean()) for attr, want in ps.expected.items()}
        images[ps.name] = imgs
    return results, images


def meets_targets(results: dict[str, dict[str, float]]) -> bool:
    return all(results[s][a] >= bar for s, bars in TARGETS.items() for a, bar in bars.items())
