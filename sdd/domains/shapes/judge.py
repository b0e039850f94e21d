"""The shapes judge: a small CNN that reads shape, colour, size and background off an image.

It is the domain's measuring instrument (teacher adherence, editability, preservation), so
it ships with its weights and must stay >= 99% accurate per attribute on fresh images.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file
from torch import nn

from sdd.batching import resolve_max_batch
from sdd.io.images import to_tensor_range

from . import spec

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"


def default_weights_dir() -> Path:
    return Path(str(resources.files("sdd.domains.shapes") / "weights" / "judge"))


class JudgeNet(nn.Module):
    """Conv trunk -> global average and max pooling -> one linear head per attribute."""

    def __init__(self, width: int = 32):
        super().__init__()

        def block(cin: int, cout: int, stride: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1), nn.BatchNorm2d(cout), nn.SiLU())

        w = width
        self.trunk = nn.Sequential(
            block(3, w, 1), block(w, w, 1), block(w, 2 * w, 2), block(2 * w, 2 * w, 1),
            block(2 * w, 4 * w, 2), block(4 * w, 4 * w, 1),
        )
        self.heads = nn.ModuleDict({name: nn.Linear(8 * w, len(v)) for name, v in spec.ATTRIBUTES.items()})

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        h = self.trunk(x)
        pooled = torch.cat([h.mean(dim=(2, 3)), h.amax(dim=(2, 3))], dim=1)
        return {name: head(pooled) for name, head in self.heads.items()}


class ShapesJudge:
    """Attribute predictions for images (uint8 [N, H, W, 3] or tensors in [-1, 1])."""

    image_size = spec.IMAGE_SIZE  # what it was trained on; callers resize other sizes to it

    def __init__(self, net: JudgeNet, judge_id: str, device: str | torch.device = "cpu"):
        self.net = net.to(device, memory_format=torch.channels_last).eval().requires_grad_(False)
        self.id = judge_id
        self.device = torch.device(device)

    @classmethod
    def from_pretrained(cls, path: str | Path | None = None, device: str | torch.device = "cpu") -> "ShapesJudge":
        path = Path(path) if path is not None else default_weights_dir()
        if not (path / WEIGHTS_FILE).is_file():
            raise FileNotFoundError(
                f"no shapes judge at {path} (train one with `python -m sdd.domains.shapes.train_judge`)"
            )
        config = json.loads((path / CONFIG_FILE).read_text())
        net = JudgeNet(width=config["width"])
        net.load_state_dict(load_file(path / WEIGHTS_FILE))
        return cls(net, f"shapes-judge@{config.get('sha256', 'unknown')[:12]}", device)

    @torch.no_grad()
    def logits(self, images, batch_size: int | None = None) -> dict[str, torch.Tensor]:
        """Logits per attribute, in calls of ``batch_size`` rows (default: the device's,
        ``sdd.batching``)."""
        x = to_tensor_range(images) if isinstance(images, np.ndarray) else images.float()
        rows = resolve_max_batch(batch_size, self.device)
        parts = [self.net(x[i : i + rows].to(self.device)) for i in range(0, len(x), rows)]
        return {name: torch.cat([p[name] for p in parts]).cpu() for name in spec.ATTRIBUTES}

    def predict(self, images, batch_size: int | None = None) -> dict[str, np.ndarray]:
        """Label index per attribute (the order of ``spec.ATTRIBUTES``)."""
        return {name: v.argmax(1).numpy() for name, v in self.logits(images, batch_size).items()}
