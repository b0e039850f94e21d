"""The SDD training loop: one manipulator per prompt, several prompts sharing each teacher call.

Per step, for source images x (the same batch for every prompt):

    y_k   = manipulator_k(x)                           k = 1..K prompts (packing)
    z_k   = teacher.encode(y_k)
    g_k   = SDS gradient of prompt k at t ~ timestep policy    (ONE teacher call for all k)
    loss  = mean(z_k * g_k)            skip-Jacobian injection: d loss / d z_k = g_k
          + fidelity_weight * rho(y_k - x)  (pixel fidelity to the source: rho = squared
                                             error, or Charbonnier |.| for ``fidelity_loss="l1"``;
                                             with fidelity_mask,
                                             each pixel weighted by 1 - m_k, m_k = the
                                             guidance magnitude map scaled to [0, 1])
          + latent_weight   * |z_k - E(x)|^2 (latent L2, for latent teachers)

Timestep policies live here, not in the manipulator or the teacher: ``selected`` (uniform
over each prompt's selected list), ``random:<lo>,<hi>``, ``fixed:<t>``, ``anneal`` /
``anneal:<lo>,<hi>`` (uniform over [lo, t_max] with t_max shrinking linearly from hi to lo),
``selected-anneal:<lo>`` (the same, per prompt, from the prompt's largest selected t down to
lo: the indicator picks where the edit starts, lower t then settle the colour
and hold the background).
Everything random is drawn from generators seeded by (seed, step): a run is deterministic,
and a resumed run continues exactly where it stopped.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Protocol

import numpy as np
import torch
import torch.nn.functional as F

from sdd.guidance import guided_gradient, inject
from sdd.io.tensor_state import load_module, module_tensors, optimizer_tensors, restore_optimizer
from sdd.manipulators import ImageManipulator, build
from sdd.teachers.base import Conditioning, Teacher


@dataclass
class DistillConfig:
    """The method's settings, and the one place its defaults are defined (the job config's
    ``distill`` section takes its defaults from here). The values are the recipe calibrated
    on the shapes world's recolour edits (docs/experiments/recolour_calibration.md)."""

    prompts: list[str]
    timestep_policy: str = "selected"
    selected_timesteps: dict[str, list[int]] = field(default_factory=dict)
    steps: int = 300
    batch_size: int = 32
    lr: float = 2e-3
    lr_schedule: str = "constant"  # or "cosine": decays to 0 at the last step (see learning_rate)
    guidance_scale: float = 10.0
    # None: every prompt's guidance at its raw scale. A number: each prompt's guidance is
    # scaled so that its mean per-image norm on the unedited sources equals it (see
    # Distiller.guidance_gains); the costs then weigh alike against every prompt's push.
    guidance_norm: float | None = None
    weighting: str = "sds"
    # the classifier term alone: full SDS also pulls toward the teacher's typical image, and
    # at low fidelity weights every edit collapsed to it
    estimator: str = "classifier"
    topk: int | None = None
    # L1 keeps edits sparse: pixels the prompt does not need stay exactly where they were.
    # 0.05, not 0.1: at 0.1 `a white object` edited ~90% on some seeds (red sources stopped
    # at pink); at 0.05 all six recolour prompts edit >= 98.8% on seeds 0 and 1 (docs/experiments/recolour_spread.md)
    fidelity_weight: float = 0.05
    fidelity_mask: bool = False
    fidelity_loss: str = "l1"
    fidelity_scale: float = 0.25  # only for fidelity_loss="robust": the change at which the pull halves
    latent_weight: float = 0.0
    contrast_weight: float = 0.0
    contrast_scope: str = "all"  # "moved": the term's gradient reaches pixels only as far as the edit moved it
    seed: int = 0
    manipulator: dict = field(default_factory=lambda: {"architecture": "salient_recolour"})
    max_batch: int | None = None  # rows per teacher call; None: sdd.batching.resolve_max_batch

    def __post_init__(self):
        if not self.prompts:
            raise ValueError("DistillConfig needs at least one prompt")
        if len(set(self.prompts)) != len(self.prompts):
            raise ValueError(f"duplicate prompts in {self.prompts}")
        policy_sampler(self, 1000)  # validates the policy string and the selected lists
        if self.fidelity_loss not in FIDELITY_LOSSES:
            raise ValueError(f"unknown fidelity_loss {self.fidelity_loss!r}; expected one of {FIDELITY_LOSSES}")
        if self.contrast_scope not in CONTRAST_SCOPES:
            raise ValueError(f"unknown contrast_scope {self.contrast_scope!r}; expected one of {CONTRAST_SCOPES}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"unknown lr_schedule {self.lr_schedule!r}; expected one of {LR_SCHEDULES}")
        if self.fidelity_scale <= 0:
            raise ValueError(f"fidelity_scale must be > 0, got {self.fidelity_scale}")
        if self.guidance_norm is not None and self.guidance_norm <= 0:
            raise ValueError(f"guidance_norm must be > 0 or None, got {self.guidance_norm}")


LR_SCHEDULES = ("constant", "cosine")


def learning_rate(config: DistillConfig, step: int) -> float:
    """The learning rate for optimizer step ``step`` (0-based).

    ``cosine`` anneals to zero at the last step, so the last noisy batches cannot move the
    manipulator far. Measured on the six recolour prompts, it did not narrow the
    run-to-run spread; the clamp fix did (docs/experiments/recolour_spread.md), so ``constant``
    stays the default. A function of the step alone: a resumed run continues on the same
    curve without extra state.
    """
    if config.lr_schedule == "cosine":
        return config.lr * 0.5 * (1 + math.cos(math.pi * step / max(config.steps, 1)))
    return config.lr


class SourceImages(Protocol):
    """Where training images come from: (rng, n) -> images in [-1, 1], [n, 3, H, W]."""

    def __call__(self, rng: np.random.Generator, n: int) -> torch.Tensor: ...


def _pair(text: str, name: str) -> tuple[int, int]:
    try:
        lo, hi = (int(v) for v in text.split(","))
    except ValueError:
        raise ValueError(f"timestep policy {name} needs '<lo>,<hi>', got {text!r}") from None
    if not 0 <= lo <= hi:
        raise ValueError(f"timestep policy {name}: need 0 <= lo <= hi, got {lo},{hi}")
    return lo, hi


def uses_selection(timestep_policy: str) -> bool:
    """Whether a timestep policy needs the indicator's selected timesteps (the select stage)."""
    return timestep_policy == "selected" or timestep_policy.startswith("selected-anneal:")


def policy_sampler(config: DistillConfig, num_train_timesteps: int) -> Callable[[np.random.Generator, int, int], np.ndarray]:
    """A function (rng, step, prompt index) -> timesteps for one prompt's batch."""
    policy, b, total = config.timestep_policy, config.batch_size, config.steps
    top = num_train_timesteps - 1

    def check(ts: list[int]) -> list[int]:
        bad = [t for t in ts if not 0 <= t <= top]
        if bad:
            raise ValueError(f"timesteps {bad} outside [0, {top}]")
        return ts

    def selected_lists() -> list[list[int]]:
        missing = [p for p in config.prompts if not config.selected_timesteps.get(p)]
        if missing:
            raise ValueError(f"timestep policy {policy!r} needs selected timesteps for {missing}")
        return [check(list(config.selected_timesteps[p])) for p in config.prompts]

    if policy == "selected":
        lists = [np.array(ts) for ts in selected_lists()]
        return lambda rng, step, k: rng.choice(lists[k], size=b)
    if policy.startswith("fixed:"):
        try:
            t = check([int(policy.split(":", 1)[1])])[0]
        except ValueError as exc:
            raise ValueError(f"bad timestep policy {policy!r}: {exc}") from None
        return lambda rng, step, k: np.full(b, t)
    if policy.startswith("random:"):
        lo, hi = _pair(policy.split(":", 1)[1], "random")
        check([lo, hi])
        return lambda rng, step, k: rng.integers(lo, hi + 1, size=b)
    if policy.startswith("selected-anneal:"):
        try:
            lo = check([int(policy.split(":", 1)[1])])[0]
        except ValueError as exc:
            raise ValueError(f"bad timestep policy {policy!r}: expected selected-anneal:<lo> ({exc})") from None
        starts = [max(lo, *ts) for ts in selected_lists()]

        def selected_anneal(rng, step, k):
            t_max = starts[k] - (starts[k] - lo) * step / max(1, total - 1)
            return rng.integers(lo, int(round(t_max)) + 1, size=b)

        return selected_anneal
    if policy == "anneal" or policy.startswith("anneal:"):
        lo, hi = _pair(policy.split(":", 1)[1], "anneal") if ":" in policy else (20, 980)
        check([lo, hi])

        def anneal(rng, step, k):
            t_max = hi - (hi - lo) * step / max(1, total - 1)
            return rng.integers(lo, int(round(t_max)) + 1, size=b)

        return anneal
    raise ValueError(
        f"unknown timestep policy {policy!r}; expected selected, selected-anneal:<lo>, fixed:<t>, random:<lo>,<hi> or anneal[:<lo>,<hi>]"
    )


FIDELITY_LOSSES = ("l2", "l1", "robust")
CONTRAST_SCOPES = ("all", "moved")
CHARBONNIER_EPS = 1e-3
CALIBRATION_STREAM = 0x5DD  # the guidance-gain batch's rng stream, apart from every training step's


def fidelity_penalty(squared: torch.Tensor, kind: str, scale: float = 0.25) -> torch.Tensor:
    """Per-pixel fidelity cost from the squared error.

    ``l2`` is the squared error itself: cheap for small changes everywhere, so under a
    global pull (a tint the guidance also asks of the background) it lets every pixel drift
    a little. ``l1`` (Charbonnier, sqrt(d^2 + eps^2) - eps, smooth at 0) charges a small
    change as much per unit as a large one; a pixel moves only where the guidance pushes
    harder than the fidelity weight, so the edit concentrates on the object and the
    background stays exactly where it was (the sparsity of an L1 penalty).

    ``robust`` is L1 that gives up on pixels the guidance has already moved far:
    s * log(1 + |d| / s) pulls back as hard as L1 at |d| = 0 and with 1 / (1 + |d| / s) of
    that force at |d|. L1 pulls an object's pixels back just as hard once they are recoloured
    as before, so an edit stops where the guidance weakens (a half-red object on a dark
    background); the robust pull fades, the edit completes, and the background, which the
    guidance barely moves, stays pinned as under L1.
    """
    if kind == "l2":
        return squared
    l1 = (squared + CHARBONNIER_EPS**2).sqrt() - CHARBONNIER_EPS
    if kind == "l1":
        return l1
    if kind == "robust":
        return scale * torch.log1p(l1 / scale)
    raise ValueError(f"unknown fidelity_loss {kind!r}; expected one of {FIDELITY_LOSSES}")


def guidance_mask(grad: torch.Tensor, size: tuple[int, int], blur: int = 5) -> torch.Tensor:
    """Where the guidance wants change, per row in [0, 1]: |g| averaged over channels,
    box-blurred (one gradient draw is noisy), resized to the image and divided by its max.
    Weighting the fidelity term by ``1 - mask`` frees the region being edited and pins the
    rest, so one fidelity weight can be strong enough to hold the background without also
    holding back the edit."""
    magnitude = grad.detach().abs().mean(1, keepdim=True).float()
    magnitude = F.avg_pool2d(magnitude, blur, stride=1, padding=blur // 2, count_include_pad=False)
    if magnitude.shape[-2:] != tuple(size):
        magnitude = F.interpolate(magnitude, size=tuple(size), mode="bilinear", align_corners=False)
    peak = magnitude.flatten(1).amax(1).clamp_min(1e-12).view(-1, 1, 1, 1)
    return magnitude / peak


def lost_contrast(y: torch.Tensor, x: torch.Tensor, scope: str = "all") -> torch.Tensor:
    """Per-row mean of how much edge contrast the edit took away: relu(|grad x| - |grad y|)
    over horizontal and vertical neighbour differences (colour vector norms). Zero for an edit
    that keeps or raises every edge's contrast (a blue object on black turned bright red);
    positive where a recolour stops half way (a dark, low-contrast red).

    ``scope="moved"`` lets the term's gradient reach each pixel in proportion to how far the
    edit moved it (|y - x| over its image's max, detached): the edited object is pushed to
    keep its edges, and a background the edit left alone is not moved to buy contrast back
    (what ``"all"`` does for a dark target colour). The value is the same in both scopes."""
    if scope == "moved":
        moved = (y - x).detach().abs().sum(1, keepdim=True)
        share = moved / moved.flatten(1).amax(1).clamp_min(1e-6).view(-1, 1, 1, 1)
        y = y.detach() + share * (y - y.detach())

    def edges(img):
        dx = (img[..., :, 1:] - img[..., :, :-1]).pow(2).sum(1).add(1e-8).sqrt()
        dy = (img[..., 1:, :] - img[..., :-1, :]).pow(2).sum(1).add(1e-8).sqrt()
        return dx, dy
    (xdx, xdy), (ydx, ydy) = edges(x), edges(y)
    return F.relu(xdx - ydx).flatten(1).mean(1) + F.relu(xdy - ydy).flatten(1).mean(1)


def edit_with_prior(manipulator: torch.nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(edited images, the manipulator's own per-row prior or None). An architecture whose
    parametrisation carries a prior (a mask's sparsity and smoothness) defines
    ``forward_with_penalty``; the loop adds it to the loss without knowing what it is."""
    if hasattr(manipulator, "forward_with_penalty"):
        return manipulator.forward_with_penalty(x)
    return manipulator(x), None


StepCallback = Callable[["Distiller", int, dict], None]


class Distiller:
    """Owns the manipulators, their optimizer and the step counter; ``run`` is the loop."""

    def __init__(self, teacher: Teacher, sources: SourceImages, config: DistillConfig,
                 manipulators: list[torch.nn.Module] | None = None):
        self.teacher, self.sources, self.config = teacher, sources, config
        torch.manual_seed(config.seed)
        spec = dict(config.manipulator)
        architecture = spec.pop("architecture", ImageManipulator.architecture)
        self.manipulators = manipulators or [build(architecture, **spec) for _ in config.prompts]
        for m in self.manipulators:
            m.to(teacher.device).train()
        params = [p for m in self.manipulators for p in m.parameters()]
        self.optimizer = torch.optim.Adam(params, lr=config.lr)
        self.sample_t = policy_sampler(config, teacher.num_train_timesteps)
        self.conditioning: Conditioning = teacher.embed(config.prompts)
        self.step = 0
        self.history: list[dict] = []
        self._gains: torch.Tensor | None = None

    def guidance_gains(self) -> torch.Tensor:
        """Per prompt, the factor its guidance gradient is multiplied by: 1 without
        ``guidance_norm``; else ``guidance_norm`` over the prompt's mean per-image gradient
        norm on unedited sources (one calibration batch, drawn from its own seeded stream
        and the prompt's timestep policy, so a resumed run computes the same gains).

        Why: the teacher pushes some attributes far harder than others (on the shapes
        teacher a background prompt's gradient is ~10x a size prompt's at the same t), and
        the fidelity and mask costs are absolute. Without it one set of costs either blocks
        the weak edits or lets the strong ones overrun the image."""
        if self._gains is None:
            cfg, k = self.config, len(self.manipulators)
            self._gains = torch.ones(k)
            if cfg.guidance_norm is not None:
                norms = self.raw_gradient_norms(np.random.default_rng([cfg.seed, CALIBRATION_STREAM]))
                self._gains = cfg.guidance_norm / norms.clamp_min(1e-12)
        return self._gains

    def raw_gradient_norms(self, rng: np.random.Generator) -> torch.Tensor:
        """Per prompt: mean per-image norm of the unscaled guidance gradient at the identity edit."""
        cfg, teacher, k = self.config, self.teacher, len(self.manipulators)
        x = self.sources(rng, cfg.batch_size).to(teacher.device)
        b = x.shape[0]
        with torch.no_grad():
            z = teacher.encode(x)
        grad, _ = self.raw_gradient(rng, 0, z.repeat(k, *[1] * (z.dim() - 1)), z)
        return grad.flatten(1).norm(dim=1).view(k, b).mean(1).float().cpu()

    def raw_gradient(self, rng: np.random.Generator, step: int, z_all: torch.Tensor,
                     z_src: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """(the unscaled guidance gradient, the timesteps it was taken at) for the edits' latents ``z_all`` [K*B, ...]
        (prompt-major): each prompt's timesteps for ``step``, then one noise draw, from
        ``rng`` in that order; ``z_src`` [B, ...] are the sources' latents (dds needs them)."""
        cfg, teacher, k = self.config, self.teacher, len(self.manipulators)
        b = z_all.shape[0] // k
        t = torch.from_numpy(np.concatenate([self.sample_t(rng, step, i) for i in range(k)])).long()
        gen = torch.Generator().manual_seed(int(rng.integers(2**62)))
        noise = torch.randn(z_all.shape, generator=gen).to(z_all.device, z_all.dtype)
        emb = Conditioning(self.conditioning.cond.repeat_interleave(b), self.conditioning.uncond.repeat_interleave(b))
        source = z_src.repeat(k, *[1] * (z_src.dim() - 1)) if cfg.estimator == "dds" else None
        return guided_gradient(teacher, z_all, emb, t.to(teacher.device), noise, guidance_scale=cfg.guidance_scale,
                               weighting=cfg.weighting, topk=cfg.topk, max_batch=cfg.max_batch,
                               estimator=cfg.estimator, source_latents=source), t

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Manipulators, optimizer moments and step as flat tensors (safetensors-ready)."""
        state = {}
        for k, m in enumerate(self.manipulators):
            state.update(module_tensors(m, f"m{k}."))
        state.update(optimizer_tensors(self.optimizer))
        state["step"] = torch.tensor(self.step)
        return state

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        for k, m in enumerate(self.manipulators):
            load_module(m, state, f"m{k}.")
        restore_optimizer(self.optimizer, state)
        self.step = int(state["step"])

    def train_step(self) -> dict:
        """One step for every prompt of the pack, in two phases. The teacher sees all K*B edits
        in shared calls (no autograd graph held); then each manipulator re-runs its edit with
        gradients and backpropagates its own loss, so one manipulator's graph is alive at a
        time and a pack's memory does not grow with K (the prompts' losses are separable).
        The price: each manipulator, and a latent teacher's encoder, runs forward twice."""
        cfg, teacher = self.config, self.teacher
        rng = np.random.default_rng([cfg.seed, self.step])
        x = self.sources(rng, cfg.batch_size).to(teacher.device)
        k, b = len(self.manipulators), cfg.batch_size
        with torch.no_grad():
            z_all = teacher.encode(torch.cat([m(x) for m in self.manipulators]))  # [K*B, ...], prompt-major
        z_src = None
        if cfg.latent_weight or cfg.estimator == "dds":
            with torch.no_grad():
                z_src = teacher.encode(x)
        grad, t = self.raw_gradient(rng, self.step, z_all, z_src)
        gains = self.guidance_gains()
        if cfg.guidance_norm is not None:
            grad = grad * gains.to(grad.device, grad.dtype).repeat_interleave(b).view(-1, *[1] * (grad.dim() - 1))
        latent_target = z_src if cfg.latent_weight else None
        self.optimizer.zero_grad(set_to_none=True)
        fidelity = []
        for i, m in enumerate(self.manipulators):
            fidelity.append(self.backward_one(m, x, grad[i * b:(i + 1) * b], latent_target))
        for group in self.optimizer.param_groups:
            group["lr"] = learning_rate(cfg, self.step)
        self.optimizer.step()
        self.step += 1
        per_prompt_grad = grad.flatten(1).norm(dim=1).view(k, -1).mean(1)
        return {
            "step": self.step,
            "grad_norm": {p: float(v) for p, v in zip(cfg.prompts, per_prompt_grad)},
            "fidelity_l2": {p: float(v) for p, v in zip(cfg.prompts, fidelity)},
            "mean_t": float(t.float().mean()),
            "guidance_gain": {p: float(v) for p, v in zip(cfg.prompts, gains)},
        }

    def backward_one(self, manipulator: torch.nn.Module, x: torch.Tensor, grad: torch.Tensor,
                     z_src: torch.Tensor | None) -> float:
        """Backpropagate one prompt's loss (guidance injected at its edits, plus the
        regularisers); returns its mean squared distance to the sources."""
        cfg, b = self.config, x.shape[0]
        y, prior = edit_with_prior(manipulator, x)
        z = self.teacher.encode(y)
        loss = inject(z, grad) / z[0].numel() / b
        squared = F.mse_loss(y, x, reduction="none")
        penalty = fidelity_penalty(squared, cfg.fidelity_loss, cfg.fidelity_scale)
        if cfg.fidelity_mask:
            penalty = penalty * (1 - guidance_mask(grad, y.shape[-2:]))
        loss = loss + cfg.fidelity_weight * penalty.flatten(1).mean(1).sum() / b
        if prior is not None:
            loss = loss + prior.sum() / b
        if cfg.contrast_weight:
            loss = loss + cfg.contrast_weight * lost_contrast(y, x, cfg.contrast_scope).sum() / b
        if z_src is not None:
            loss = loss + cfg.latent_weight * F.mse_loss(z, z_src, reduction="none").flatten(1).mean(1).sum() / b
        loss.backward()
        return float(squared.detach().mean())

    def run(self, callbacks: list[StepCallback] = (), progress: bool = True) -> list[dict]:
        """Train to ``config.steps`` (from wherever ``self.step`` is), calling each callback
        after every step with the step's metrics."""
        from tqdm import tqdm

        started = time.time()
        bar = tqdm(total=self.config.steps, initial=self.step, desc="distill", disable=not progress)
        while self.step < self.config.steps:
            metrics = self.train_step()
            metrics["seconds"] = time.time() - started
            self.history.append(metrics)
            for cb in callbacks:
                cb(self, self.step, metrics)
            bar.update()
            bar.set_postfix(fid=f"{np.mean(list(metrics['fidelity_l2'].values())):.4f}")
        bar.close()
        for m in self.manipulators:
            m.eval()
        return self.history

    def config_dict(self) -> dict:
        return asdict(self.config)
