"""The distillation loop: deterministic, resumable, packed, with validated policies."""

import numpy as np
import pytest
import torch

from sdd.distill import DistillConfig, Distiller, learning_rate, policy_sampler
from sdd.domains.shapes.render import render, sample_labels
from sdd.io.images import to_tensor_range


def shapes_sources(rng, n):
    return to_tensor_range(render(rng, sample_labels(rng, n)).images)


def small_config(**kw):
    base = dict(prompts=["a red object"], timestep_policy="random:100,500", steps=3, batch_size=4,
                manipulator={"width": 16, "depth": 1}, seed=0)
    base.update(kw)
    return DistillConfig(**base)


def weights(d):
    return torch.cat([p.detach().flatten() for m in d.manipulators for p in m.parameters()])


def test_deterministic_under_a_seed(random_shapes_teacher):
    a = Distiller(random_shapes_teacher, shapes_sources, small_config())
    b = Distiller(random_shapes_teacher, shapes_sources, small_config())
    a.run(progress=False)
    b.run(progress=False)
    assert torch.equal(weights(a), weights(b))
    c = Distiller(random_shapes_teacher, shapes_sources, small_config(seed=1))
    c.run(progress=False)
    assert not torch.equal(weights(a), weights(c))


@pytest.mark.parametrize("lr_schedule", ["constant", "cosine"])
def test_resume_continues_exactly(random_shapes_teacher, lr_schedule):
    whole = Distiller(random_shapes_teacher, shapes_sources, small_config(steps=4, lr_schedule=lr_schedule))
    whole.run(progress=False)
    # the first half of a 4-step run, stopped (as a preempted trial is) after its second step
    first = Distiller(random_shapes_teacher, shapes_sources, small_config(steps=4, lr_schedule=lr_schedule))
    first.train_step()
    first.train_step()
    state = first.state_dict()
    resumed = Distiller(random_shapes_teacher, shapes_sources, small_config(steps=4, lr_schedule=lr_schedule))
    resumed.load_state_dict(state)
    assert resumed.step == 2
    resumed.run(progress=False)
    assert torch.allclose(weights(whole), weights(resumed), atol=1e-6)


def test_cosine_schedule_starts_at_lr_and_anneals_to_zero_at_the_last_step(random_shapes_teacher):
    cfg = small_config(steps=10, lr=1e-2, lr_schedule="cosine")
    rates = [learning_rate(cfg, s) for s in range(10)]
    assert rates[0] == pytest.approx(1e-2) and rates[5] == pytest.approx(5e-3)
    assert all(a > b for a, b in zip(rates, rates[1:])) and rates[-1] < 1e-3
    assert {learning_rate(small_config(steps=10), s) for s in range(10)} == {2e-3}
    d = Distiller(random_shapes_teacher, shapes_sources, small_config(steps=2, lr=1e-2, lr_schedule="cosine"))
    d.run(progress=False)
    assert d.optimizer.param_groups[0]["lr"] == pytest.approx(learning_rate(d.config, 1))  # the rate of its last step


def test_packing_trains_one_manipulator_per_prompt(random_shapes_teacher):
    d = Distiller(random_shapes_teacher, shapes_sources,
                  small_config(prompts=["a red object", "a blue object"], steps=2))
    seen = []
    d.run(callbacks=[lambda dist, step, metrics: seen.append(metrics)], progress=False)
    assert len(d.manipulators) == 2 and [m["step"] for m in seen] == [1, 2]
    assert set(seen[-1]["grad_norm"]) == {"a red object", "a blue object"}
    x = shapes_sources(np.random.default_rng(5), 2)
    outs = [m(x) for m in d.manipulators]
    assert not torch.equal(outs[0], x) and not torch.equal(outs[0], outs[1])


def test_a_packed_prompt_trains_as_it_would_alone(random_shapes_teacher):
    """With the same t and noise, a prompt's manipulator learns the same packed as alone: each
    gets its own guidance rows and its own loss, nothing of its pack-mates'. (A fixed t draws
    nothing from the step's generator, and the first B rows of the pack's noise are what one
    prompt alone draws.)"""
    def trained(prompts):
        d = Distiller(random_shapes_teacher, shapes_sources,
                      small_config(prompts=prompts, timestep_policy="fixed:300", steps=3, lr=1e-2))
        d.run(progress=False)
        return [torch.cat([p.detach().flatten() for p in m.parameters()]) for m in d.manipulators]

    (alone,) = trained(["a red object"])
    packed = trained(["a red object", "a blue object", "a white object"])
    assert not torch.allclose(packed[0], packed[1])
    torch.testing.assert_close(packed[0], alone, rtol=1e-4, atol=1e-5)


