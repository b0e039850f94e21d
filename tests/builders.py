"""Small artifacts the tests build on disk."""

from __future__ import annotations

from pathlib import Path

import torch


def save_random_manipulators(registry: Path, prompts: list[str], *, width: int = 8, depth: int = 1) -> list[str]:
    """One ImageManipulator artifact per prompt under ``registry/manipulators`` (seeded by its
    position; identity at init, so an edit returns the resized source); their URLs."""
    from sdd.artifacts import save_manipulator
    from sdd.manipulators import ImageManipulator

    urls = []
    for i, prompt in enumerate(prompts):
        torch.manual_seed(i)
        url = str(registry / "manipulators" / f"m{i}")
        save_manipulator(url, ImageManipulator(width=width, depth=depth), prompt=prompt,
                         teacher_id="shapes-teacher@test", extra={"image_size": 32})
        urls.append(url)
    return urls
