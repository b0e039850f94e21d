"""SDEdit with the same teacher: noise the source to strength s, DDIM-denoise with the target
prompt and classifier-free guidance. The baseline SDD has to beat on fidelity and speed."""

from __future__ import annotations

import torch

from sdd.sampling import ddim_scheduler, guided_noise
from sdd.teachers.base import Teacher


class SDEditEditor:
    """Callable editor: images in [-1, 1] -> edited images. ``strength`` in (0, 1] is the
    fraction of the noise schedule the source is pushed through (1 = from pure noise)."""

    def __init__(self, teacher: Teacher, prompt: str, *, strength: float, guidance_scale: float,
                 steps: int = 50, seed: int = 0):
        if not 0 < strength <= 1:
            raise ValueError(f"SDEdit strength must be in (0, 1], got {strength}")
        self.teacher, self.prompt, self.strength = teacher, prompt, strength
        self.guidance_scale, self.steps, self.seed = guidance_scale, steps, seed
        self.conditioning = teacher.embed([prompt])
        self.denoiser_calls_per_image = 0

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        teacher = self.teacher
        scheduler = ddim_scheduler(teacher, self.steps)
        start = int(round(self.steps * (1 - self.strength)))
        timesteps = scheduler.timesteps[start:]
        self.denoiser_calls_per_image = 2 * len(timesteps)  # CFG: two UNet evaluations per step
        z0 = teacher.encode(images.to(teacher.device, teacher.dtype))
        gen = torch.Generator().manual_seed(self.seed)
        noise = torch.randn(z0.shape, generator=gen).to(z0.device, z0.dtype)
        if len(timesteps) == 0:
            return images
        z = scheduler.add_noise(z0, noise, timesteps[:1].repeat(z0.shape[0]))
        n = images.shape[0]
        cond, uncond = self.conditioning.cond.repeat_interleave(n), self.conditioning.uncond.repeat_interleave(n)
        for t in timesteps:
            eps = guided_noise(teacher, z, t, cond, uncond, self.guidance_scale)
            z = scheduler.step(eps, t, z).prev_sample
        return teacher.decode(z).float().clamp(-1, 1)
