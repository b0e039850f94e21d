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