def test_timestep_policies():
    rng = np.random.default_rng(0)
    cfg = small_config(timestep_policy="selected", selected_timesteps={"a red object": [200, 300]}, batch_size=64)
    assert set(policy_sampler(cfg, 1000)(rng, 0, 0)) == {200, 300}
    assert set(policy_sampler(small_config(timestep_policy="fixed:400"), 1000)(rng, 0, 0)) == {400}
    t = policy_sampler(small_config(timestep_policy="random:100,120", batch_size=500), 1000)(rng, 0, 0)
    assert t.min() >= 100 and t.max() <= 120
    anneal = policy_sampler(small_config(timestep_policy="anneal:20,980", steps=100, batch_size=500), 1000)
    assert anneal(rng, 0, 0).max() > 900 and anneal(rng, 99, 0).max() <= 20


def test_selected_anneal_starts_each_prompt_at_its_own_largest_selected_t():
    rng = np.random.default_rng(0)
    cfg = small_config(prompts=["a red object", "a blue object"], timestep_policy="selected-anneal:200", steps=100,
                       batch_size=500, selected_timesteps={"a red object": [350, 400], "a blue object": [350, 600]})
    sample = policy_sampler(cfg, 1000)
    red, blue = sample(rng, 0, 0), sample(rng, 0, 1)
    assert red.min() >= 200 and 390 <= red.max() <= 400
    assert blue.min() >= 200 and 590 <= blue.max() <= 600
    assert set(sample(rng, 99, 0)) == {200} and set(sample(rng, 99, 1)) == {200}
    # a selection already under lo is held at lo
    low = small_config(timestep_policy="selected-anneal:200", selected_timesteps={"a red object": [100]})
    assert set(policy_sampler(low, 1000)(rng, 0, 0)) == {200}


@pytest.mark.parametrize("kw, message", [
    ({"timestep_policy": "selected"}, "needs selected timesteps"),
    ({"timestep_policy": "fixed:2000"}, "outside"),
    ({"timestep_policy": "random:5"}, "lo>,<hi"),
    ({"timestep_policy": "selected-anneal:200"}, "needs selected timesteps"),
    ({"timestep_policy": "selected-anneal:x", "selected_timesteps": {"a red object": [300]}}, "selected-anneal:<lo>"),
    ({"timestep_policy": "sometimes"}, "unknown timestep policy"),
    ({"prompts": []}, "at least one prompt"),
    ({"prompts": ["a", "a"]}, "duplicate"),
    ({"fidelity_loss": "huber"}, "fidelity_loss"),
    ({"lr_schedule": "step"}, "lr_schedule"),
    ({"guidance_norm": 0.0}, "guidance_norm"),
])
def test_bad_configs_fail_before_any_work(kw, message):
    with pytest.raises(ValueError, match=message):
        small_config(**kw)


def test_guidance_mask_is_high_where_the_guidance_is():
    from sdd.distill import guidance_mask

    grad = torch.zeros(2, 3, 16, 16)
    grad[0, :, 2:6, 2:6] = 1.0
    grad[1, :, 10:14, 8:12] = -3.0  # sign and scale do not matter, per row
    mask = guidance_mask(grad, (32, 32))
    assert mask.shape == (2, 1, 32, 32) and mask.min() >= 0 and torch.allclose(mask.flatten(1).amax(1), torch.ones(2))
    assert mask[0, 0, 8, 8] > 0.9 and mask[0, 0, 28, 28] == 0
    assert mask[1, 0, 24, 20] > 0.9 and mask[1, 0, 8, 8] == 0


def test_fidelity_mask_and_classifier_estimator_train(random_shapes_teacher):
    plain = Distiller(random_shapes_teacher, shapes_sources, small_config())
    masked = Distiller(random_shapes_teacher, shapes_sources,
                       small_config(fidelity_mask=True, estimator="classifier",
                                    manipulator={"architecture": "color_grid", "width": 16, "depth": 2}))
    plain.run(progress=False)
    history = masked.run(progress=False)
    assert len(history) == 3 and all(np.isfinite(h["fidelity_l2"]["a red object"]) for h in history)
    x = shapes_sources(np.random.default_rng(5), 2)
    assert not torch.equal(masked.manipulators[0](x), x)


