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


# scikit-image's bundled photographs (in its wheel, no download): sizes and modes of real data
PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "camera")


def photo_table(names=PHOTOS, *, fmt: str = "jpeg"):
    """One row per bundled photo: ``id``, ``name`` (a label column that must pass through),
    ``image`` (HF struct; camera is grayscale, encoded as a one-channel PNG)."""
    import io

    import pyarrow as pa
    from PIL import Image
    from skimage import data

    cells = []
    for name in names:
        pixels = getattr(data, name)()
        buf = io.BytesIO()
        if pixels.ndim == 2:
            Image.fromarray(pixels, "L").save(buf, "PNG")
        else:
            Image.fromarray(pixels).save(buf, "JPEG" if fmt == "jpeg" else "PNG", **({"quality": 90} if fmt == "jpeg" else {}))
        cells.append({"bytes": buf.getvalue(), "path": None})
    return pa.table({"id": pa.array(range(len(names)), pa.int64()), "name": list(names),
                     "image": pa.array(cells, type=pa.struct([("bytes", pa.binary()), ("path", pa.string())]))})


def photo_size(name: str) -> tuple[int, int]:
    from skimage import data

    return getattr(data, name)().shape[:2]


def save_changing_manipulator(url: Path, prompt: str = "at night") -> str:
    """A mask_blend artifact whose mask is open and whose change is a fixed tint: it changes
    every pixel of any image, at any size, so where it ran is visible in the output."""
    from sdd.artifacts import save_manipulator
    from sdd.manipulators import BlendManipulator

    torch.manual_seed(0)
    m = BlendManipulator(width=8, levels=2)
    with torch.no_grad():
        m.head[-1].bias.copy_(torch.tensor([6.0, -0.4, -0.3, 0.2]))
    save_manipulator(str(url), m, prompt=prompt, teacher_id="tiny-sd@test")
    return str(url)
