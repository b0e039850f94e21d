"""sds_gradient: batched over images x timesteps, equal to the reference's one-call-per-(image, t) loop."""

import pytest
import torch

from sdd.guidance import (
    guided_gradient,
    inject,
    sds_gradient,
    sparsify_topk,
    sweep_noise,
    timestep_weight,
    unconditional_prediction,
)
from sdd.teachers.base import Conditioning


def images(n, seed=0, size=32):
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def reference_loop(teacher, x, prompt, timesteps, noise, scale):
    """One teacher call per image per t, as the reference implementation does it."""
    cond = teacher.embed([prompt])
    out = torch.zeros(x.shape[0], len(timesteps), *x.shape[1:])
    for b in range(x.shape[0]):
        z0 = teacher.encode(x[b : b + 1])
        for i, t in enumerate(timesteps):
            a = teacher.alphas_cumprod[t]
            z_t = a.sqrt() * z0 + (1 - a).sqrt() * noise[b, i : i + 1]
            e_u = teacher.predict_noise(z_t, torch.tensor([t]), cond.uncond)
            e_c = teacher.predict_noise(z_t, torch.tensor([t]), cond.cond)
            out[b, i] = ((1 - a) * (e_u + scale * (e_c - e_u) - noise[b, i : i + 1]))[0]
    return out


def test_batched_sweep_equals_the_reference_loop(random_shapes_teacher):
    teacher = random_shapes_teacher
    x, ts = images(3), [50, 400, 900]
    noise = sweep_noise((3, 3, 3, 32, 32), seed=1)
    got = sds_gradient(teacher, x, teacher.embed(["a red object"]), ts, guidance_scale=3.0, noise=noise, max_batch=4)
    want = reference_loop(teacher, x, "a red object", ts, noise, 3.0)
    assert torch.allclose(got.latent, want, atol=1e-5)
    assert torch.equal(got.image, got.latent)  # pixel-space teacher: image gradient = latent gradient


def test_chunking_does_not_change_the_result(random_shapes_teacher):
    teacher = random_shapes_teacher
    kwargs = dict(guidance_scale=2.0, seed=3)
    a = sds_gradient(teacher, images(4), teacher.embed(["a red object"]), [100, 500], max_batch=2, **kwargs)
    b = sds_gradient(teacher, images(4), teacher.embed(["a red object"]), [100, 500], max_batch=1000, **kwargs)
    assert torch.allclose(a.latent, b.latent, atol=1e-5)


def test_fixed_noise_makes_sweeps_reproducible(random_shapes_teacher):
    teacher = random_shapes_teacher
    cond = teacher.embed(["a blue object"])
    a = sds_gradient(teacher, images(2), cond, [300], guidance_scale=3.0, seed=7)
    b = sds_gradient(teacher, images(2), cond, [300], guidance_scale=3.0, seed=7)
    c = sds_gradient(teacher, images(2), cond, [300], guidance_scale=3.0, seed=8)
    assert torch.equal(a.latent, b.latent) and not torch.equal(a.latent, c.latent)


def test_per_image_prompts_are_packed_in_one_call(random_shapes_teacher):
    teacher = random_shapes_teacher
    x = images(2)
    prompts = ["a red object", "a blue object"]
    packed = sds_gradient(teacher, x, teacher.embed(prompts), [200], guidance_scale=3.0, seed=0)
    noise = sweep_noise((2, 1, 3, 32, 32), seed=0)
    for b, p in enumerate(prompts):
        alone = sds_gradient(teacher, x[b : b + 1], teacher.embed([p]), [200], guidance_scale=3.0, noise=noise[b : b + 1])
        assert torch.allclose(packed.latent[b], alone.latent[0], atol=1e-5)


def test_weightings():
    ac = torch.linspace(0.99, 0.01, 1000)
    t = torch.tensor([0, 500, 999])
    assert torch.allclose(timestep_weight(ac, t, "sds"), 1 - ac[t])
    assert torch.equal(timestep_weight(ac, t, "uniform"), torch.ones(3))
    assert torch.allclose(timestep_weight(ac, t, "sqrt_a_one_minus_a"), ac[t].sqrt() * (1 - ac[t]))
    with pytest.raises(ValueError, match="unknown weighting"):
        timestep_weight(ac, t, "snr")


def test_topk_keeps_the_k_largest_entries_per_row():
    g = torch.randn(4, 3, 8, 8)
    s = sparsify_topk(g, 10)
    assert ((s != 0).flatten(1).sum(1) == 10).all()
    kept = s.flatten(1).abs()
    dropped = torch.where(s.flatten(1) == 0, g.flatten(1).abs(), torch.zeros(1))
    assert (kept.max(1).values >= dropped.max(1).values).all()
    assert (kept[kept > 0].min() >= 0) and kept.flatten(1).max(1).values.equal(g.flatten(1).abs().max(1).values)


