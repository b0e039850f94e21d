"""Edit quality on the shapes world, read by two instruments that must agree.

The learned judge alone can be fooled: it reads a red disc pasted beside a blue circle as a
red circle, and a frame or a tint often as nothing at all. So every edit is also read by
the analytic reader (``sdd.domains.shapes.analytic``), and an edit counts only if the edited
image is still a *clean* image of one object on a flat background:

* editability — the edited image is clean, both instruments read the target on it, and,
  for an edit that is not geometric (colour, background), the object's mask still overlaps
  the source's (IoU >= ``MIN_MASK_IOU``: nothing moved, grew or smeared);
* preservation — per other attribute, the same conditions, with both instruments reading
  the same value on the edited image as on the source (so reading errors on sources do not
  count against the editor);
* ``judge`` — editability and preservation by the learned judge alone, for comparison;
* clean — the share of edited images the analytic reader accepts, and why the rest fail;
* background PSNR — between edited and source, over pixels outside the union of the source
  object's mask and the edited object's footprint (pixels clearly off the background colour),
  pooled over the images: a halo or a background tint lowers it, the edit itself does not;
* seconds per image — wall time of the editor over the batch.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np
import torch

from sdd.domains.shapes import analytic, spec
from sdd.domains.shapes.judge import ShapesJudge
from sdd.domains.shapes.render import ShapesBatch, region_colours
from sdd.io.images import from_tensor_range, to_tensor_range

Editor = Callable[[torch.Tensor], torch.Tensor]
FOOTPRINT_THRESHOLD = 48  # max channel distance from the background colour that counts as "object"
GEOMETRIC = ("shape", "size")  # attributes whose edit moves the outline
MIN_MASK_IOU = 0.85


@dataclass
class EditReport:
    n: int
    editability: float
    preservation: dict[str, float]
    background_psnr: float
    seconds_per_image: float
    clean: float = 1.0
    in_place: float | None = None
    judge: dict | None = None
    failures: dict[str, int] | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def background_colours(batch: ShapesBatch) -> np.ndarray:
    """The flat background colour of each source image (its pixels outside the object)."""
    return region_colours(batch.images, batch.masks == 0)


def background_psnr(sources: ShapesBatch, edited: np.ndarray) -> float:
    src = sources.images.astype(np.float64)
    out = edited.astype(np.float64)
    bg = background_colours(sources)[:, None, None, :]
    footprint = np.abs(out - bg).max(axis=-1) > FOOTPRINT_THRESHOLD
    outside = ~((sources.masks > 0) | footprint)
    if not outside.any():
        return float("nan")
    mse = ((out - src) ** 2).mean(axis=-1)[outside].mean()
    return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))


def edit_all(editor: Editor, sources: ShapesBatch, batch_size: int) -> np.ndarray:
    """Every source image through the editor in batches; uint8 HWC images."""
    x = to_tensor_range(sources.images)
    with torch.no_grad():
        edited = torch.cat([editor(x[i : i + batch_size]).detach().cpu() for i in range(0, len(x), batch_size)])
    return from_tensor_range(edited)


def target_hits(after: dict[str, np.ndarray], target: dict[str, str]) -> np.ndarray:
    """Per image: the judge reads every target attribute on the edited image."""
    hits = np.ones(len(next(iter(after.values()))), dtype=bool)
    for attribute, value in target.items():
        hits &= after[attribute] == spec.ATTRIBUTES[attribute].index(value)
    return hits


def evaluate(
    editor: Editor, sources: ShapesBatch, target: dict[str, str], judge: ShapesJudge, *, batch_size: int = 250,
) -> EditReport:
    """Edit every source image and measure the edit against ``target`` (e.g. {"color": "red"})."""
    for attribute, value in target.items():
        if value not in spec.ATTRIBUTES.get(attribute, ()):
            raise ValueError(f"unknown target {attribute}={value!r}")
    started = time.perf_counter()
    edited_u8 = edit_all(editor, sources, batch_size)
    seconds = (time.perf_counter() - started) / len(sources)
    return score_edits(sources, edited_u8, target, judge, seconds)


def score_edits(sources: ShapesBatch, edited: np.ndarray, target: dict[str, str], judge: ShapesJudge,
                seconds_per_image: float = float("nan")) -> EditReport:
    """The report for edited uint8 images of ``sources`` (see the module docstring)."""
    before, after = judge.predict(sources.images), judge.predict(edited)
    source_reading, reading = analytic.read(sources.images), analytic.read(edited)
    valid = reading.clean
    in_place = None
    if not any(a in GEOMETRIC for a in target):
        placed = analytic.mask_iou(source_reading, reading) >= MIN_MASK_IOU
        in_place = float(placed.mean())
        valid = valid & placed
    judge_hits = target_hits(after, target)
    hits = valid & judge_hits & target_hits(reading.labels, target)
    kept = {a: after[a] == before[a] for a in spec.ATTRIBUTES if a not in target}
    preservation = {a: float((valid & kept[a] & (reading.labels[a] == source_reading.labels[a])).mean()) for a in kept}
    failures: dict[str, int] = {}
    for reason in reading.failure():
        if reason:
            key = reason.split(" (")[0] if "objects" not in reason else "several objects"
            key = "foreign pixels" if "off the two-colour" in key else key
            failures[key] = failures.get(key, 0) + 1
    return EditReport(
        len(sources), float(hits.mean()), preservation, background_psnr(sources, edited), seconds_per_image,
        clean=float(reading.clean.mean()), in_place=in_place,
        judge={"editability": float(judge_hits.mean()), "preservation": {a: float(v.mean()) for a, v in kept.items()}},
        failures=failures,
    )


def breakdown(editor: Editor, sources: ShapesBatch, target: dict[str, str], judge: ShapesJudge,
              *, batch_size: int = 250):
    """The same measurements per (source colour, background) group, plus where the background
    and the object's colour went: an average hides which combinations fail (a blue object on
    black turned dark red; a tint only on beige). One row per group, as a pandas DataFrame."""
    import pandas as pd

    out = edit_all(editor, sources, batch_size)
    before, after = judge.predict(sources.images), judge.predict(out)
    hits = target_hits(after, target)
    shift = np.abs(region_colours(out, sources.masks == 0) - background_colours(sources)).max(axis=1)
    object_rgb = region_colours(out, sources.masks > 0.99)
    table = pd.DataFrame({
        "source_color": [spec.COLORS[c] for c in sources.labels["color"]],
        "background": [spec.BACKGROUNDS[b] for b in sources.labels["background"]],
        "editability": hits,
        **{f"kept_{a}": after[a] == before[a] for a in spec.ATTRIBUTES if a not in target},
        "background_shift": shift,
        **{f"object_{channel}": object_rgb[:, c] for c, channel in enumerate("rgb")},
    })
    grouped = table.groupby(["source_color", "background"])
    return grouped.mean().assign(n=grouped.size()).reset_index()
