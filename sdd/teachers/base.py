"""The Teacher contract: what guidance, sampling and evaluation need from a diffusion model.

A teacher is frozen. It maps images to the space it diffuses in (``encode``), prompts to
conditioning (``embed``) and noisy inputs to predicted noise (``predict_noise``). Pixel-space
teachers encode with the identity; latent teachers through their VAE. Everything else in
``sdd/`` (guidance, indicator, SDEdit, distillation) is written against this interface only.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch

from .precision import cast_module


@dataclass
class TextEmbedding:
    """A batch of prompt embeddings: per-token states for cross-attention, and an optional
    pooled vector for teachers that also condition globally."""

    hidden_states: torch.Tensor
    pooled: torch.Tensor | None = None

    def __len__(self) -> int:
        return self.hidden_states.shape[0]

    def __getitem__(self, index) -> "TextEmbedding":
        return TextEmbedding(
            self.hidden_states[index], None if self.pooled is None else self.pooled[index]
        )

    def repeat_interleave(self, repeats: int) -> "TextEmbedding":
        return TextEmbedding(
            self.hidden_states.repeat_interleave(repeats, dim=0),
            None if self.pooled is None else self.pooled.repeat_interleave(repeats, dim=0),
        )

    @staticmethod
    def cat(parts: list["TextEmbedding"]) -> "TextEmbedding":
        pooled = [p.pooled for p in parts]
        return TextEmbedding(
            torch.cat([p.hidden_states for p in parts]),
            None if any(p is None for p in pooled) else torch.cat(pooled),
        )


@dataclass
class Conditioning:
    """Conditional and unconditional embeddings for the same batch of prompts (for CFG)."""

    cond: TextEmbedding
    uncond: TextEmbedding

    def __len__(self) -> int:
        return len(self.cond)


class Teacher(ABC):
    """A frozen text-conditioned diffusion model, epsilon-predicting, DDPM-scheduled."""

    id: str
    image_size: int
    num_train_timesteps: int
    alphas_cumprod: torch.Tensor  # [num_train_timesteps], float32, on the teacher's device
    scheduler_config: dict  # the training noise schedule, as a diffusers scheduler config
    clip_sample: bool  # whether samplers may clip predicted x0 to [-1, 1] (pixel space only)
    device: torch.device
    dtype: torch.dtype

    @abstractmethod
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Images in [-1, 1], [B, 3, H, W] -> the space the teacher diffuses in.
        Differentiable (the guidance gradient is taken through it)."""

    @abstractmethod
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Inverse of ``encode``: latents -> images in [-1, 1] (used by samplers)."""

    @abstractmethod
    def _embed(self, prompts: list[str]) -> TextEmbedding:
        """Prompts -> embeddings, one per prompt (the empty prompt is the unconditional one)."""

    def embed(self, prompts: list[str]) -> Conditioning:
        """Prompts -> conditional embeddings, with the unconditional (empty prompt) alongside,
        encoded in one text-encoder call."""
        both = self._embed(list(prompts) + [""])
        n = len(prompts)
        return Conditioning(cond=both[:n], uncond=both[n:].repeat_interleave(n))

    @abstractmethod
    def predict_noise(self, z_t: torch.Tensor, t: torch.Tensor, emb: TextEmbedding) -> torch.Tensor:
        """Predicted noise for noisy inputs ``z_t`` at integer timesteps ``t`` (no grad), in
        ``z_t``'s dtype whatever the teacher computes in."""

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        """Shape (C, H, W) of one encoded image; used by samplers to draw noise."""
        with torch.no_grad():
            probe = torch.zeros(1, 3, self.image_size, self.image_size, device=self.device, dtype=self.dtype)
            return tuple(self.encode(probe).shape[1:])


def frozen(
    module: torch.nn.Module, device: torch.device, dtype: torch.dtype, *, channels_last: bool = False
) -> torch.nn.Module:
    """``module`` on ``device`` in ``dtype``, in eval mode, without gradients.

    Casts only when the dtype actually changes, and without diffusers' warning on every cast
    (``precision.cast_module``), which would print in every Ray worker.
    ``channels_last`` stores conv weights NHWC (see ``as_unet_input``).
    """
    module = module.to(device)
    if any(p.dtype != dtype for p in module.parameters() if p.is_floating_point()):
        module = cast_module(module, dtype)
    if channels_last:
        module = module.to(memory_format=torch.channels_last)
    return module.eval().requires_grad_(False)


def as_unet_input(z: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """A UNet input in the NHWC layout its channels-last weights run fastest on.

    On CPUs mkldnn's convolutions run fastest in it (docs/benchmarks.md); diffusers recommends
    it on GPUs too. Teachers make their outputs contiguous again, so nothing downstream sees
    the layout.
    """
    return z.to(dtype).contiguous(memory_format=torch.channels_last)
