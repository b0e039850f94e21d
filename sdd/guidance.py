"""Score-distillation guidance, batched over images x timesteps in few teacher calls.

For an image ``x`` with teacher-space latent ``z0 = E(x)``, timestep ``t`` and noise ``eps``:

    z_t = sqrt(a_t) z0 + sqrt(1 - a_t) eps
    g   = w(t) * (eps_cfg(z_t, t, prompt) - eps)        (the SDS gradient w.r.t. z0)

``eps_cfg`` is classifier-free guided; its conditional and unconditional halves run in the
same teacher call. The ``classifier`` estimator keeps only the guidance term,

    g   = w(t) * s * (eps(z_t, t, prompt) - eps(z_t, t, ""))

i.e. the gradient of the implicit classifier log p_t(prompt | z_t) (classifier score
distillation, Yu et al. 2023). It drops ``eps_uncond - eps``, the prior's pull toward typical
images, which carries most of the variance and is what tints backgrounds and blurs small
shapes when a manipulator is trained on it: pixels the prompt says nothing about get no
gradient at all. The ``dds`` estimator (delta denoising score, Hertz et al. 2023) keeps the
prior's term but measures it against the source image instead of the drawn noise,

    g   = w(t) * (eps_cfg(z_t, t, prompt) - eps(z_t(x), t, ""))

with ``z_t(x)`` the source's latent noised with the same ``eps`` and ``t``. Whatever the
teacher would denoise away in the source as well (the pull toward its typical image, most of
the noise) cancels; what remains is the prompt's pull plus the prior's objection to what the
edit added that the source did not have (a halo, a second blob, a rim of the old colour).
The source prompt is the empty one, because photos come without captions. The reference implementation makes one teacher call per timestep per
image; here every (image, t) row of a sweep goes through the teacher together, chunked so
that no call exceeds ``max_batch`` rows. The teacher's Jacobian is never formed: training
injects ``g`` straight into ``z0`` (``inject``), indicator sweeps pull it back to image
space through ``encode`` (identity for pixel-space teachers).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from sdd.batching import resolve_max_batch
from sdd.teachers.base import Conditioning, Teacher, TextEmbedding

WEIGHTINGS = ("sds", "uniform", "sqrt_a_one_minus_a")
ESTIMATORS = ("sds", "classifier", "dds")


def timestep_weight(alphas_cumprod: torch.Tensor, t: torch.Tensor, weighting: str) -> torch.Tensor:
    """w(t): ``sds`` = 1 - a_t (the reference's), ``uniform`` = 1, ``sqrt_a_one_minus_a``."""
    a = alphas_cumprod[t]
    if weighting == "sds":
        return 1 - a
    if weighting == "uniform":
        return torch.ones_like(a)
    if weighting == "sqrt_a_one_minus_a":
        return a.sqrt() * (1 - a)
    raise ValueError(f"unknown weighting {weighting!r}; expected one of {WEIGHTINGS}")


def sparsify_topk(grad: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the ``k`` largest-magnitude entries of each row's gradient map, zero the rest
    (the reference's ``clip_grad_topk``, applied per row instead of per batch)."""
    flat = grad.reshape(grad.shape[0], -1)
    if k >= flat.shape[1]:
        return grad
    threshold = flat.abs().topk(k, dim=1).values[:, -1:]
    return torch.where(flat.abs() >= threshold, flat, torch.zeros_like(flat)).reshape(grad.shape)


def noised(teacher: Teacher, latents: torch.Tensor, t: torch.Tensor, noise: torch.Tensor):
    """(z_t, a_t broadcastable to the rows): the forward process at one t per row."""
    a = teacher.alphas_cumprod[t].view(-1, *([1] * (latents.dim() - 1))).to(latents.dtype)
    return a.sqrt() * latents + (1 - a).sqrt() * noise, a


@torch.no_grad()
def guided_gradient(
    teacher: Teacher,
    latents: torch.Tensor,
    emb: Conditioning,
    t: torch.Tensor,
    noise: torch.Tensor,
    *,
    guidance_scale: float,
    weighting: str = "sds",
    topk: int | None = None,
    max_batch: int | None = None,
    estimator: str = "sds",
    uncond: torch.Tensor | None = None,
    source_latents: torch.Tensor | None = None,
) -> torch.Tensor:
    """SDS (``classifier``, ``dds``) gradient for N rows: each row its own latent, prompt embedding, t and noise.

    ``max_batch`` bounds the rows of one teacher call (CFG doubles each row), which is the
    memory budget knob: peak activation memory scales with it, not with N. ``uncond``: the
    unconditional noise prediction of these rows when the caller has it already (several
    prompts over the same latents, t and noise share it); only the conditional half is
    computed then. ``source_latents``: the unedited latent of each row, which ``dds`` measures
    the edit against (the same t and noise).
    """
    if estimator not in ESTIMATORS:
        raise ValueError(f"unknown estimator {estimator!r}; expected one of {ESTIMATORS}")
    if (estimator == "dds") != (source_latents is not None):
        raise ValueError("source_latents are what the dds estimator needs, and only it")
    n = latents.shape[0]
    if not (len(emb) == n and t.shape[0] == n and noise.shape == latents.shape):
        raise ValueError(
            f"guided_gradient needs one embedding, t and noise per row: "
            f"latents {tuple(latents.shape)}, emb {len(emb)}, t {tuple(t.shape)}, noise {tuple(noise.shape)}"
        )
    t = t.to(teacher.device)
    z_t, a = noised(teacher, latents, t, noise)
    if uncond is None:
        uncond, cond = predict_cfg(teacher, z_t, t, emb.cond, emb.uncond, max_batch)
    else:
        if uncond.shape != latents.shape:
            raise ValueError(f"uncond has shape {tuple(uncond.shape)}; the rows are {tuple(latents.shape)}")
        cond = predict_rows(teacher, z_t, t, emb.cond, max_batch)
    w = timestep_weight(teacher.alphas_cumprod, t, weighting).view_as(a).to(latents.dtype)
    if estimator == "sds":
        grad = w * (uncond + guidance_scale * (cond - uncond) - noise)
    elif estimator == "dds":
        if source_latents.shape != latents.shape:
            raise ValueError(f"source_latents have shape {tuple(source_latents.shape)}; the rows are {tuple(latents.shape)}")
        source_t, _ = noised(teacher, source_latents, t, noise)
        source_uncond = predict_rows(teacher, source_t, t, emb.uncond, max_batch)
        grad = w * (uncond + guidance_scale * (cond - uncond) - source_uncond)
    else:
        grad = w * (guidance_scale * (cond - uncond))
    return sparsify_topk(grad, topk) if topk else grad


@torch.no_grad()
def predict_cfg(
    teacher: Teacher, z_t: torch.Tensor, t: torch.Tensor, cond: TextEmbedding, uncond: TextEmbedding,
    max_batch: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(unconditional, conditional) noise predictions for each row of ``z_t``: both halves of
    a row in the same teacher call, calls of at most ``max_batch`` rows (CFG doubles each row).
    ``t`` is one timestep for all rows or one per row."""
    rows = max(1, resolve_max_batch(max_batch, z_t.device) // 2)
    per_row = torch.as_tensor(t).dim() > 0
    uncond_parts, cond_parts = [], []
    for s in range(0, z_t.shape[0], rows):
        sl = slice(s, s + rows)
        z, ts = z_t[sl], t[sl] if per_row else t
        both = teacher.predict_noise(
            torch.cat([z, z]), torch.cat([ts, ts]) if per_row else ts, TextEmbedding.cat([uncond[sl], cond[sl]])
        )
        u, c = both.chunk(2)
        uncond_parts.append(u)
        cond_parts.append(c)
    return torch.cat(uncond_parts), torch.cat(cond_parts)


@torch.no_grad()
def predict_rows(
    teacher: Teacher, z_t: torch.Tensor, t: torch.Tensor, emb: TextEmbedding, max_batch: int | None = None,
) -> torch.Tensor:
    """Noise predictions for rows with one embedding each (no CFG pairing), in calls of at
    most ``max_batch`` rows. ``t`` is one timestep for all rows or one per row."""
    rows = resolve_max_batch(max_batch, z_t.device)
    per_row = torch.as_tensor(t).dim() > 0
    return torch.cat([
        teacher.predict_noise(z_t[s : s + rows], t[s : s + rows] if per_row else t, emb[s : s + rows])
        for s in range(0, z_t.shape[0], rows)
    ])


@dataclass
class SweepGradients:
    """Gradients of a sweep: ``latent[b, i]`` w.r.t. the teacher's input at ``timesteps[i]``,
    ``image[b, i]`` the same pulled back to image space (None unless asked for)."""

    timesteps: torch.Tensor
    latent: torch.Tensor
    image: torch.Tensor | None


def sweep_noise(shape: tuple[int, ...], seed: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """Fixed noise for reproducible sweeps: the same (shape, seed) always gives the same draw."""
    gen = torch.Generator(device="cpu").manual_seed(seed)
    return torch.randn(shape, generator=gen).to(device)


def sweep_rows_noise(seed: int | list[int] | None, b: int, k: int, latent_shape: tuple[int, ...]) -> torch.Tensor:
    """Noise [B, T, *latent] for a sweep: from one seed, one seed per image (a shard of a sweep
    then draws what the whole would), or torch's global generator (``None``)."""
    if isinstance(seed, (list, tuple)):
        if len(seed) != b:
            raise ValueError(f"{len(seed)} noise seeds for {b} images")
        return torch.stack([sweep_noise((k, *latent_shape), s) for s in seed])
    if seed is not None:
        return sweep_noise((b, k, *latent_shape), seed)
    return torch.randn(b, k, *latent_shape)


def _sweep_rows(latents: torch.Tensor, timesteps: torch.Tensor, noise: torch.Tensor):
    """(latent, t, noise) per (image, t) row, image-major: B*T rows."""
    b, k, lat_shape = latents.shape[0], timesteps.shape[0], tuple(latents.shape[1:])
    rows_lat = latents.detach().unsqueeze(1).expand(b, k, *lat_shape).reshape(b * k, *lat_shape)
    return rows_lat, timesteps.to(latents.device).repeat(b), noise.to(latents.device, latents.dtype).reshape(b * k, *lat_shape)


@torch.no_grad()
def unconditional_prediction(
    teacher: Teacher, images: torch.Tensor, uncond: TextEmbedding, timesteps, noise: torch.Tensor,
    max_batch: int | None = None,
) -> torch.Tensor:
    """The unconditional half of CFG [B, T, *latent] for a sweep's rows. It depends on the
    image, t and noise but not on the prompt: a sweep of P prompts over the same rows computes
    it once (``sds_gradient(uncond=...)``) and makes P + 1 teacher rows per (image, t), not 2P."""
    timesteps = torch.as_tensor(timesteps, dtype=torch.long).flatten()
    latents = teacher.encode(images.to(teacher.device))
    b, k = latents.shape[0], timesteps.shape[0]
    if tuple(noise.shape) != (b, k, *latents.shape[1:]):
        raise ValueError(f"noise has shape {tuple(noise.shape)}; the sweep needs {(b, k, *latents.shape[1:])}")
    if len(uncond) != 1:
        raise ValueError(f"give one unconditional embedding, not {len(uncond)}")
    rows_lat, rows_t, rows_noise = _sweep_rows(latents, timesteps, noise)
    z_t, _ = noised(teacher, rows_lat, rows_t, rows_noise)
    return predict_rows(teacher, z_t, rows_t, uncond.repeat_interleave(b * k), max_batch).reshape(noise.shape)


def sds_gradient(
    teacher: Teacher,
    images: torch.Tensor,
    cond: Conditioning,
    timesteps,
    *,
    guidance_scale: float,
    weighting: str = "sds",
    topk: int | None = None,
    noise: torch.Tensor | None = None,
    seed: int | list[int] | None = 0,
    image_gradient: bool = True,
    max_batch: int | None = None,
    uncond: torch.Tensor | None = None,
) -> SweepGradients:
    """SDS gradients for B images at each of T timesteps: B*T rows, batched teacher calls.

    ``cond`` holds one embedding (broadcast) or one per image. Noise is ``noise`` if given
    ([B, T, *latent]), else drawn from ``seed`` (fixed-noise mode: sweeps are reproducible;
    a list gives each image its own seed, so a shard of a sweep draws what the whole would),
    else from torch's global generator. ``uncond``: ``unconditional_prediction`` of the same
    images, timesteps and noise, shared by every prompt of a sweep.
    """
    timesteps = torch.as_tensor(timesteps, dtype=torch.long).flatten()
    b, k = images.shape[0], timesteps.shape[0]
    if len(cond) not in (1, b):
        raise ValueError(f"cond has {len(cond)} prompts for {b} images; give 1 or {b}")
    if uncond is not None and noise is None and seed is None:
        raise ValueError("a shared uncond prediction needs the noise it was made with: give noise or seed")
    images = images.to(teacher.device)
    with torch.enable_grad():
        x = images.detach().requires_grad_(image_gradient)
        latents = teacher.encode(x)
    lat_shape = tuple(latents.shape[1:])
    if noise is None:
        noise = sweep_rows_noise(seed, b, k, lat_shape)
    rows_lat, rows_t, rows_noise = _sweep_rows(latents, timesteps, noise)
    per_image = cond if len(cond) == b else Conditioning(cond.cond.repeat_interleave(b), cond.uncond.repeat_interleave(b))
    rows_emb = Conditioning(per_image.cond.repeat_interleave(k), per_image.uncond.repeat_interleave(k))
    grad = guided_gradient(
        teacher, rows_lat, rows_emb, rows_t, rows_noise, guidance_scale=guidance_scale, weighting=weighting,
        topk=topk, max_batch=max_batch, uncond=None if uncond is None else uncond.flatten(0, 1),
    ).reshape(b, k, *lat_shape)

    image_grad = None
    if image_gradient:
        if latents.data_ptr() == x.data_ptr() or not latents.requires_grad:  # identity encode: pixel space
            image_grad = grad.clone()
        else:
            parts = []
            for i in range(k):
                (g,) = torch.autograd.grad(latents, x, grad_outputs=grad[:, i], retain_graph=i < k - 1)
                parts.append(g)
            image_grad = torch.stack(parts, dim=1)
    return SweepGradients(timesteps, grad, image_grad)


def inject(latents: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    """Surrogate loss whose gradient w.r.t. ``latents`` is exactly ``grad`` (skip-Jacobian):
    backpropagating it trains whatever produced ``latents`` without a backward pass through
    the teacher's UNet. Its value is meaningless; log the guidance norm instead."""
    return (latents * grad.detach()).sum()
