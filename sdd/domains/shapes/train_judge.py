"""Train the shapes judge; reproduces the shipped weights (seeded, CPU, a few minutes).

    python -m sdd.domains.shapes.train_judge [--out DIR] [--steps N]

Images are rendered fresh every step, with mild pixel noise and blur so that the judge
also reads imperfect images (teacher samples, edited images) the way a person would.

Half of every batch has its objects repainted in random colours (``recolour``), with the
colour head's loss skipped for those rows: shape, size and background are geometry and
setting, and the judge must read them off an object of any colour. A judge trained only on
the six canonical colours reads the size of a dark or brownish red (what an edit that stops
short produces) wrong for several percent of objects whose outline is exactly the source's
(docs/experiments/recolour_calibration.md), which would charge an edit for the instrument's mistake.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from tqdm import tqdm

from sdd.io.images import to_tensor_range

from .judge import CONFIG_FILE, WEIGHTS_FILE, JudgeNet, ShapesJudge, default_weights_dir
from .render import ShapesBatch, composite, generate, region_colours, render, sample_labels

RECIPE = {"seed": 1, "steps": 1500, "batch_size": 128, "lr": 3e-3, "width": 32, "noise": 0.08,
          "recolour_share": 0.5, "min_contrast": 60}


def random_colours(rng: np.random.Generator, backgrounds: np.ndarray, min_contrast: float) -> np.ndarray:
    """One uniform RGB colour per row at least ``min_contrast`` (RGB distance) from the row's
    background, so every object stays visible."""
    colours = rng.integers(0, 256, size=backgrounds.shape).astype(np.float64)
    close = np.linalg.norm(colours - backgrounds, axis=1) < min_contrast
    while close.any():
        colours[close] = rng.integers(0, 256, size=(int(close.sum()), 3))
        close = np.linalg.norm(colours - backgrounds, axis=1) < min_contrast
    return colours


def recolour(batch: ShapesBatch, rng: np.random.Generator, share: float, min_contrast: float) -> tuple[np.ndarray, np.ndarray]:
    """Images with the objects of a random ``share`` of rows repainted in random colours, and
    which rows those are. The outline and its anti-aliasing stay exactly the source's."""
    rows = rng.random(len(batch)) < share
    images = batch.images.copy()
    if rows.any():
        masks = batch.masks[rows]
        background = region_colours(batch.images[rows], masks == 0)
        images[rows] = composite(masks, random_colours(rng, background, min_contrast), background)
    return images, rows


def augment(x: torch.Tensor, gen: torch.Generator, noise: float) -> torch.Tensor:
    """Random Gaussian pixel noise and, for half the batch, a light 3x3 blur."""
    blurred = F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), 3, 1)
    mix = (torch.rand(x.shape[0], 1, 1, 1, generator=gen) < 0.5).float() * 0.5
    x = x * (1 - mix) + blurred * mix
    sigma = noise * torch.rand(x.shape[0], 1, 1, 1, generator=gen)
    return (x + sigma * torch.randn(x.shape, generator=gen)).clamp(-1, 1)


def accuracy(judge: ShapesJudge, n: int = 2000, seed: int = 2024) -> dict[str, float]:
    """Per-attribute accuracy on ``n`` freshly generated images."""
    batch = generate(n, seed)
    pred = judge.predict(batch.images)
    return {name: float((pred[name] == batch.labels[name]).mean()) for name in pred}


def train(out: Path, recipe: dict, threads: int) -> dict[str, float]:
    torch.set_num_threads(threads)
    torch.manual_seed(recipe["seed"])
    net = JudgeNet(width=recipe["width"])
    optimizer = torch.optim.AdamW(net.parameters(), lr=recipe["lr"], weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(optimizer, recipe["lr"], total_steps=recipe["steps"])
    net.train()
    bar = tqdm(range(recipe["steps"]), desc="judge")
    for step in bar:
        rng = np.random.default_rng([recipe["seed"], step])
        batch = render(rng, sample_labels(rng, recipe["batch_size"]))
        images, repainted = recolour(batch, rng, recipe["recolour_share"], recipe["min_contrast"])
        gen = torch.Generator().manual_seed(int(rng.integers(2**62)))
        x = augment(to_tensor_range(images), gen, recipe["noise"])
        logits = net(x)
        loss = sum(F.cross_entropy(logits[k], torch.from_numpy(batch.labels[k])) for k in logits if k != "color")
        if not repainted.all():  # the colour head learns from the canonically coloured rows only
            keep = torch.from_numpy(~repainted)
            loss = loss + F.cross_entropy(logits["color"][keep], torch.from_numpy(batch.labels["color"])[keep])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        sched.step()
        bar.set_postfix(loss=f"{loss.item():.4f}")

    out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, out / WEIGHTS_FILE)
    digest = hashlib.sha256((out / WEIGHTS_FILE).read_bytes()).hexdigest()
    judge = ShapesJudge(net, f"shapes-judge@{digest[:12]}")
    acc = accuracy(judge)
    (out / CONFIG_FILE).write_text(
        json.dumps({"width": recipe["width"], "sha256": digest, "recipe": recipe, "accuracy_2000": acc}, indent=2)
    )
    print("accuracy on 2,000 fresh images:", acc, flush=True)
    return acc


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=default_weights_dir())
    parser.add_argument("--steps", type=int, default=RECIPE["steps"])
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args(argv)
    train(args.out, dict(RECIPE, steps=args.steps), args.threads)


if __name__ == "__main__":
    main()
