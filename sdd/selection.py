"""Timestep selection: sweep a prompt over timesteps x images x noise draws, score every
indicator, and choose timesteps. The Ray job shards ``indicator_sweeps`` over images (and,
on a cluster with more slots than shards, over groups of prompts); the single-machine CLI
runs it whole. Either way the numbers are the same: every image's noise is seeded by (seed,
draw, image id), not by its position in a shard or by the prompt.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd
import torch

from sdd import indicator
from sdd.guidance import sds_gradient, sweep_rows_noise, unconditional_prediction
from sdd.teachers.base import Conditioning, Teacher


def timestep_grid(start: int = 100, stop: int = 900, step: int = 50) -> list[int]:
    """Inclusive grid, like the reference's search (min_step, max_step, search_step)."""
    if not 0 <= start <= stop or step < 1:
        raise ValueError(f"bad timestep grid start={start} stop={stop} step={step}")
    return list(range(start, stop + 1, step))


def noise_seed(seed: int, draw: int, image_id: int) -> int:
    return int(np.random.SeedSequence([seed, draw, int(image_id)]).generate_state(1)[0])


def sweep_gradients(
    teacher: Teacher, images: torch.Tensor, prompts: list[str], timesteps: list[int], *, image_ids: list[int],
    draws: int, guidance_scale: float, weighting: str = "sds", seed: int = 0, max_batch: int | None = None,
) -> Iterator[tuple[str, torch.Tensor]]:
    """Per prompt, image-space SDS gradients [draws, B, T, 3, H, W], one prompt at a time (a
    prompt's maps are the memory peak, whatever the number of prompts).

    Noise depends on (seed, draw, image id), never on the prompt, so every prompt sees the same
    noisy rows and CFG's unconditional half is the same for all of them: it is predicted once
    per draw (kept in latent space, small beside the image-space maps) and shared, which makes
    P + 1 teacher rows per (image, t, draw) instead of 2P."""
    conds = teacher.embed(list(prompts))
    b, k = images.shape[0], len(timesteps)
    with torch.no_grad():
        latent_shape = tuple(teacher.encode(images[:1].to(teacher.device)).shape[1:])
    noises = [sweep_rows_noise([noise_seed(seed, d, i) for i in image_ids], b, k, latent_shape) for d in range(draws)]
    unconds = [unconditional_prediction(teacher, images, conds.uncond[:1], timesteps, n, max_batch) for n in noises]
    for p, prompt in enumerate(prompts):
        cond = Conditioning(conds.cond[p : p + 1], conds.uncond[p : p + 1])
        grads = [
            sds_gradient(teacher, images, cond, timesteps, guidance_scale=guidance_scale, weighting=weighting,
                         noise=noise, image_gradient=True, max_batch=max_batch, uncond=uncond).image.cpu()
            for noise, uncond in zip(noises, unconds)
        ]
        yield prompt, torch.stack(grads)


def indicator_sweeps(
    teacher: Teacher, images: torch.Tensor, prompts: list[str], timesteps: list[int], *,
    image_ids: list[int] | None = None, draws: int = 4, guidance_scale: float = 3.0, weighting: str = "sds",
    seed: int = 0, max_batch: int | None = None,
) -> Iterator[tuple[str, pd.DataFrame]]:
    """Per prompt, as each is scored: one row per (image, t) with prompt, t, image_id, every
    indicator and the gradient norm. The prompts share the unconditional teacher rows."""
    ids = list(image_ids) if image_ids is not None else list(range(images.shape[0]))
    for prompt, grads in sweep_gradients(teacher, images, prompts, timesteps, image_ids=ids, draws=draws,
                                         guidance_scale=guidance_scale, weighting=weighting, seed=seed,
                                         max_batch=max_batch):
        scores = indicator.score_all(grads)
        b, k = len(ids), len(timesteps)
        table = pd.DataFrame({
            "prompt": [prompt] * (b * k),
            "t": np.tile(np.asarray(timesteps, dtype=np.int64), b),
            "image_id": np.repeat(np.asarray(ids, dtype=np.int64), k),
        })
        for name, values in scores.items():
            table[name] = values.reshape(-1).numpy().astype(np.float64)
        yield prompt, table


def indicator_sweep(
    teacher: Teacher, images: torch.Tensor, prompts: str | list[str], timesteps: list[int], **kwargs,
) -> pd.DataFrame:
    """``indicator_sweeps`` for one prompt or several, as one table."""
    prompts = [prompts] if isinstance(prompts, str) else list(prompts)
    return pd.concat([table for _, table in indicator_sweeps(teacher, images, prompts, timesteps, **kwargs)],
                     ignore_index=True)


def select_timesteps(scores: pd.DataFrame, indicator_name: str = "hybrid", policy: str = "window:2") -> dict:
    """Per prompt: the chosen timesteps with their scores, and the policy that chose them."""
    out = {}
    for prompt, table in scores.groupby("prompt"):
        chosen = indicator.select(table, indicator_name, policy)
        out[prompt] = {"timesteps": [t for t, _ in chosen], "scores": [s for _, s in chosen],
                       "indicator": indicator_name, "policy": policy}
    return out