def test_dds_estimator_trains_a_mask_blend_and_resumes_exactly(random_shapes_teacher, tmp_path):
    """The dds estimator needs the sources' latents in the teacher call; a run that stops and
    resumes lands on the same weights as one that does not."""
    cfg = small_config(estimator="dds", guidance_scale=7.5, manipulator={"architecture": "mask_blend", "width": 8, "levels": 2})
    whole = Distiller(random_shapes_teacher, shapes_sources, cfg)
    whole.run(progress=False)
    first = Distiller(random_shapes_teacher, shapes_sources, cfg)
    first.train_step()
    second = Distiller(random_shapes_teacher, shapes_sources, cfg)
    second.load_state_dict(first.state_dict())
    history = second.run(progress=False)
    assert len(history) == cfg.steps - 1
    for a, b in zip(whole.manipulators[0].state_dict().values(), second.manipulators[0].state_dict().values()):
        assert torch.allclose(a, b)
    x = shapes_sources(np.random.default_rng(5), 2)
    assert not torch.equal(whole.manipulators[0](x), x)


def test_guidance_norm_equalises_each_prompts_push_and_resumes_exactly(random_shapes_teacher):
    """With guidance_norm every prompt's gradient at the unedited sources has that mean norm,
    whatever its raw scale; the gains are recomputed, identically, by a resumed run."""
    prompts = ["a red object", "a circle"]
    raw = Distiller(random_shapes_teacher, shapes_sources, small_config(prompts=prompts))
    assert torch.equal(raw.guidance_gains(), torch.ones(2))
    cfg = small_config(prompts=prompts, guidance_norm=2.0)
    d = Distiller(random_shapes_teacher, shapes_sources, cfg)
    gains = d.guidance_gains()
    rng = np.random.default_rng([cfg.seed, 0x5DD])
    norms = d.raw_gradient_norms(rng)
    assert torch.allclose(gains * norms, torch.full((2,), 2.0), rtol=1e-5)
    loud = Distiller(random_shapes_teacher, shapes_sources, small_config(prompts=prompts, guidance_norm=2.0,
                                                                       guidance_scale=cfg.guidance_scale * 4))
    assert torch.allclose(loud.guidance_gains(), gains / 4, rtol=1e-4)  # the raw scale no longer matters
    history = d.run(progress=False)
    assert history[0]["guidance_gain"] == {p: pytest.approx(float(g)) for p, g in zip(prompts, gains)}
    first = Distiller(random_shapes_teacher, shapes_sources, cfg)
    first.train_step()
    resumed = Distiller(random_shapes_teacher, shapes_sources, cfg)
    resumed.load_state_dict(first.state_dict())
    resumed.run(progress=False)
    assert torch.allclose(weights(d), weights(resumed), atol=1e-6)


def test_salient_recolour_distils_and_never_moves_a_background_pixel(random_shapes_teacher):
    """The default manipulator under the real loss (a random teacher: any guidance at all):
    after training the objects have moved and every background pixel is the source's."""
    distiller = Distiller(random_shapes_teacher, shapes_sources,
                          small_config(estimator="classifier", guidance_scale=10, fidelity_loss="l1", fidelity_weight=0.1,
                                       manipulator={"architecture": "salient_recolour", "width": 16, "depth": 2}, steps=4))
    distiller.run(progress=False)
    rng = np.random.default_rng(5)
    batch = render(rng, sample_labels(rng, 8))
    x = to_tensor_range(batch.images)
    with torch.no_grad():
        y = distiller.manipulators[0](x)
    background = torch.from_numpy(batch.masks == 0)[:, None].expand_as(x)
    assert torch.equal(y[background], x[background])
    assert (y - x).abs()[~background].max() > 1e-3


def settle(guidance_potential, kind: str, steps: int) -> torch.Tensor:
    """Where an 8x8 image's per-pixel change comes to rest when the guidance climbs
    ``guidance_potential`` and the fidelity penalty ``kind`` (scale 0.25) pulls back."""
    from sdd.distill import fidelity_penalty

    delta = torch.zeros(1, 1, 8, 8, requires_grad=True)
    opt = torch.optim.SGD([delta], lr=1e-3)
    for _ in range(steps):
        opt.zero_grad()
        loss = -guidance_potential(delta) + fidelity_penalty(delta**2, kind, scale=0.25).sum()
        loss.backward()
        opt.step()
    return delta.detach()


