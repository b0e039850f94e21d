"""The shapes world's edit suite: fifteen one-attribute prompts in four families, and the
images they are trained on.

Each prompt is a caption the teacher was trained on and names one target attribute the
judge and the analytic reader can check: a colour (``a red object``), a background
(``a object on a black background``), a size (``a large object``) or a shape (``a circle``).
Training sources are fresh shapes images with every attribute at random, so sources that
already have the target are included and must come out unchanged.
"""

from __future__ import annotations

import numpy as np
import torch

from sdd.io.images import to_tensor_range

from . import spec
from .captions import caption
from .render import ShapesBatch, generate, render, sample_labels

RECOLOUR_PROMPTS: dict[str, dict[str, str]] = {caption(color=c): {"color": c} for c in spec.COLORS}
# family -> prompt -> target; a family edits one attribute
EDIT_FAMILIES: dict[str, dict[str, dict[str, str]]] = {
    "recolour": RECOLOUR_PROMPTS,
    "background": {caption(background=b): {"background": b} for b in spec.BACKGROUNDS},
    "size": {caption(size=s): {"size": s} for s in spec.SIZES},
    "shape": {caption(shape=s): {"shape": s} for s in spec.SHAPES},
}
EDIT_PROMPTS: dict[str, dict[str, str]] = {p: t for family in EDIT_FAMILIES.values() for p, t in family.items()}


def family_of(prompt: str) -> str | None:
    return next((name for name, prompts in EDIT_FAMILIES.items() if prompt in prompts), None)


def target_of(prompt: str) -> dict[str, str]:
    """The attribute(s) a prompt asks for, for evaluation: ``a red object`` -> {"color": "red"}."""
    try:
        return EDIT_PROMPTS[prompt]
    except KeyError:
        words = set(prompt.split())
        target = {a: v for a, vocab in spec.ATTRIBUTES.items() for v in vocab if v in words}
        if not target:
            raise ValueError(f"prompt {prompt!r} names no shapes attribute to evaluate") from None
        return target


def training_sources(rng: np.random.Generator, n: int) -> torch.Tensor:
    """``n`` fresh images in [-1, 1] with uniformly random attributes (a distillation source)."""
    return to_tensor_range(render(rng, sample_labels(rng, n)).images)


def held_out_sources(n: int = 1000, seed: int = 10_000) -> ShapesBatch:
    """Evaluation images: a seed range that training (seeded by [seed, step]) never draws."""
    return generate(n, seed)
