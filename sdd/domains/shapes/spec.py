"""The shapes domain, as data: every constant a reader needs to check an image against.

The numbers here are the domain's specification; renderers, captions, the
teacher's hold-out and the judge's label space are all derived from this one file.
"""

from __future__ import annotations

IMAGE_SIZE = 32
SUPERSAMPLE = 4  # drawn at 4x, then box-filtered down (anti-aliasing)

SHAPES: tuple[str, ...] = ("circle", "square", "triangle")
SIZES: tuple[str, ...] = ("small", "large")
COLORS: tuple[str, ...] = ("red", "green", "blue", "yellow", "purple", "white")
BACKGROUNDS: tuple[str, ...] = ("gray", "beige", "black", "olive")

# radius range in pixels (at 32x32) per size word
SIZE_RADIUS: dict[str, tuple[float, float]] = {"small": (4.0, 6.0), "large": (9.0, 12.0)}

COLOR_RGB: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (40, 180, 40),
    "blue": (40, 70, 225),
    "yellow": (235, 220, 40),
    "purple": (150, 50, 190),
    "white": (245, 245, 245),
}
COLOR_JITTER = 12

BACKGROUND_RGB: dict[str, tuple[int, int, int]] = {
    "gray": (128, 128, 128),
    "beige": (200, 185, 150),
    "black": (40, 40, 45),
    "olive": (105, 110, 70),
}
BACKGROUND_JITTER = 8

# geometry, in units of the radius r
SQUARE_HALF_SIDE = 0.9
TRIANGLE_HALF_BASE = 0.95
TRIANGLE_BASE_DROP = 0.75  # base corners at cy + 0.75 r; apex at cy - r

# (size, color, shape) combinations the teacher never sees in training, any background
HELD_OUT: tuple[tuple[str, str, str], ...] = (
    ("small", "red", "triangle"),
    ("large", "blue", "square"),
    ("small", "yellow", "circle"),
    ("large", "purple", "triangle"),
    ("small", "white", "square"),
    ("large", "green", "circle"),
    ("small", "purple", "square"),
    ("large", "red", "circle"),
)

# label column name -> vocabulary, in label-index order
ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "shape": SHAPES,
    "color": COLORS,
    "size": SIZES,
    "background": BACKGROUNDS,
}


def is_held_out(size: str, color: str, shape: str) -> bool:
    return (size, color, shape) in HELD_OUT


def object_extent(shape: str, r: float) -> tuple[float, float, float, float]:
    """Distances (left, right, top, bottom) from the centre to the object's bounding box."""
    if shape == "circle":
        return r, r, r, r
    if shape == "square":
        h = SQUARE_HALF_SIDE * r
        return h, h, h, h
    if shape == "triangle":
        b = TRIANGLE_HALF_BASE * r
        return b, b, r, TRIANGLE_BASE_DROP * r
    raise ValueError(f"unknown shape {shape!r}; expected one of {SHAPES}")
