"""How well a teacher follows prompts, read by the judge and the analytic reader.

Four prompt sets, each sampled with DDIM + classifier-free guidance: ``full`` (random full
captions of combinations seen in training), ``held_out`` (the eight combinations the
teacher never saw, every background), ``partial`` (``a {color} object``) and ``edit_suite``
(the fifteen one-attribute edit prompts; its attributes are the four edit families). An
attribute counts as followed when the sample is clean (one object on a flat background,
``sdd.domains.shapes.analytic``) and both the judge and the analytic reader read the word
the prompt said: guidance can only teach what the teacher can draw. ``clean`` is the share
of a set's samples that are well-formed at all.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sdd.io.images import from_tensor_range
from sdd.sampling import sample
from sdd.teachers.base import Teacher

from . import analytic, spec
from .captions import caption
from .edits import EDIT_PROMPTS
from .judge import ShapesJudge

# the bars: prompt set -> attribute -> minimum fraction followed
TARGETS = {
    "full": {"color": 0.95, "shape": 0.90, "size": 0.95, "background": 0.95},
    "held_out": {"color": 0.90, "shape": 0.85},
    "partial": {"color": 0.95},
    "edit_suite": {"color": 0.95, "background": 0.95, "size": 0.95, "shape": 0.95},
}
SETS = tuple(TARGETS)


@dataclass
class PromptSet:
    name: str
    prompts: list[str]
    expected: dict[str, np.ndarray]  # attribute -> label index the prompt asked for (-1: not asked)


def prompt_sets(n_full: int = 192, per_held_out: int = 24, per_color: int = 32, seed: int = 0,
                per_edit: int = 48, names: tuple[str, ...] = SETS) -> list[PromptSet]:
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
    edits = [p for p in EDIT_PROMPTS for _ in range(per_edit)]
    suite = PromptSet("edit_suite", edits, {
        attribute: np.array([vocab.index(EDIT_PROMPTS[p][attribute]) if attribute in EDIT_PROMPTS[p] else -1
                             for p in edits])
        for attribute, vocab in spec.ATTRIBUTES.items()
    })
    sets = [labelled("full", full), labelled("held_out", held), partial, suite]
    return [s for s in sets if s.name in names]


def measure(
    teacher: Teacher, judge: ShapesJudge, *, guidance_scale: float, steps: int = 50, seed: int = 0,
    sets: list[PromptSet] | None = None,
) -> tuple[dict[str, dict[str, float]], dict[str, np.ndarray]]:
    """(fraction followed per set and attribute, the sampled uint8 images per set)."""
    results, images = {}, {}
    for ps in sets or prompt_sets(seed=seed):
        offset = SETS.index(ps.name) if ps.name in SETS else 0  # each set its own noise, however many are run
        imgs = from_tensor_range(sample(teacher, ps.prompts, guidance_scale=guidance_scale, steps=steps,
                                        seed=seed + offset, progress=False))
        results[ps.name] = followed(imgs, ps, judge)
        images[ps.name] = imgs
    return results, images


def followed(images: np.ndarray, ps: PromptSet, judge: ShapesJudge) -> dict[str, float]:
    """Per attribute the set asks for: the share of its samples that are clean and read as
    asked by both instruments; and ``clean``, the share of all samples that are well-formed."""
    pred, reading = judge.predict(images), analytic.read(images)
    out = {}
    for attribute, want in ps.expected.items():
        asked = want >= 0
        if asked.any():
            ok = reading.clean & (pred[attribute] == want) & (reading.labels[attribute] == want)
            out[attribute] = float(ok[asked].mean())
    out["clean"] = float(reading.clean.mean())
    return out


def meets_targets(results: dict[str, dict[str, float]]) -> bool:
    return all(results[s][a] >= bar for s, bars in TARGETS.items() if s in results for a, bar in bars.items())
