"""Stable Diffusion 1.x/2.x as a teacher: any diffusers checkpoint directory, local or remote.

Remote directories (``s3://``, ...) are copied once to a local cache and loaded from there.
Only safetensors weights are accepted (``use_safetensors=True``): nothing is unpickled.
The UNet and text encoder run in fp16/bf16 on a GPU if asked; the VAE stays in fp32 because
the guidance gradient flows back through its encoder and fp16 VAEs overflow on some inputs.
``v_prediction`` checkpoints (SD 2.x 768) are converted to epsilon so the contract holds.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch
from fsspec.implementations.local import LocalFileSystem
from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
from transformers import CLIPTextModel, CLIPTokenizer

from sdd.io.storage import filesystem, join

from .base import Teacher, TextEmbedding, as_unet_input, frozen
from .precision import check_teacher_dtype

SUBFOLDERS = ("unet", "vae", "text_encoder", "tokenizer", "scheduler")


def cache_root() -> Path:
    return Path(os.environ.get("SDD_CACHE", Path.home() / ".cache" / "sdd-ray"))


def local_checkpoint(source: str) -> Path:
    """A local directory holding the checkpoint: ``source`` itself, or a cached copy of it."""
    fs, path = filesystem(source)
    if isinstance(fs, LocalFileSystem):
        local = Path(path)
        if not (local / "model_index.json").is_file():
            raise FileNotFoundError(f"{source} is not a diffusers checkpoint directory (no model_index.json)")
        return local
    target = cache_root() / "checkpoints" / hashlib.sha256(source.encode()).hexdigest()[:16]
    done = target / ".complete"
    if not done.is_file():
        if not fs.exists(join(path, "model_index.json")):
            raise FileNotFoundError(f"{source} is not a diffusers checkpoint directory (no model_index.json)")
        target.mkdir(parents=True, exist_ok=True)
        fs.get(join(path, "model_index.json"), str(target / "model_index.json"))
        for sub in SUBFOLDERS:
            if fs.exists(join(path, sub)):
                fs.get(join(path, sub), str(target) + "/", recursive=True)
        done.write_text(source)
    return target


def weights_digest(directory: Path) -> str:
    """SHA-256 over the UNet's weights: the stable part of the teacher's id."""
    h = hashlib.sha256()
    for f in sorted((directory / "unet").glob("*.safetensors")):
        with f.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 24), b""):
                h.update(block)
    return h.hexdigest()


class StableDiffusionTeacher(Teacher):
    def __init__(self, unet, vae, text_encoder, tokenizer, scheduler_config: dict, teacher_id: str,
                 device: torch.device, dtype: torch.dtype):
        self.device, self.dtype = device, dtype
        self.unet = frozen(unet, device, dtype, channels_last=True)
        self.vae = frozen(vae, device, torch.float32)
        self.text_encoder = frozen(text_encoder, device, dtype)
        self.tokenizer = tokenizer
        self.id = teacher_id
        schedule = DDPMScheduler.from_config(scheduler_config)
        self.scheduler_config = dict(schedule.config)
        self.prediction_type = schedule.config.prediction_type
        self.num_train_timesteps = schedule.config.num_train_timesteps
        self.alphas_cumprod = schedule.alphas_cumprod.to(device, torch.float32)
        self.clip_sample = False
        self.vae_scale = 2 ** (len(vae.config.block_out_channels) - 1)
        self.scaling_factor = vae.config.scaling_factor
        self.image_size = unet.config.sample_size * self.vae_scale

    @classmethod
    def from_pretrained(cls, source: str, device: str | torch.device = "cpu", dtype: torch.dtype | None = None):
        device = torch.device(device)
        if dtype is None:
            dtype = torch.float16 if device.type == "cuda" else torch.float32
        check_teacher_dtype(dtype, device)
        local = local_checkpoint(source)
        load = {"use_safetensors": True}
        unet = UNet2DConditionModel.from_pretrained(local, subfolder="unet", **load)
        vae = AutoencoderKL.from_pretrained(local, subfolder="vae", **load)
        text_encoder = CLIPTextModel.from_pretrained(local / "text_encoder", **load)
        tokenizer = CLIPTokenizer.from_pretrained(local / "tokenizer")
        scheduler_config = DDPMScheduler.load_config(local, subfolder="scheduler")
        teacher_id = f"sd:{Path(source.rstrip('/')).name}@{weights_digest(local)[:12]}"
        return cls(unet, vae, text_encoder, tokenizer, scheduler_config, teacher_id, device, dtype)

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Images in [-1, 1] -> scaled VAE latents (the posterior mean: deterministic)."""
        return self.vae.encode(images.to(self.device, torch.float32)).latent_dist.mean * self.scaling_factor

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        return self.vae.decode(latents.to(torch.float32) / self.scaling_factor).sample

    @torch.no_grad()
    def _embed(self, prompts: list[str]) -> TextEmbedding:
        ids = self.tokenizer(
            prompts, padding="max_length", max_length=self.tokenizer.model_max_length,
            truncation=True, return_tensors="pt",
        ).input_ids.to(self.device)
        return TextEmbedding(self.text_encoder(ids)[0])

    @torch.no_grad()
    def predict_noise(self, z_t: torch.Tensor, t: torch.Tensor, emb: TextEmbedding) -> torch.Tensor:
        t = torch.as_tensor(t, device=self.device).expand(z_t.shape[0])
        out = self.unet(as_unet_input(z_t, self.dtype), t, encoder_hidden_states=emb.hidden_states.to(self.dtype)).sample
        out = out.to(z_t.dtype).contiguous()
        if self.prediction_type == "v_prediction":
            a = self.alphas_cumprod[t].view(-1, 1, 1, 1).to(z_t.dtype)
            out = a.sqrt() * out + (1 - a).sqrt() * z_t
        elif self.prediction_type != "epsilon":
            raise ValueError(f"unsupported prediction_type {self.prediction_type!r}")
        return out
