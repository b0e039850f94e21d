"""The indicator sweep: one row per (image, t), shard-invariant, plotted."""

import pandas as pd
import torch

from sdd.plots import indicator_curves_png
from sdd.selection import indicator_sweep, select_timesteps, timestep_grid


def test_sweep_table_and_shard_invariance(random_shapes_teacher):
    teacher = random_shapes_teacher
    images = torch.rand(4, 3, 32, 32) * 2 - 1
    ts = [100, 500, 900]
    whole = indicator_sweep(teacher, images, "a red object", ts, image_ids=[10, 11, 12, 13], draws=2)
    assert len(whole) == 12
    assert set(whole.columns) == {"prompt", "t", "image_id", "reference_entropy", "entropy", "consistency",
                                  "hybrid", "grad_norm"}
    first = indicator_sweep(teacher, images[:2], "a red object", ts, image_ids=[10, 11], draws=2)
    second = indicator_sweep(teacher, images[2:], "a red object", ts, image_ids=[12, 13], draws=2)
    sharded = pd.concat([first, second], ignore_index=True)
    pd.testing.assert_frame_equal(whole, sharded, rtol=1e-4)
    chosen = select_timesteps(whole, "hybrid", "topk:2")["a red object"]
    assert len(chosen["timesteps"]) == 2 and set(chosen["timesteps"]) <= set(ts)
    png = indicator_curves_png(whole, "a red object", chosen["timesteps"])
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


def test_grid():
    assert timestep_grid(100, 900, 50)[:3] == [100, 150, 200] and timestep_grid(100, 900, 50)[-1] == 900
