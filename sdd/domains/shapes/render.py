"""Procedural rendering of shapes images: deterministic by seed, vectorised over a batch.

Each image is evaluated on a 4x supersampled grid (pixel centres of a 128x128 canvas) and
box-filtered to 32x32, which is exactly "drawn at 4x and downsampled with a box filter".
The per-pixel coverage doubles as the object mask for evaluation code.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import spec


@dataclass(frozen=True)
class ShapesBatch:
    """Rendered images with their labels and geometry.

    images: uint8 [N, 32, 32, 3]; masks: float32 [N, 32, 32] object coverage in [0, 1];
    labels: int64 index per attribute (spec.ATTRIBUTES order); cx, cy, radius in pixels.
    """

    images: np.ndarray
    masks: np.ndarray
    labels: dict[str, np.ndarray]
    cx: np.ndarray
    cy: np.ndarray
    radius: np.ndarray

    def __len__(self) -> int:
        return len(self.images)

    def names(self, attribute: str) -> list[str]:
        vocab = spec.ATTRIBUTES[attribute]
        return [vocab[i] for i in self.labels[attribute]]

    def captions(self) -> list[str]:
        from .captions import full_caption

        return [
            full_caption(size, color, shape, bg)
            for size, color, shape, bg in zip(
                self.names("size"), self.names("color"), self.names("shape"), self.names("background")
            )
        ]


def sample_labels(
    rng: np.random.Generator, n: int, *, exclude_held_out: bool = False
) -> dict[str, np.ndarray]:
    """Uniform attribute labels; optionally redraw the teacher's held-out combinations."""
    labels = {name: rng.integers(0, len(vocab), size=n) for name, vocab in spec.ATTRIBUTES.items()}
    if exclude_held_out:
        held = np.zeros(n, dtype=bool)
        for size, color, shape in spec.HELD_OUT:
            held |= (
                (labels["size"] == spec.SIZES.index(size))
                & (labels["color"] == spec.COLORS.index(color))
                & (labels["shape"] == spec.SHAPES.index(shape))
            )
        if held.any():
            redraw = sample_labels(rng, int(held.sum()), exclude_held_out=True)
            for name in labels:
                labels[name][held] = redraw[name]
    return {k: v.astype(np.int64) for k, v in labels.items()}


def render(rng: np.random.Generator, labels: dict[str, np.ndarray]) -> ShapesBatch:
    """Draw one image per label row: random radius, position, and colour jitter from ``rng``."""
    n = len(labels["shape"])
    size_names = [spec.SIZES[i] for i in labels["size"]]
    shape_names = [spec.SHAPES[i] for i in labels["shape"]]
    lo = np.array([spec.SIZE_RADIUS[s][0] for s in size_names])
    hi = np.array([spec.SIZE_RADIUS[s][1] for s in size_names])
    radius = lo + (hi - lo) * rng.random(n)

    extents = np.array([spec.object_extent(s, r) for s, r in zip(shape_names, radius)]).reshape(n, 4)
    left, right, top, bottom = extents.T
    size = float(spec.IMAGE_SIZE)
    cx = left + (size - left - right) * rng.random(n)
    cy = top + (size - top - bottom) * rng.random(n)

    obj_rgb = np.array([spec.COLOR_RGB[spec.COLORS[i]] for i in labels["color"]], dtype=np.float64)
    obj_rgb += rng.integers(-spec.COLOR_JITTER, spec.COLOR_JITTER + 1, size=(n, 3))
    bg_rgb = np.array([spec.BACKGROUND_RGB[spec.BACKGROUNDS[i]] for i in labels["background"]], dtype=np.float64)
    bg_rgb += rng.integers(-spec.BACKGROUND_JITTER, spec.BACKGROUND_JITTER + 1, size=(n, 3))
    obj_rgb = np.clip(obj_rgb, 0, 255)
    bg_rgb = np.clip(bg_rgb, 0, 255)

    masks = coverage(labels["shape"], cx, cy, radius)
    return ShapesBatch(composite(masks, obj_rgb, bg_rgb), masks, labels, cx, cy, radius)


def composite(masks: np.ndarray, object_rgb: np.ndarray, background_rgb: np.ndarray) -> np.ndarray:
    """One flat object colour over one flat background per image, mixed by the coverage mask
    (so anti-aliased edges are the mixture): uint8 [N, H, W, 3] from masks [N, H, W], colours [N, 3]."""
    m = masks[..., None]
    images = background_rgb[:, None, None, :] * (1.0 - m) + object_rgb[:, None, None, :] * m
    return np.clip(np.rint(images), 0, 255).astype(np.uint8)


def region_colours(images: np.ndarray, region: np.ndarray) -> np.ndarray:
    """Mean colour of each image over a boolean region [N, H, W] (NaN where the region is empty):
    the background colour of a shapes image is its mean over ``masks == 0``."""
    counts = region.sum(axis=(1, 2))[:, None]
    sums = (images.astype(np.float64) * region[..., None]).sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        return sums / counts


def coverage(shape_idx: np.ndarray, cx: np.ndarray, cy: np.ndarray, radius: np.ndarray) -> np.ndarray:
    """Fraction of each 32x32 pixel covered by the object, via 4x4 supersampling."""
    s, k = spec.IMAGE_SIZE, spec.SUPERSAMPLE
    centres = (np.arange(s * k) + 0.5) / k
    y = centres[None, :, None]
    x = centres[None, None, :]
    dx = x - cx[:, None, None]
    dy = y - cy[:, None, None]
    r = radius[:, None, None]
    shape_idx = np.asarray(shape_idx)[:, None, None]

    circle = dx**2 + dy**2 <= r**2
    half = spec.SQUARE_HALF_SIDE * r
    square = (np.abs(dx) <= half) & (np.abs(dy) <= half)
    # triangle: apex (0, -r), base corners (-/+ b, d) relative to the centre (y grows downward)
    b, d = spec.TRIANGLE_HALF_BASE * r, spec.TRIANGLE_BASE_DROP * r
    below_apex_edges = np.abs(dx) * (d + r) <= b * (dy + r)
    triangle = below_apex_edges & (dy <= d)

    inside = np.where(
        shape_idx == spec.SHAPES.index("circle"),
        circle,
        np.where(shape_idx == spec.SHAPES.index("square"), square, triangle),
    )
    n = inside.shape[0]
    return inside.reshape(n, s, k, s, k).mean(axis=(2, 4)).astype(np.float32)


def generate(n: int, seed: int, *, exclude_held_out: bool = False) -> ShapesBatch:
    """The canonical seeded generator: the same (n, seed) always gives the same images."""
    rng = np.random.default_rng(seed)
    return render(rng, sample_labels(rng, n, exclude_held_out=exclude_held_out))
