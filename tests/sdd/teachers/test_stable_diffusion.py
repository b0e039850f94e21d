"""StableDiffusionTeacher on a tiny random checkpoint: loading, encode, embed, predict_noise."""

import json

import pytest
import torch
from diffusers import DDPMScheduler, StableDiffusionPipeline

from sdd.sampling import sample
from sdd.teachers import Teacher, load_teacher
from sdd.teachers.stable_diffusion import StableDiffusionTeacher


@pytest.fixture(scope="module")
def teacher(tiny_sd_checkpoint):
    return load_teacher(str(tiny_sd_checkpoint))


def test_checkpoint_is_a_real_diffusers_pipeline(tiny_sd_checkpoint):
    pipe = StableDiffusionPipeline.from_pretrained(tiny_sd_checkpoint, safety_checker=None, use_safetensors=True)
    assert pipe.unet.config.cross_attention_dim == 32


def test_contract_through_the_vae(teacher):
    assert isinstance(teacher, StableDiffusionTeacher) and isinstance(teacher, Teacher)
    assert teacher.id.startswith("sd:")
    assert teacher.image_size == 16 and teacher.num_train_timesteps == 1000
    images = (torch.rand(2, 3, 16, 16) * 2 - 1).requires_grad_(True)
    latents = teacher.encode(images)
    assert latents.shape == (2, 4, 8, 8)
    latents.sum().backward()  # differentiable: guidance flows back to the image
    assert images.grad is not None and images.grad.abs().sum() > 0
    assert teacher.decode(latents.detach()).shape == (2, 3, 16, 16)
    cond = teacher.embed(["a red car", "white hair"])
    assert cond.cond.hidden_states.shape == (2, 16, 32)
    assert not torch.equal(cond.cond.hidden_states[0], cond.uncond.hidden_states[0])
    eps = teacher.predict_noise(latents.detach(), torch.tensor([1, 999]), cond.cond)
    assert eps.shape == latents.shape and torch.isfinite(eps).all()


def test_sampler_runs_through_the_same_interface(teacher):
    out = sample(teacher, ["a red car"], guidance_scale=5.0, steps=3, seed=0, progress=False)
    assert out.shape == (1, 3, 16, 16) and out.abs().max() <= 1


def test_v_prediction_is_converted_to_epsilon(tmp_path):
    from tiny_sd import build_tiny_sd

    ckpt = build_tiny_sd(tmp_path / "v", prediction_type="v_prediction")
    teacher = load_teacher(str(ckpt))
    z = torch.randn(1, 4, 8, 8)
    t = torch.tensor([300])
    emb = teacher.embed(["x"]).cond
    v = teacher.unet(z, t, encoder_hidden_states=emb.hidden_states).sample
    a = teacher.alphas_cumprod[300]
    assert torch.allclose(teacher.predict_noise(z, t, emb), a.sqrt() * v + (1 - a).sqrt() * z, atol=1e-5)


def test_loads_from_s3_through_a_local_cache(tiny_sd_checkpoint, s3_bucket, tmp_path, monkeypatch):
    import s3fs

    fs = s3fs.S3FileSystem()
    fs.put(str(tiny_sd_checkpoint) + "/", f"{s3_bucket}/ckpt/", recursive=True)
    monkeypatch.setenv("SDD_CACHE", str(tmp_path / "cache"))
    teacher = load_teacher(f"{s3_bucket}/ckpt")
    local = load_teacher(str(tiny_sd_checkpoint))
    assert teacher.id.split("@")[1] == local.id.split("@")[1]
    assert any((tmp_path / "cache" / "checkpoints").iterdir())
    emb = teacher.embed(["abc"]).cond
    z = torch.randn(1, 4, 8, 8)
    assert torch.allclose(teacher.predict_noise(z, torch.tensor([5]), emb), local.predict_noise(z, torch.tensor([5]), emb))


def test_pickle_weights_are_refused(tmp_path):
    """A checkpoint with only a pickled .bin UNet does not load: safetensors or nothing."""
    from tiny_sd import build_tiny_sd

    ckpt = build_tiny_sd(tmp_path / "p")
    unet_dir = ckpt / "unet"
    (unet_dir / "diffusion_pytorch_model.safetensors").unlink()
    torch.save({}, unet_dir / "diffusion_pytorch_model.bin")
    with pytest.raises(OSError, match="safetensors"):
        load_teacher(str(ckpt))


def test_not_a_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no teacher at"):
        load_teacher(str(tmp_path))
