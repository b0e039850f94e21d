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


class CountingTeacher:
    """A real teacher whose ``predict_noise`` rows are counted, by embedding: what the
    sharing saves is teacher rows, so that is what the test reads."""

    def __init__(self, teacher):
        self._teacher, self.rows = teacher, []

    def __getattr__(self, name):
        return getattr(self._teacher, name)

    def predict_noise(self, z_t, t, emb):
        self.rows.append(z_t.shape[0])
        return self._teacher.predict_noise(z_t, t, emb)


def test_prompts_share_the_unconditional_rows_and_score_as_if_alone(random_shapes_teacher):
    images = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(1)) * 2 - 1
    ts, prompts, draws = [200, 600], ["a red object", "a blue object", "a white object"], 2
    counting = CountingTeacher(random_shapes_teacher)
    together = indicator_sweep(counting, images, prompts, ts, image_ids=[5, 6, 7], draws=draws)
    # (P + 1) rows per (image, t, draw), not 2P
    assert sum(counting.rows) == (len(prompts) + 1) * 3 * len(ts) * draws
    alone = pd.concat([indicator_sweep(random_shapes_teacher, images, p, ts, image_ids=[5, 6, 7], draws=draws)
                       for p in prompts], ignore_index=True)
    pd.testing.assert_frame_equal(together, alone, rtol=1e-5)
    assert list(together["prompt"].unique()) == prompts


def test_sharing_holds_through_a_vae(tiny_sd_checkpoint):
    """Latent-space teacher: the shared rows are latents, the maps are pulled back through the
    VAE per prompt."""
    from sdd.teachers import load_teacher

    teacher = load_teacher(str(tiny_sd_checkpoint))
    images = torch.rand(2, 3, teacher.image_size, teacher.image_size, generator=torch.Generator().manual_seed(2)) * 2 - 1
    prompts = ["a red car", "a blue car"]
    together = indicator_sweep(teacher, images, prompts, [300, 700], draws=2)
    alone = pd.concat([indicator_sweep(teacher, images, p, [300, 700], draws=2) for p in prompts], ignore_index=True)
    pd.testing.assert_frame_equal(together, alone, rtol=1e-4)
