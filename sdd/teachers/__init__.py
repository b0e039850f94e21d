"""Diffusion teachers behind one interface (``base.Teacher``).

``load_teacher`` picks the implementation from what it is given: ``"shapes"`` or nothing
for the bundled shapes teacher; a directory with ``model_index.json`` (a diffusers Stable
Diffusion checkpoint, local or any fsspec URL) for ``StableDiffusionTeacher``; a directory
with the shapes teacher's ``config.json`` + ``model.safetensors`` for a retrained one.
"""

from __future__ import annotations

import torch

from .base import Conditioning, Teacher, TextEmbedding

__all__ = ["Conditioning", "Teacher", "TextEmbedding", "load_teacher"]


def load_teacher(
    source: str | None = None, device: str | torch.device = "cpu", dtype: torch.dtype | None = None
) -> Teacher:
    from sdd.io.storage import filesystem, join

    if source in (None, "", "shapes"):
        from .shapes import ShapesTeacher

        return ShapesTeacher.from_pretrained(None, device=device, dtype=dtype or torch.float32)
    fs, path = filesystem(source)
    if fs.exists(join(path, "model_index.json")):
        from .stable_diffusion import StableDiffusionTeacher

        return StableDiffusionTeacher.from_pretrained(source, device=device, dtype=dtype)
    if fs.exists(join(path, "config.json")) and fs.exists(join(path, "model.safetensors")):
        from .shapes import ShapesTeacher

        if "://" in source and not source.startswith("file://"):
            raise ValueError(f"shapes teachers load from a local directory; got {source}")
        return ShapesTeacher.from_pretrained(path, device=device, dtype=dtype or torch.float32)
    raise FileNotFoundError(
        f"no teacher at {source!r}: expected 'shapes', a diffusers Stable Diffusion checkpoint "
        "directory (with model_index.json), or a shapes teacher directory (config.json + model.safetensors)"
    )
