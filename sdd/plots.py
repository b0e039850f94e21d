"""Figures people would rather look at than read: indicator curves, before/after grids."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from sdd.indicator import INDICATORS, indicator_curve  # noqa: E402


def indicator_curves_png(scores: pd.DataFrame, prompt: str, selected: list[int] | None = None) -> bytes:
    """One panel per indicator: mean score over images vs t (band: +-1 std), selected t marked."""
    table = scores[scores["prompt"] == prompt]
    fig, axes = plt.subplots(1, len(INDICATORS) + 1, figsize=(4 * (len(INDICATORS) + 1), 3.2))
    for ax, name in zip(axes, (*INDICATORS, "grad_norm")):
        curve = indicator_curve(table, name)
        spread = table.groupby("t")[name].std().reindex(curve.index).fillna(0)
        ax.plot(curve.index, curve.values, marker="o", ms=3)
        ax.fill_between(curve.index, curve - spread, curve + spread, alpha=0.2)
        for t in selected or []:
            ax.axvline(t, color="tab:red", ls="--", lw=1)
        ax.set_title(name)
        ax.set_xlabel("t")
    fig.suptitle(f"{prompt!r} (lower is better; red: selected)")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()


def quality_vs_indicators_png(quality: pd.DataFrame, scores: pd.DataFrame, prompt: str) -> bytes:
    """Edit quality of fixed-t manipulators (left axis; the mean over seeds with each seed's
    run as a dot) against each indicator's mean score, min-max scaled to [0, 1] (right axis),
    over t: the indicator validation at a glance."""
    runs = quality[quality["prompt"] == prompt]
    q = runs.groupby("t")["quality"].mean()
    table = scores[scores["prompt"] == prompt]
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    seeds = runs["seed"].nunique() if "seed" in runs else 1
    ax.plot(q.index, q.values, "k-o", label="edit quality (fixed t)" + (f", mean of {seeds} seeds" if seeds > 1 else ""))
    if seeds > 1:
        ax.plot(runs["t"], runs["quality"], "k.", alpha=0.35, label="one seed")
    ax.set_xlabel("t")
    ax.set_ylabel("edit quality")
    ax.set_ylim(-0.02, 1.02)
    right = ax.twinx()
    for name in INDICATORS:
        curve = indicator_curve(table, name)
        span = (curve.max() - curve.min()) or 1.0
        right.plot(curve.index, (curve - curve.min()) / span, "--", label=f"{name} (scaled)")
    right.set_ylabel("indicator, scaled (lower = better)")
    lines = ax.get_legend_handles_labels()
    more = right.get_legend_handles_labels()
    ax.legend(lines[0] + more[0], lines[1] + more[1], fontsize=7, loc="best")
    ax.set_title(repr(prompt))
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()


def before_after_png(sources, edited_by_label: dict, scale: int = 3) -> bytes:
    """Rows: the sources, then one row per editor (label -> uint8 [N, H, W, 3]); columns: images."""
    import numpy as np

    from sdd.io.images import image_grid

    rows = [("source", np.asarray(sources)), *((k, np.asarray(v)) for k, v in edited_by_label.items())]
    fig, axes = plt.subplots(len(rows), 1, figsize=(0.45 * scale * len(rows[0][1]), 0.5 * scale * len(rows) + 0.3),
                             squeeze=False)
    for ax, (label, images) in zip(axes[:, 0], rows):
        ax.imshow(image_grid(images, rows=1, scale=1, pad=1), interpolation="nearest")
        ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")  # keeps the row labels
    plt.close(fig)
    return buf.getvalue()