def test_image_gradient_goes_through_the_vae(tiny_sd_checkpoint):
    from sdd.teachers import load_teacher

    teacher = load_teacher(str(tiny_sd_checkpoint))
    x = images(2, size=16)
    out = sds_gradient(teacher, x, teacher.embed(["a red car"]), [100, 700], guidance_scale=5.0, seed=0)
    assert out.latent.shape == (2, 2, 4, 8, 8) and out.image.shape == (2, 2, 3, 16, 16)
    for i in range(2):  # the vector-Jacobian product of encode, one t at a time
        xr = x.clone().requires_grad_(True)
        inject(teacher.encode(xr), out.latent[:, i]).backward()
        assert torch.allclose(out.image[:, i], xr.grad, atol=1e-5)


def test_inject_has_exactly_the_guidance_as_gradient():
    z = torch.randn(2, 3, 4, 4, requires_grad=True)
    g = torch.randn(2, 3, 4, 4)
    inject(z, g).backward()
    assert torch.equal(z.grad, g)


def test_shape_mismatch_is_a_clear_error(random_shapes_teacher):
    teacher = random_shapes_teacher
    cond = teacher.embed(["a red object"])
    with pytest.raises(ValueError, match="one embedding, t and noise per row"):
        guided_gradient(teacher, torch.zeros(2, 3, 32, 32), cond, torch.tensor([1, 2]), torch.zeros(2, 3, 32, 32),
                        guidance_scale=1.0)
    with pytest.raises(ValueError, match="3 prompts for 2 images"):
        sds_gradient(teacher, images(2), teacher.embed(["a", "a red object", "a blue object"]), [1], guidance_scale=1.0)


def test_classifier_estimator_is_the_guidance_term_alone(random_shapes_teacher):
    """classifier = sds minus its prior term: w * (eps_cfg - eps) - w * (eps_uncond - eps)."""
    teacher = random_shapes_teacher
    z, t = images(4), torch.tensor([100, 300, 500, 700])
    noise = sweep_noise(tuple(z.shape), seed=2)
    emb = teacher.embed(["a blue object"] * 4)
    kw = dict(guidance_scale=2.5, max_batch=8)
    sds = guided_gradient(teacher, z, emb, t, noise, **kw)
    classifier = guided_gradient(teacher, z, emb, t, noise, estimator="classifier", **kw)
    prior = guided_gradient(teacher, z, emb, t, noise, guidance_scale=0.0)  # w * (eps_uncond - eps)
    assert torch.allclose(classifier, sds - prior, atol=1e-5)
    assert not torch.allclose(classifier, sds)
    with pytest.raises(ValueError, match="unknown estimator"):
        guided_gradient(teacher, z, emb, t, noise, estimator="csd", **kw)


def test_dds_estimator_measures_the_edit_against_the_source(random_shapes_teacher):
    """dds = w * (eps_cfg(z_t) - eps_uncond(z_t(source))): an unedited row gets the classifier
    term exactly (the prior's terms cancel), an edited one also the prior's objection to the edit."""
    teacher = random_shapes_teacher
    z, t = images(4), torch.tensor([100, 300, 500, 700])
    noise = sweep_noise(tuple(z.shape), seed=2)
    emb = teacher.embed(["a blue object"] * 4)
    kw = dict(guidance_scale=2.5, max_batch=8)
    classifier = guided_gradient(teacher, z, emb, t, noise, estimator="classifier", **kw)
    unedited = guided_gradient(teacher, z, emb, t, noise, estimator="dds", source_latents=z, **kw)
    assert torch.allclose(unedited, classifier, atol=1e-5)
    edited = z.clone()
    edited[:, :, :8, :8] = 1.0
    dds = guided_gradient(teacher, edited, emb, t, noise, estimator="dds", source_latents=z, **kw)
    sds = guided_gradient(teacher, edited, emb, t, noise, **kw)
    source_prior = guided_gradient(teacher, z, emb, t, noise, guidance_scale=0.0)  # w * (eps_uncond(source) - eps)
    assert torch.allclose(dds, sds - source_prior, atol=1e-5)
    with pytest.raises(ValueError, match="source_latents"):
        guided_gradient(teacher, z, emb, t, noise, estimator="dds", **kw)
    with pytest.raises(ValueError, match="source_latents"):
        guided_gradient(teacher, z, emb, t, noise, source_latents=z, **kw)


def test_a_shared_unconditional_prediction_gives_the_same_gradient(random_shapes_teacher):
    teacher = random_shapes_teacher
    x, ts = images(3), [100, 600]
    noise = sweep_noise((3, 2, 3, 32, 32), seed=4)
    cond = teacher.embed(["a green object"])
    uncond = unconditional_prediction(teacher, x, cond.uncond[:1], ts, noise)
    shared = sds_gradient(teacher, x, cond, ts, guidance_scale=3.0, noise=noise, uncond=uncond)
    paired = sds_gradient(teacher, x, cond, ts, guidance_scale=3.0, noise=noise)
    assert torch.allclose(shared.image, paired.image, atol=1e-5)
    with pytest.raises(ValueError, match="uncond has shape"):
        sds_gradient(teacher, x, cond, ts, guidance_scale=3.0, noise=noise, uncond=uncond[:, :1])
    with pytest.raises(ValueError, match="needs the noise it was made with"):
        sds_gradient(teacher, x, cond, ts, guidance_scale=3.0, seed=None, uncond=uncond)
    with pytest.raises(ValueError, match="noise has shape"):
        unconditional_prediction(teacher, x, cond.uncond[:1], ts, noise[:, :1])
