"""Timestep selection: sweep a prompt over timesteps x images x noise draws, score every
indicator, and choose timesteps. The Ray job shards ``indicator_sweep`` over images; the
single-machine CLI runs it whole. Either way the numbers are the same: every image's noise
is seeded by (seed, draw, image id), not by its position in a shard.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from sdd import indicator
from sdd.guidance import sds_gradient
from sdd.teachers.base import Teacher


def timestep_grid(start: int = 100, stop: int = 900, step: int = 50) -> list[int]:
    """Inclusive grid, like the reference's search (min_step, max_step, search_step)."""
    if not 0 <= start <= stop or step < 1:
        raise ValueError(f"bad timestep grid start={start} stop={stop} step={step}")
    return list(range(start, stop + 1, step))


def noise_seed(seed: int, draw: int, image_id: int) -> int:
    return int(np.random.SeedSequence([seed, draw, int(image_id)]).generate_state(1)[0])


def sweep_gradients(
    teacher: Teacher, images: torch.Tensor, prompt: str, timesteps: list[int], *, image_ids: list[int],
    draws: int, guidance_scale: float, weighting: str = "sds", seed: int = 0, max_batch: int | None = None,
) -> torch.Tensor:
    """Image-space SDS gradients [draws, B, T, 3, H, W]."""
    cond = teacher.embed([prompt])
    out = []
    for d in range(draws):
        g = sds_gradient(
            teacher, images, cond, timesteps, guidance_scale=guidance_scale, weighting=weighting,
            seed=[noise_seed(seed, d, i) for i in image_ids], image_gradient=True, max_batch=max_batch,
        )
        out.append(g.image.cpu())
    return torch.stack(out)


def indicator_sweep(
    teacher: Teacher, images: torch.Tensor, prompt: str, timesteps: list[int], *, image_ids: list[int] | None = None,
    draws: int = 4, guidance_scale: float = 3.0, weighting: str = "sds", seed: int = 0, max_batch: int | None = None,
) -> pd.DataFrame:
    """One row per (image, t): prompt, t, image_id, every indicator and the gradient norm."""
    ids = list(image_ids) if image_ids is not None else list(range(images.shape[0]))
    grads = sweep_gradients(teacher, images, prompt, timesteps, image_ids=ids, draws=draws,
                            guidance_scale=guidance_scale, weighting=weighting, seed=seed, max_batch=max_batch)
    scores = indicator.score_all(grads)
    b, k = len(ids), len(timesteps)
    table = pd.DataFrame({
        "prompt": [prompt] * (b * k),
        "t": np.tile(np.asarray(timesteps, dtype=np.int64), b),
        "image_id": np.repeat(np.asarray(ids, dtype=np.int64), k),
    })
    for name, values in scores.items():
        table[name] = values.reshape(-1).numpy().astype(np.float64)
    return table


def select_timesteps(scores: pd.DataFrame, indicator_name: str = "hybrid", policy: str = "window:2") -> dict:
    """Per prompt: the chosen timesteps with their scores, and the policy that chose them."""
    out = {}
    for prompt, table in scores.groupby("prompt"):
        chosen = indicator.select(table, indicator_name, policy)
        out[prompt] = {"timesteps": [t for t, _ in chosen], "scores": [s for _, s in chosen],
                       "indicator": indicator_name, "policy": policy}
    return out
