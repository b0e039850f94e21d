"""DDIM sampling with classifier-free guidance, for any Teacher.

Used to look at what a teacher has learned (``sdd teacher sample``), to measure its prompt
adherence, and by the SDEdit baseline (which starts from a noised source instead of noise).
The scheduler is diffusers' ``DDIMScheduler`` built from the teacher's own schedule.
"""

from __future__ import annotations

import torch
from diffusers import DDIMScheduler
from tqdm import tqdm

from sdd.guidance import predict_cfg
from sdd.teachers.base import Teacher, TextEmbedding


def ddim_scheduler(teacher: Teacher, steps: int) -> DDIMScheduler:
    scheduler = DDIMScheduler.from_config(teacher.scheduler_config, clip_sample=teacher.clip_sample)
    scheduler.set_timesteps(steps, device=teacher.device)
    return scheduler


def guided_noise(teacher: Teacher, z: torch.Tensor, t: torch.Tensor, cond: TextEmbedding,
                 uncond: TextEmbedding, guidance_scale: float) -> torch.Tensor:
    """eps_uncond + s * (eps_cond - eps_uncond), in teacher calls of ``predict_cfg``'s size."""
    eps_uncond, eps_cond = predict_cfg(teacher, z, t, cond, uncond)
    return eps_uncond + guidance_scale * (eps_cond - eps_uncond)


@torch.no_grad()
def sample(
    teacher: Teacher,
    prompts: list[str],
    *,
    guidance_scale: float,
    steps: int = 50,
    seed: int = 0,
    batch_size: int = 256,
    progress: bool = True,
) -> torch.Tensor:
    """One image per prompt, in [-1, 1], [N, 3, H, W]; deterministic under ``seed``."""
    gen = torch.Generator(device="cpu").manual_seed(seed)
    shape = teacher.latent_shape
    noise = torch.randn((len(prompts), *shape), generator=gen)
    out = []
    chunks = range(0, len(prompts), batch_size)
    bar = tqdm(total=len(chunks) * steps, desc="sampling", disable=not progress)
    for start in chunks:
        chunk = prompts[start : start + batch_size]
        conditioning = teacher.embed(chunk)
        z = noise[start : start + len(chunk)].to(teacher.device, teacher.dtype)
        scheduler = ddim_scheduler(teacher, steps)
        for t in scheduler.timesteps:
            eps = guided_noise(teacher, z, t, conditioning.cond, conditioning.uncond, guidance_scale)
            z = scheduler.step(eps, t, z).prev_sample
            bar.update()
        out.append(teacher.decode(z).float().clamp(-1, 1).cpu())
    bar.close()
    return torch.cat(out)
