"""Captions of the shapes domain, full and partial.

Partial captions drop attribute phrases: a dropped shape becomes the word ``object``, a
dropped size or colour disappears, a dropped background drops ``on a ... background``.
So ``a red object`` and ``a large object on a black background`` are captions the teacher
was trained on, which is what the edit prompts rely on.
"""

from __future__ import annotations

import numpy as np

from . import spec


def caption(
    size: str | None = None, color: str | None = None, shape: str | None = None, background: str | None = None
) -> str:
    words = ["a"]
    if size:
        words.append(size)
    if color:
        words.append(color)
    words.append(shape or "object")
    if background:
        words += ["on", "a", background, "background"]
    return " ".join(words)


def full_caption(size: str, color: str, shape: str, background: str) -> str:
    return caption(size, color, shape, background)


CAPTION_SCHEMES = ("independent", "subsets")


def training_captions(
    rng: np.random.Generator,
    labels: dict[str, np.ndarray],
    *,
    drop_attribute: float,
    drop_caption: float,
    scheme: str = "independent",
) -> list[str]:
    """Captions for teacher training; an empty string is the unconditional prompt of
    classifier-free guidance, drawn with probability ``drop_caption``.

    ``independent`` drops each attribute with probability ``drop_attribute``: mostly full
    captions, and a one-attribute caption such as ``a large object`` in under 3% of rows at
    0.2. ``subsets`` keeps a uniformly random number (1-4) of attributes, chosen uniformly:
    every caption length is equally common, so each one-attribute edit prompt is trained on
    as often as the full captions are (``drop_attribute`` is unused)."""
    if scheme not in CAPTION_SCHEMES:
        raise ValueError(f"unknown caption scheme {scheme!r}; expected one of {CAPTION_SCHEMES}")
    n = len(labels["shape"])
    if scheme == "independent":
        keep = rng.random((n, 4)) >= drop_attribute
    else:
        kept = rng.integers(1, 5, size=n)
        rank = rng.random((n, 4)).argsort(1).argsort(1)  # a random permutation per row
        keep = rank < kept[:, None]
    empty = rng.random(n) < drop_caption
    out = []
    for i in range(n):
        if empty[i]:
            out.append("")
            continue
        out.append(
            caption(
                spec.SIZES[labels["size"][i]] if keep[i, 0] else None,
                spec.COLORS[labels["color"][i]] if keep[i, 1] else None,
                spec.SHAPES[labels["shape"][i]] if keep[i, 2] else None,
                spec.BACKGROUNDS[labels["background"][i]] if keep[i, 3] else None,
            )
        )
    return out


def vocabulary() -> list[str]:
    """Every word a shapes caption can contain."""
    words = ["a", "object", "on", "background"]
    for vocab in spec.ATTRIBUTES.values():
        words += list(vocab)
    return words
