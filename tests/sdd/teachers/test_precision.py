"""Teacher dtypes on CPU: bfloat16 runs (and agrees with float32 where it matters), float16
is refused before anything loads, and casting stays quiet."""

import logging

import pytest
import torch

from sdd.config import ConfigError, parse_config
from sdd.domains.shapes.render import generate
from sdd.io.images import to_tensor_range
from sdd.preflight import check_ray_precision
from sdd.selection import indicator_sweep
from sdd.teachers import load_teacher
from sdd.teachers.precision import check_teacher_dtype


@pytest.fixture(scope="module")
def teachers():
    return load_teacher(None), load_teacher(None, dtype=torch.bfloat16)


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return torch.nn.functional.cosine_similarity(a.flatten(), b.flatten(), dim=0).item()


def test_bf16_shapes_teacher_predicts_what_float32_predicts(teachers):
    fp32, bf16 = teachers
    assert next(bf16.unet.parameters()).dtype == torch.bfloat16
    torch.manual_seed(0)
    z = torch.randn(4, 3, fp32.image_size, fp32.image_size)
    t = torch.tensor([100, 300, 500, 700])
    out32 = fp32.predict_noise(z, t, fp32.embed(["a red object"]).cond.repeat_interleave(4))
    out16 = bf16.predict_noise(z, t, bf16.embed(["a red object"]).cond.repeat_interleave(4))
    assert out16.dtype == torch.float32 and out16.shape == out32.shape  # callers keep their dtype
    assert cosine(out16, out32) > 0.99
    assert not torch.equal(out16, out32)  # it really ran in bfloat16


def test_bf16_cpu_teacher_attends_with_bmm_and_predicts_what_sdpa_predicts(teachers):
    """The bf16 CPU teacher's attention processor is a speed choice (teacher_roofline.py), not a
    change of model: both processors give the same predictions."""
    from diffusers.models.attention_processor import AttnProcessor, AttnProcessor2_0

    fp32, bf16 = teachers
    assert all(type(p) is AttnProcessor for p in bf16.unet.attn_processors.values())
    assert all(type(p) is AttnProcessor2_0 for p in fp32.unet.attn_processors.values())
    torch.manual_seed(1)
    z, t = torch.randn(4, 3, bf16.image_size, bf16.image_size), torch.tensor([100, 300, 500, 700])
    emb = bf16.embed(["a blue object"]).cond.repeat_interleave(4)
    classic = bf16.predict_noise(z, t, emb)
    bf16.unet.set_attn_processor(AttnProcessor2_0())
    try:
        sdpa = bf16.predict_noise(z, t, emb)
    finally:
        bf16.unet.set_attn_processor(AttnProcessor())
    assert cosine(classic, sdpa) > 0.999


def test_bf16_indicator_curve_selects_what_float32_selects(teachers):
    """What selection needs from the teacher: the same order of timesteps."""
    images = to_tensor_range(generate(4, seed=1).images)
    grid = list(range(100, 901, 100))
    curves = [indicator_sweep(teacher, images, "a red object", grid, draws=2).groupby("t")["hybrid"].mean()
              for teacher in teachers]
    fp32, bf16 = curves
    assert fp32.rank().corr(bf16.rank()) >= 0.9  # Spearman
    assert fp32.idxmin() == bf16.idxmin()
    assert (fp32 - bf16).abs().max() < 0.05


def test_bf16_stable_diffusion_keeps_the_vae_in_float32(tiny_sd_checkpoint):
    fp32 = load_teacher(str(tiny_sd_checkpoint))
    bf16 = load_teacher(str(tiny_sd_checkpoint), dtype=torch.bfloat16)
    assert next(bf16.unet.parameters()).dtype == torch.bfloat16
    assert next(bf16.vae.parameters()).dtype == torch.float32
    images = torch.rand(2, 3, bf16.image_size, bf16.image_size) * 2 - 1
    latents = bf16.encode(images)
    assert latents.dtype == torch.float32 and torch.allclose(latents, fp32.encode(images))
    t = torch.tensor([200, 600])
    out16 = bf16.predict_noise(latents, t, bf16.embed(["a red car"]).cond.repeat_interleave(2))
    out32 = fp32.predict_noise(latents, t, fp32.embed(["a red car"]).cond.repeat_interleave(2))
    assert out16.dtype == torch.float32 and torch.isfinite(out16).all()
    assert cosine(out16, out32) > 0.98


def test_casting_a_teacher_does_not_warn(caplog):
    """diffusers' ``.to(dtype)`` warns on every cast, which would print in every Ray worker."""
    diffusers_logger = logging.getLogger("diffusers")
    diffusers_logger.addHandler(caplog.handler)
    try:
        load_teacher(None, dtype=torch.bfloat16)
    finally:
        diffusers_logger.removeHandler(caplog.handler)
    assert not [r for r in caplog.records if "float32" in r.getMessage()]


def test_float16_on_cpu_is_refused_before_any_weights_load(tiny_sd_checkpoint):
    for source in (None, str(tiny_sd_checkpoint)):
        with pytest.raises(ValueError, match="float16 teachers need a GPU; on a CPU use bfloat16"):
            load_teacher(source, dtype=torch.float16)
    with pytest.raises(ValueError, match="not supported"):
        check_teacher_dtype(torch.float64, "cpu")
    check_teacher_dtype(torch.float16, "cuda")  # a GPU runs it


def test_bf16_without_native_support_warns(monkeypatch):
    monkeypatch.setattr("sdd.teachers.precision.cpu_has_native_bf16", lambda: False)
    with pytest.warns(RuntimeWarning, match="no native bfloat16"):
        check_teacher_dtype(torch.bfloat16, "cpu")


def test_float16_on_cpu_is_a_config_error():
    with pytest.raises(ConfigError, match="dtype float16 with device cpu"):
        parse_config({"dtype": "float16", "device": "cpu"})
    # Ray pipelines: device auto is the GPU a task was given; a stage asking for none runs on CPU
    with pytest.raises(ConfigError, match="select.resources.num_gpus and distill.resources.num_gpus are 0"):
        check_ray_precision(parse_config({"dtype": "float16"}))
    with pytest.raises(ConfigError, match="distill.resources.num_gpus is 0"):
        check_ray_precision(parse_config({"dtype": "float16", "select": {"resources": {"num_gpus": 0.5}}}))
    check_ray_precision(parse_config({"dtype": "float16", "select": {"resources": {"num_gpus": 0.5}},
                                      "distill": {"resources": {"num_gpus": 1}}}))
    check_ray_precision(parse_config({"dtype": "bfloat16"}))
