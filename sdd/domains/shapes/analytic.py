"""The analytic reader: attributes and cleanliness of a shapes image, measured, not learned.

A learned judge can be fooled by an edit that paints a frame, tints everything or pastes a
second blob beside the object: it reads "a red disc beside a blue circle" as a red circle.
This reader fits the domain's own image model to each image and says where it fails:

* the background colour is the median of the image's border ring;
* the object colour is the median of the pixels far from it;
* every pixel must be a mixture ``b + a * (o - b)`` of those two colours (``a`` in [0, 1]
  is the pixel's coverage); a pixel the mixture does not explain (a third colour, a tint
  gradient, a smear, noise) is *foreign*, and so is a partly covered pixel away from the
  object's outline (anti-aliasing mixes colours only at an edge: a grey interior inside a
  black frame, on the line between black and a white object, is not an edge);
* the coverage must form exactly one connected object, whose outline matches a rendered
  circle, square or triangle (soft IoU against the template of the same area and centroid).

An image is *clean* when it has no foreign pixels beyond a small allowance, exactly one
object and a shape fit of at least ``MIN_SHAPE_IOU``. Attributes are read only from clean
measurements: a colour or background too far from every canonical one, or a radius between
the two size ranges, reads as unknown (-1), which matches no target.

Works at the domain's 32x32 size (the templates are rendered there).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from . import spec
from .render import coverage

# tolerances, in 8-bit levels (max over channels) unless said otherwise
FOREIGN_LEVEL = 28  # a pixel further than this from the two-colour mixture is foreign
MAX_FOREIGN_PIXELS = 8  # allowance for sampling noise; a frame or a blob is far more
MIN_COMPONENT_PIXELS = 3  # a connected blob this large counts as an object
MIN_SHAPE_IOU = 0.8
COLOR_TOLERANCE = 48  # canonical colours are >= 70 apart; jitter is 12
BACKGROUND_TOLERANCE = 30  # backgrounds are >= 55 apart; jitter is 8
RADIUS_SLACK = 0.75  # pixels beyond a size word's radius range still read as that size

# object area per unit radius squared, per shape (spec's geometry)
AREA_PER_R2 = {
    "circle": np.pi,
    "square": (2 * spec.SQUARE_HALF_SIDE) ** 2,
    "triangle": 0.5 * (2 * spec.TRIANGLE_HALF_BASE) * (1 + spec.TRIANGLE_BASE_DROP),
}
# the area-weighted centroid's offset below the shape's centre, per unit radius
CENTROID_DROP = {"circle": 0.0, "square": 0.0, "triangle": (2 * spec.TRIANGLE_BASE_DROP - 1) / 3}


@dataclass
class Reading:
    """Per image: attribute label indices (spec.ATTRIBUTES order; -1 = unreadable) and the
    measurements behind them. ``coverage`` [N, H, W] is each pixel's share of the object."""

    labels: dict[str, np.ndarray]
    clean: np.ndarray
    foreign_pixels: np.ndarray
    components: np.ndarray
    shape_iou: np.ndarray
    radius: np.ndarray
    coverage: np.ndarray
    background_rgb: np.ndarray
    object_rgb: np.ndarray

    def __len__(self) -> int:
        return len(self.clean)

    def failure(self) -> list[str]:
        """Why each image is not clean ('' where it is): the first check it fails."""
        out = []
        for i in range(len(self)):
            if self.components[i] == 0:
                out.append("no object")
            elif self.components[i] > 1:
                out.append(f"{self.components[i]} objects")
            elif self.foreign_pixels[i] > MAX_FOREIGN_PIXELS:
                out.append(f"{self.foreign_pixels[i]} pixels off the two-colour image")
            elif self.shape_iou[i] < MIN_SHAPE_IOU:
                out.append(f"outline fits no shape (IoU {self.shape_iou[i]:.2f})")
            else:
                out.append("")
        return out


def nearest(rgb: np.ndarray, palette: dict[str, tuple[int, int, int]], tolerance: float) -> np.ndarray:
    """Index of the nearest palette colour (max-channel distance), -1 beyond ``tolerance``."""
    colours = np.array(list(palette.values()), dtype=np.float64)
    distance = np.abs(rgb[:, None, :] - colours[None]).max(-1)
    index = distance.argmin(1)
    index[~(distance[np.arange(len(rgb)), index] <= tolerance)] = -1  # NaN rows too
    return index


def border_median(images: np.ndarray) -> np.ndarray:
    ring = np.concatenate([images[:, 0], images[:, -1], images[:, 1:-1, 0], images[:, 1:-1, -1]], axis=1)
    return np.median(ring.astype(np.float64), axis=1)


def object_colour(images: np.ndarray, background: np.ndarray) -> np.ndarray:
    """Median colour of the pixels at least 60% as far from the background as the far end
    (the 98th percentile) of the image: the object's core, whatever its contrast."""
    distance = np.abs(images - background[:, None, None]).max(-1)
    far = np.percentile(distance.reshape(len(images), -1), 98, axis=1)
    out = np.full((len(images), 3), np.nan)
    for i in range(len(images)):
        core = distance[i] >= max(0.6 * far[i], FOREIGN_LEVEL)
        if core.any():
            out[i] = np.median(images[i][core], axis=0)
    return out