def test_l1_fidelity_keeps_untouched_pixels_exactly_where_l2_lets_them_drift():
    """The sparsity argument for ``fidelity_loss="l1"``: a pull on every pixel that is weaker
    than the fidelity weight moves nothing under L1, but shifts every pixel under L2."""
    pull = torch.full((1, 1, 8, 8), 0.05)  # a weak tint asked of the background
    pull[..., :2, :2] = 5.0  # a strong push on the object
    moved = {kind: settle(lambda delta: (pull * delta).sum(), kind, 3000) for kind in ("l2", "l1")}
    assert moved["l1"][..., :2, :2].min() > 1.0 and moved["l2"][..., :2, :2].min() > 1.0
    assert moved["l2"][..., 4:, 4:].min() > 0.02
    assert moved["l1"][..., 4:, 4:].abs().max() < 1e-3


def test_robust_fidelity_lets_a_fading_push_finish_the_edit_and_still_pins_the_background():
    """Why ``fidelity_loss="robust"``: the guidance on an object fades as it nears the target
    colour (a push of 1.5 falling to 0 at a change of 2). L1 at weight 1 stops the edit where
    the push drops to the weight (a change of 2/3: half an edit); the robust pull fades too,
    so the edit gets most of the way. A weak pull on the background moves nothing under either."""
    def guidance_potential(delta):  # push 1.5 * (1 - delta / 2) on the object, 0.05 on the background
        obj = 1.5 * (delta[..., :2, :2] - delta[..., :2, :2] ** 2 / 4)
        return obj.sum() + 0.05 * delta[..., 4:, 4:].sum()

    moved = {kind: settle(guidance_potential, kind, 4000) for kind in ("l1", "robust")}
    assert moved["l1"][..., :2, :2].max() < 0.75
    assert moved["robust"][..., :2, :2].min() > 1.6
    for kind in moved:
        assert moved[kind][..., 4:, 4:].abs().max() < 1e-3, kind


def test_robust_fidelity_scale_is_validated():
    with pytest.raises(ValueError, match="fidelity_scale"):
        DistillConfig(prompts=["a red object"], timestep_policy="fixed:300", fidelity_loss="robust", fidelity_scale=0)


def test_lost_contrast_charges_a_recolour_that_stops_half_way_and_not_a_full_one():
    from sdd.distill import lost_contrast

    x = torch.full((1, 3, 8, 8), -0.7)  # a black background
    x[:, :, 2:6, 2:6] = torch.tensor([-0.7, -0.45, 0.75]).view(1, 3, 1, 1)  # a blue object
    full, half = x.clone(), x.clone()
    full[:, :, 2:6, 2:6] = torch.tensor([0.8, -0.75, -0.75]).view(1, 3, 1, 1)  # bright red
    half[:, :, 2:6, 2:6] = torch.tensor([0.0, -0.6, -0.75]).view(1, 3, 1, 1)  # dark red
    assert lost_contrast(x, x).item() == pytest.approx(0, abs=1e-6)
    assert lost_contrast(full, x).item() == pytest.approx(0, abs=1e-6)
    assert lost_contrast(half, x).item() > 0.05


def test_moved_scope_keeps_the_contrast_term_off_a_background_the_edit_left_alone():
    from sdd.distill import lost_contrast

    x = torch.full((1, 3, 8, 8), -0.2)  # a gray background
    x[:, :, 2:6, 2:6] = torch.tensor([0.8, 0.8, -0.75]).view(1, 3, 1, 1)  # a yellow object
    y = x.clone()
    y[:, :, 2:6, 2:6] = torch.tensor([-0.7, -0.6, 0.0]).view(1, 3, 1, 1)  # a dark blue one: contrast lost
    grads = {}
    for scope in ("all", "moved"):
        edited = y.clone().requires_grad_(True)
        value = lost_contrast(edited, x, scope)
        value.sum().backward()
        grads[scope] = edited.grad
        assert value.item() == pytest.approx(lost_contrast(y, x).item())  # same value in both scopes
    background = torch.ones(8, 8, dtype=torch.bool)
    background[2:6, 2:6] = False
    assert grads["all"][0][:, background].abs().max() > 1e-3  # "all" would move the background ...
    assert grads["moved"][0][:, background].abs().max() == 0  # ... "moved" does not
    assert grads["moved"][0][:, ~background].abs().max() > 1e-3  # and still pushes the object


def test_contrast_scope_is_validated():
    with pytest.raises(ValueError, match="contrast_scope"):
        DistillConfig(prompts=["a red object"], timestep_policy="fixed:300", contrast_scope="edges")
