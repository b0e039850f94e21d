"""Keeping manipulator outputs in the image range without starving them of gradient."""

from __future__ import annotations

import torch


def clamp_to_image(y: torch.Tensor) -> torch.Tensor:
    """``y.clamp(-1, 1)`` forward, identity backward (straight-through).

    Why: a hard clamp has zero gradient outside the range, so a pixel the guidance once pushed
    past -1 or 1 stops receiving any signal, the fidelity term's pull back included; with a
    shared colour transform one overshooting channel can freeze the whole edit (seen as a
    plateau in training). Passing the gradient straight through lets fidelity bring it back.
    """
    return y + (y.clamp(-1, 1) - y).detach()
