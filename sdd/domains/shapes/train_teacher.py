"""Train the bundled shapes teacher; reproduces the shipped weights (seeded, CPU).

    python -m sdd.domains.shapes.train_teacher                          # shipped recipe, both stages
    python -m sdd.domains.shapes.train_teacher --stages partial --init DIR   # the second stage only
    python -m sdd.domains.shapes.train_teacher --out DIR --steps N       # anything else

The shipped teacher is trained in two stages (``STAGES``). ``base`` learns the world from
mostly full captions (each attribute dropped independently). ``partial`` continues from
base's EMA weights with every caption length equally common (``captions: subsets``): the
edit prompts name one attribute (``a large object``, ``a circle``), and under independent
dropout such captions are under 3% of the rows, which left one-attribute samples empty or
malformed several times as often as full-caption ones
(docs/experiments/teacher_partial_prompts.md). Intermediate stages go to ``--work``; the
last one exports to ``--out``.

Training data is rendered on the fly, seeded by (seed, step), so a run is deterministic and
resumes exactly: checkpoints (model, EMA, optimizer; all safetensors) are written every
``--checkpoint-every`` steps to ``<out>/checkpoint/`` and picked up on restart. The held-out
(size, colour, shape) combinations of ``spec.HELD_OUT`` never appear in training.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import time
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from sdd.io.tensor_state import load_module, module_tensors, optimizer_tensors, restore_optimizer
from sdd.teachers.shapes import CONFIG_FILE, WEIGHTS_FILE, build_modules, default_weights_dir, noise_schedule

from . import spec
from .captions import training_captions, vocabulary
from .render import render, sample_labels

TEACHER_CONFIG = {
    "unet": {
        "sample_size": spec.IMAGE_SIZE,
        "in_channels": 3,
        "out_channels": 3,
        "block_out_channels": [32, 64, 64],
        "layers_per_block": 1,
        "down_block_types": ["DownBlock2D", "DownBlock2D", "CrossAttnDownBlock2D"],
        "up_block_types": ["CrossAttnUpBlock2D", "UpBlock2D", "UpBlock2D"],
        "attention_head_dim": 16,
        "norm_num_groups": 8,
    },
    "text_encoder": {"dim": 64, "layers": 2, "heads": 4, "max_length": 10},
    "vocabulary": vocabulary(),
    "schedule": {
        "num_train_timesteps": 1000,
        "beta_schedule": "linear",
        "beta_start": 0.0001,
        "beta_end": 0.02,
    },
    # validated by `sdd teacher eval --guidance 2,3,4`: 2 meets every adherence bar; 3 and 4
    # over-saturate and lose size/colour (docs/shapes_world.md)
    "sampling": {"guidance_scale": 2.0, "steps": 50},
}

RECIPE = {
    "seed": 0,
    "steps": 4000,
    "batch_size": 64,
    "lr": 1e-3,
    "warmup": 200,
    "weight_decay": 0.0,
    "ema_decay": 0.999,
    "min_snr_gamma": 5.0,
    "drop_attribute": 0.2,
    "drop_caption": 0.1,
    "captions": "independent",
}
# the second stage starts from the first's EMA weights: a lower peak rate, a short warm-up
PARTIAL_RECIPE = dict(RECIPE, seed=1, steps=3000, lr=3e-4, warmup=100, captions="subsets")
STAGES: dict[str, dict] = {"base": RECIPE, "partial": PARTIAL_RECIPE}


def lr_at(step: int, recipe: dict) -> float:
    """Linear warm-up, then cosine decay to 5% of the peak."""
    if step < recipe["warmup"]:
        return recipe["lr"] * (step + 1) / recipe["warmup"]
    progress = (step - recipe["warmup"]) / max(1, recipe["steps"] - recipe["warmup"])
    return recipe["lr"] * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def training_batch(step: int, recipe: dict) -> tuple[torch.Tensor, list[str], torch.Generator]:
    """Images, captions and a torch generator, all a pure function of (seed, step)."""
    rng = np.random.default_rng([recipe["seed"], step])
    labels = sample_labels(rng, recipe["batch_size"], exclude_held_out=True)
    batch = render(rng, labels)
    captions = training_captions(
        rng, labels, drop_attribute=recipe["drop_attribute"], drop_caption=recipe["drop_caption"],
        scheme=recipe.get("captions", "independent"),
    )
    x0 = torch.from_numpy(batch.images).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    gen = torch.Generator().manual_seed(int(rng.integers(2**62)))
    return x0, captions, gen


def modules_state(unet, text_encoder, prefix: str = "") -> dict[str, torch.Tensor]:
    return {**module_tensors(unet, f"{prefix}unet."), **module_tensors(text_encoder, f"{prefix}text_encoder.")}


def train(out: Path, recipe: dict, checkpoint_every: int, threads: int, stop_after: int | None = None,
          init: Path | None = None) -> None:
    """Train to ``recipe['steps']``; ``stop_after`` ends early after a checkpoint (for tests).
    ``init``: a weights directory to start from (an earlier stage's export) instead of a
    fresh initialisation."""
    torch.set_num_threads(threads)
    torch.manual_seed(recipe["seed"])
    config = dict(TEACHER_CONFIG, training=recipe)
    if init is not None:  # the stages before this one, for the record
        earlier = json.loads((Path(init) / CONFIG_FILE).read_text())
        config["earlier_stages"] = [*earlier.get("earlier_stages", []),
                                    {"training": earlier.get("training"), "training_log": earlier.get("training_log")}]
    unet, text_encoder, tokenizer = build_modules(config)
    ema_unet, ema_text, _ = build_modules(config)
    if init is not None:
        weights = load_file(Path(init) / WEIGHTS_FILE)
        load_module(unet, weights, "unet.")
        load_module(text_encoder, weights, "text_encoder.")
    ema_unet.load_state_dict(unet.state_dict())
    ema_text.load_state_dict(text_encoder.state_dict())
    params = list(unet.parameters()) + list(text_encoder.parameters())
    ema_params = list(ema_unet.parameters()) + list(ema_text.parameters())
    optimizer = torch.optim.AdamW(params, lr=recipe["lr"], weight_decay=recipe["weight_decay"])
    schedule = noise_schedule(config)
    alphas_cumprod = schedule.alphas_cumprod
    snr = alphas_cumprod / (1 - alphas_cumprod)
    loss_weight = torch.clamp(snr, max=recipe["min_snr_gamma"]) / snr  # min-SNR-gamma, eps-prediction

    ckpt_dir = out / "checkpoint"
    start, log = 0, []
    if (ckpt_dir / "state.safetensors").is_file():
        tensors = load_file(ckpt_dir / "state.safetensors")
        meta = json.loads((ckpt_dir / "state.json").read_text())
        if meta["recipe"] != recipe:
            raise SystemExit(f"checkpoint in {ckpt_dir} was made with a different recipe: {meta['recipe']}")
        for module, prefix in ((unet, "unet."), (text_encoder, "text_encoder."),
                               (ema_unet, "ema.unet."), (ema_text, "ema.text_encoder.")):
            load_module(module, tensors, prefix)
        restore_optimizer(optimizer, tensors)
        start, log = meta["step"], meta["log"]
        print(f"resuming from step {start}", flush=True)

    unet.train()
    text_encoder.train()
    started = time.time()
    bar = tqdm(range(start, recipe["steps"]), initial=start, total=recipe["steps"], desc="teacher")
    running = None
    for step in bar:
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, recipe)
        x0, captions, gen = training_batch(step, recipe)
        noise = torch.randn(x0.shape, generator=gen)
        t = torch.randint(0, schedule.config.num_train_timesteps, (x0.shape[0],), generator=gen)
        a = alphas_cumprod[t].view(-1, 1, 1, 1)
        z_t = a.sqrt() * x0 + (1 - a).sqrt() * noise
        hidden, pooled = text_encoder(tokenizer(captions))
        eps = unet(z_t, t, encoder_hidden_states=hidden, class_labels=pooled).sample
        per_sample = (eps - noise).pow(2).mean(dim=(1, 2, 3))
        loss = (loss_weight[t] * per_sample).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        decay = min(recipe["ema_decay"], (1 + step) / (10 + step))
        with torch.no_grad():
            torch._foreach_lerp_(ema_params, params, 1 - decay)

        running = loss.item() if running is None else 0.98 * running + 0.02 * loss.item()
        bar.set_postfix(loss=f"{running:.4f}", lr=f"{lr_at(step, recipe):.1e}")
        done = step + 1
        if done % 50 == 0:
            log.append({"step": done, "loss": running, "seconds": time.time() - started})
        if done % checkpoint_every == 0 or done == recipe["steps"]:
            write_checkpoint(ckpt_dir, unet, text_encoder, ema_unet, ema_text, optimizer, done, recipe, log)
        if stop_after is not None and done >= stop_after:
            return

    export(out, config, ema_unet, ema_text, log)


def write_checkpoint(ckpt_dir, unet, text_encoder, ema_unet, ema_text, optimizer, step, recipe, log) -> None:
    """Atomic: written beside, then renamed, so an interrupted write never corrupts a resume."""
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    tensors = modules_state(unet, text_encoder)
    tensors.update(modules_state(ema_unet, ema_text, prefix="ema."))
    tensors.update(optimizer_tensors(optimizer))
    save_file(tensors, ckpt_dir / "state.safetensors.tmp")
    (ckpt_dir / "state.json.tmp").write_text(json.dumps({"step": step, "recipe": recipe, "log": log}))
    os.replace(ckpt_dir / "state.safetensors.tmp", ckpt_dir / "state.safetensors")
    os.replace(ckpt_dir / "state.json.tmp", ckpt_dir / "state.json")


def export(out: Path, config: dict, ema_unet, ema_text, log: list[dict]) -> None:
    """The shipped artifact: EMA weights only, plus the config the loader rebuilds from."""
    out.mkdir(parents=True, exist_ok=True)
    save_file(modules_state(ema_unet, ema_text), out / WEIGHTS_FILE)
    existing = out / CONFIG_FILE
    sampling = json.loads(existing.read_text()).get("sampling") if existing.is_file() else None
    config = dict(config, training_log=log[-1] if log else None)
    if sampling:
        config["sampling"] = sampling
    existing.write_text(json.dumps(config, indent=2))
    print(f"wrote {out / WEIGHTS_FILE} ({(out / WEIGHTS_FILE).stat().st_size / 1e6:.1f} MB)", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=default_weights_dir(), help="weights directory of the last stage")
    parser.add_argument("--work", type=Path, default=Path("runs/teacher_stages"),
                        help="where the stages before the last train and export")
    parser.add_argument("--stages", default=",".join(STAGES), help=f"comma-separated, in order, from {list(STAGES)}")
    parser.add_argument("--init", type=Path, help="weights the first of --stages starts from (default: fresh)")
    parser.add_argument("--steps", type=int, help="override every stage's steps")
    parser.add_argument("--batch-size", type=int, help="override every stage's batch size")
    parser.add_argument("--checkpoint-every", type=int, default=100)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--fresh", action="store_true", help="ignore existing checkpoints")
    args = parser.parse_args(argv)
    names = [s.strip() for s in args.stages.split(",") if s.strip()]
    unknown = [n for n in names if n not in STAGES]
    if unknown or not names:
        parser.error(f"unknown stages {unknown}; expected a comma-separated list from {list(STAGES)}")
    init = args.init
    for k, name in enumerate(names):
        overrides = {key: v for key, v in (("steps", args.steps), ("batch_size", args.batch_size)) if v is not None}
        recipe = dict(STAGES[name], **overrides, stage=name)
        out = args.out if k == len(names) - 1 else args.work / name
        if args.fresh:
            shutil.rmtree(out / "checkpoint", ignore_errors=True)
        print(f"stage {name}: {recipe['steps']} steps -> {out}", flush=True)
        train(out, recipe, args.checkpoint_every, args.threads, init=init)
        init = out


if __name__ == "__main__":
    main()
