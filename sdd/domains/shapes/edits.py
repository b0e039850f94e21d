"""The shapes world's edit task: six recolour prompts and the images they are trained on.

Each prompt ``a {color} object`` names one target attribute the judge can check. Training
sources are fresh shapes images of every colour, so sources already of the target colour are
included and must come out unchanged.
"""

from __future__ import annotations

import numpy as np
import torch

from sdd.io.images import to_tensor_range

from . import spec
from .captions import caption
from .render import ShapesBatch, generate, render, sample_labels

RECOLOUR_PROMPTS: dict[str, dict[str, str]] = {caption(color=c): {"color": c} for c in spec.COLORS}


def target_of(prompt: str) -> dict[str, str]:
    """The attribute(s) a prompt asks for, for evaluation: ``a red object`` -> {"color": "red"}."""
    try:
        return RECOLOUR_PROMPTS[prompt]
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