def connected_components(mask: np.ndarray) -> np.ndarray:
    """Number of 8-connected components of at least ``MIN_COMPONENT_PIXELS`` per image."""
    n, h, w = mask.shape
    m = torch.from_numpy(mask)
    labels = torch.where(m, torch.arange(1, h * w + 1, dtype=torch.float32).view(h, w).expand(n, h, w), torch.zeros(()))
    labels = labels[:, None]
    for _ in range(h * w):
        grown = torch.where(m[:, None], F.max_pool2d(labels, 3, stride=1, padding=1), torch.zeros(()))
        if torch.equal(grown, labels):
            break
        labels = grown
    labels = labels[:, 0].numpy()
    counts = np.zeros(n, dtype=np.int64)
    for i in range(n):
        ids, sizes = np.unique(labels[i][labels[i] > 0], return_counts=True)
        counts[i] = int((sizes >= MIN_COMPONENT_PIXELS).sum())
    return counts


def outline_zone(mask: np.ndarray) -> np.ndarray:
    """Pixels next to the mask's outline (8-neighbourhood), inside or out: where a rendered
    edge's anti-aliasing lies. A wider band of partly covered pixels is a blur or a smear."""
    m = F.pad(torch.from_numpy(mask.astype(np.float32))[:, None], (1, 1, 1, 1))  # outside the image is background
    grown = F.max_pool2d(m, 3, stride=1)
    shrunk = -F.max_pool2d(-m, 3, stride=1)
    return ((grown - shrunk) > 0)[:, 0].numpy()


def soft_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.minimum(a, b).sum((1, 2)) / np.maximum(np.maximum(a, b).sum((1, 2)), 1e-9)


def fit_shapes(alpha: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(best shape index, its IoU, its radius) per image: each shape's template is rendered
    with the coverage's area and centroid, and the best overlap wins."""
    n, h, w = alpha.shape
    area = alpha.sum((1, 2))
    ys, xs = np.mgrid[0:h, 0:w] + 0.5
    with np.errstate(invalid="ignore", divide="ignore"):
        cx = (alpha * xs).sum((1, 2)) / area
        cy = (alpha * ys).sum((1, 2)) / area
    valid = area > 0
    ious = np.zeros((len(spec.SHAPES), n))
    radii = np.zeros((len(spec.SHAPES), n))
    for k, shape in enumerate(spec.SHAPES):
        r = np.sqrt(area / AREA_PER_R2[shape])
        radii[k] = r
        if valid.any():
            template = coverage(np.full(int(valid.sum()), k), cx[valid], cy[valid] - CENTROID_DROP[shape] * r[valid],
                                r[valid])
            ious[k, valid] = soft_iou(alpha[valid], template)
    best = ious.argmax(0)
    return best, ious[best, np.arange(n)], radii[best, np.arange(n)]


def size_of(radius: np.ndarray) -> np.ndarray:
    out = np.full(len(radius), -1)
    for k, word in enumerate(spec.SIZES):
        lo, hi = spec.SIZE_RADIUS[word]
        out[(radius >= lo - RADIUS_SLACK) & (radius <= hi + RADIUS_SLACK)] = k
    return out


def read(images: np.ndarray) -> Reading:
    """Measure uint8 [N, 32, 32, 3] shapes images."""
    if images.ndim != 4 or images.shape[1:] != (spec.IMAGE_SIZE, spec.IMAGE_SIZE, 3):
        raise ValueError(f"the analytic reader takes uint8 [N, {spec.IMAGE_SIZE}, {spec.IMAGE_SIZE}, 3], "
                         f"got {images.shape}")
    x = images.astype(np.float64)
    background = border_median(images)
    obj = object_colour(x, background)
    direction = obj - background
    norm2 = np.maximum((direction**2).sum(-1), 1e-9)
    alpha = np.clip(((x - background[:, None, None]) * direction[:, None, None]).sum(-1) / norm2[:, None, None], 0, 1)
    alpha = np.nan_to_num(alpha)
    model = background[:, None, None] + alpha[..., None] * np.nan_to_num(direction)[:, None, None]
    inside = alpha > 0.5
    mixed = (alpha > 0.1) & (alpha < 0.9) & ~outline_zone(inside)
    foreign = ((np.abs(x - model).max(-1) > FOREIGN_LEVEL) | mixed).sum((1, 2))
    components = connected_components(inside)
    shape, iou, radius = fit_shapes(np.where(alpha > 0.05, alpha, 0.0))
    clean = (components == 1) & (foreign <= MAX_FOREIGN_PIXELS) & (iou >= MIN_SHAPE_IOU)
    labels = {
        "shape": np.where(iou >= MIN_SHAPE_IOU, shape, -1),
        "color": nearest(obj, spec.COLOR_RGB, COLOR_TOLERANCE),
        "size": size_of(radius),
        "background": nearest(background, spec.BACKGROUND_RGB, BACKGROUND_TOLERANCE),
    }
    return Reading({a: labels[a].astype(np.int64) for a in spec.ATTRIBUTES}, clean, foreign, components, iou, radius,
                   alpha.astype(np.float32), background, obj)


def mask_iou(a: Reading, b: Reading) -> np.ndarray:
    """Per image pair: soft IoU of the two objects' coverage maps (a threshold would flip
    the many pixels an axis-aligned edge covers exactly half)."""
    return soft_iou(a.coverage.astype(np.float64), b.coverage.astype(np.float64))
