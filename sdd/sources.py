"""Source images for selection and distillation: the shapes generator, or a Parquet dataset.

Both are a ``SourceImages`` callable (rng, n) -> images in [-1, 1] at the teacher's size, so
the loop does not care where images come from.
"""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import torch

from sdd.augment import read_image_cell
from sdd.io.images import ImageDecodeError, decode_image, to_tensor_range
from sdd.io.resize import resize_pixels, resize_tensor, target_size
from sdd.io.storage import filesystem


class ParquetSources:
    """All decodable images of a Parquet file or directory, sampled with replacement, as
    random ``size`` x ``size`` crops: each image is first scaled so its shorter side is
    ``size`` (the aspect ratio kept, never stretched), then every draw takes a crop at a
    position the rng picks. Held as uint8; meant for the few hundred to few thousand images
    a distillation needs."""

    def __init__(self, url: str, size: int, image_column: str = "image"):
        fs, path = filesystem(url)
        files = sorted(fs.find(path)) if fs.isdir(path) else [path]
        files = [f for f in files if f.endswith(".parquet")] or files
        self.size = size
        self.images: list[np.ndarray] = []
        for f in files:
            with fs.open(f, "rb") as fh:
                table = pq.read_table(fh, columns=[image_column])
            for cell in table.column(image_column).to_pylist():
                try:
                    pixels = decode_image(read_image_cell(cell))
                except ImageDecodeError:
                    continue
                self.images.append(resize_pixels(pixels, target_size(f"shorter_side:{size}", *pixels.shape[:2])))
        if not self.images:
            raise ValueError(f"no decodable images in column {image_column!r} of {url}")

    def __len__(self) -> int:
        return len(self.images)

    def __call__(self, rng: np.random.Generator, n: int) -> torch.Tensor:
        crops = []
        for i in rng.integers(0, len(self.images), size=n):
            image = self.images[i]
            top = int(rng.integers(0, image.shape[0] - self.size + 1))
            left = int(rng.integers(0, image.shape[1] - self.size + 1))
            crops.append(image[top:top + self.size, left:left + self.size])
        return to_tensor_range(np.stack(crops))


def make_sources(spec: str, size: int, image_column: str = "image"):
    if spec == "shapes":
        from sdd.domains.shapes.edits import training_sources

        if size != 32:
            def resized(rng, n):
                return resize_tensor(training_sources(rng, n), (size, size))

            return resized
        return training_sources
    return ParquetSources(spec, size, image_column)
