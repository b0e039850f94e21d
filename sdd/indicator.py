"""Timestep indicators: pure functions from gradient maps to scores, and selection policies.

All scores follow one convention: **lower is better** (more concentrated / more consistent
guidance), so every policy selects small scores.

* ``reference_entropy`` — the reference implementation's: |g| averaged over channels, a
  softmax over pixels, Shannon entropy. The softmax sees raw gradient values, so the score
  depends on the gradient's scale: for small gradients every softmax is nearly uniform and
  the entropy sits at ~log(H*W) for every t. Kept for comparison, under its own name.
* ``entropy`` — the same map normalised by its L1 mass instead of a softmax, divided by
  log(H*W): scale-free, in [0, 1], 0 for one hot pixel and 1 for a uniform map.
* ``consistency`` — mean pairwise cosine similarity between the gradient maps of the same
  image under different noise draws: semantic guidance points the same way whatever the
  noise, noise-driven guidance does not. In [-1, 1], higher = more consistent.
* ``hybrid`` (our "HQS") = 0.5 * entropy + 0.5 * (1 - consistency) / 2, both terms in
  [0, 1] and scale-free; concentrated *and* consistent guidance scores low.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch

HYBRID_WEIGHTS = {"entropy": 0.5, "inconsistency": 0.5}


def _pixel_map(grad: torch.Tensor) -> torch.Tensor:
    """|g| averaged over channels, flattened over pixels: [..., C, H, W] -> [..., H*W]."""
    return grad.abs().mean(dim=-3).flatten(-2).double()


def _shannon(p: torch.Tensor) -> torch.Tensor:
    return -(torch.where(p > 0, p * p.clamp_min(1e-300).log(), torch.zeros_like(p))).sum(-1)


def reference_entropy(grad: torch.Tensor) -> torch.Tensor:
    """Entropy (nats) of softmax(|g| averaged over channels) over pixels; per map."""
    return _shannon(torch.softmax(_pixel_map(grad), dim=-1)).float()


def entropy(grad: torch.Tensor) -> torch.Tensor:
    """Normalised entropy in [0, 1] of the L1-normalised |g| map; per map. Scale-free."""
    m = _pixel_map(grad)
    total = m.sum(-1, keepdim=True)
    p = torch.where(total > 0, m / total.clamp_min(1e-300), torch.full_like(m, 1.0 / m.shape[-1]))
    return (_shannon(p) / math.log(m.shape[-1])).float()


def consistency(grads: torch.Tensor) -> torch.Tensor:
    """Mean pairwise cosine similarity over the noise-draw axis (dim 0): [D, ..., C, H, W] -> [...]."""
    d = grads.shape[0]
    if d < 2:
        raise ValueError("consistency needs at least two noise draws per image")
    flat = torch.nn.functional.normalize(grads.flatten(-3).double(), dim=-1)
    gram = torch.einsum("i...k,j...k->...ij", flat, flat)
    off_diagonal = gram.sum((-1, -2)) - gram.diagonal(dim1=-2, dim2=-1).sum(-1)
    return (off_diagonal / (d * (d - 1))).float()


def hybrid(grads: torch.Tensor) -> torch.Tensor:
    """HQS: weighted mean of normalised entropy (averaged over draws) and inconsistency."""
    e = entropy(grads).mean(0)
    inconsistency = (1 - consistency(grads)) / 2
    return HYBRID_WEIGHTS["entropy"] * e + HYBRID_WEIGHTS["inconsistency"] * inconsistency


def score_all(grads: torch.Tensor) -> dict[str, torch.Tensor]:
    """Every indicator for gradients [D draws, B images, T timesteps, C, H, W] -> [B, T] each,
    plus the mean gradient L2 norm (for context, not selection)."""
    return {
        "reference_entropy": reference_entropy(grads).mean(0),
        "entropy": entropy(grads).mean(0),
        "consistency": consistency(grads),
        "hybrid": hybrid(grads),
        "grad_norm": grads.flatten(-3).norm(dim=-1).mean(0),
    }


INDICATORS = ("reference_entropy", "entropy", "hybrid")


def indicator_curve(scores: pd.DataFrame, indicator: str) -> pd.Series:
    """Mean score per t over images, for one prompt's scores table (columns ``t``, indicator)."""
    if indicator not in scores.columns:
        raise ValueError(f"no indicator {indicator!r} in the scores table; have {list(scores.columns)}")
    return scores.groupby("t")[indicator].mean().sort_index()


def select(scores: pd.DataFrame, indicator: str, policy: str) -> list[tuple[int, float]]:
    """Chosen timesteps with their mean scores, by policy: ``argmin``, ``below:<x>``
    (every t scoring under x; the argmin if none does), ``topk:<k>`` (the k lowest) or
    ``window:<k>`` (the k neighbouring t of the sweep with the lowest mean score).

    ``window`` is the robust one: neighbouring t differ in the third decimal, so the k lowest
    can be the best t plus one far away that is low by noise (``a blue object`` under topk:2:
    350 and 600, with 600 past the range where any prompt edits well); a window must be low
    as a whole."""
    curve = indicator_curve(scores, indicator)
    if policy == "argmin":
        chosen = curve.nsmallest(1)
    elif policy.startswith("below:"):
        threshold = _number(policy, float)
        chosen = curve[curve < threshold]
        if chosen.empty:
            chosen = curve.nsmallest(1)
    elif policy.startswith("topk:"):
        chosen = curve.nsmallest(_number(policy, int))
    elif policy.startswith("window:"):
        k = min(_number(policy, int), len(curve))
        start = int(np.argmin(curve.rolling(k).mean().to_numpy()[k - 1:]))
        chosen = curve.iloc[start:start + k]
    else:
        raise ValueError(f"unknown selection policy {policy!r}; expected argmin, below:<x>, topk:<k> or window:<k>")
    return [(int(t), float(s)) for t, s in sorted(chosen.items())]


def _number(policy: str, kind):
    try:
        value = kind(policy.split(":", 1)[1])
    except ValueError:
        raise ValueError(f"bad selection policy {policy!r}: expected a {kind.__name__} after ':'") from None
    if kind is int and value < 1:
        raise ValueError(f"bad selection policy {policy!r}: k must be at least 1")
    return value


def spearman(x, y) -> float:
    """Spearman rank correlation (average ranks for ties), without a SciPy dependency."""
    rx = pd.Series(np.asarray(x, dtype=float)).rank().to_numpy()
    ry = pd.Series(np.asarray(y, dtype=float)).rank().to_numpy()
    if rx.std() == 0 or ry.std() == 0:
        return float("nan")
    return float(np.corrcoef(rx, ry)[0, 1])
