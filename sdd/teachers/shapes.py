"""The bundled shapes teacher: a pixel-space diffusers UNet with a word-level text encoder.

The UNet sees the prompt twice: per-token states through cross-attention, and the pooled
prompt vector added to the timestep embedding (diffusers' ``class_embed_type="projection"``).
The pooled path is what makes global attributes (background, colour) follow the prompt
reliably at this model size; cross-attention alone at 8x8 left the background at ~50%.
"""

from __future__ import annotations

import hashlib
import json
from importlib import resources
from pathlib import Path

import torch
from diffusers import DDPMScheduler, UNet2DConditionModel
from diffusers.models.attention_processor import AttnProcessor
from safetensors.torch import load_file

from .base import Teacher, TextEmbedding, as_unet_input, frozen
from .precision import check_teacher_dtype
from .word_text_encoder import WordTextEncoder, WordTokenizer

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"


def default_weights_dir() -> Path:
    """Directory of the weights shipped inside the package."""
    return Path(str(resources.files("sdd.domains.shapes") / "weights" / "teacher"))


def build_modules(config: dict) -> tuple[UNet2DConditionModel, WordTextEncoder, WordTokenizer]:
    """Fresh (untrained) modules from a teacher config; training and loading share this."""
    text = config["text_encoder"]
    tokenizer = WordTokenizer(config["vocabulary"], text["max_length"])
    text_encoder = WordTextEncoder(
        len(tokenizer.tokens), text["max_length"], text["dim"], text["layers"], text["heads"]
    )
    unet = UNet2DConditionModel(
        **config["unet"],
        cross_attention_dim=text["dim"],
        class_embed_type="projection",
        projection_class_embeddings_input_dim=text["dim"],
    )
    return unet, text_encoder, tokenizer


def noise_schedule(config: dict) -> DDPMScheduler:
    s = config["schedule"]
    return DDPMScheduler(
        num_train_timesteps=s["num_train_timesteps"],
        beta_schedule=s["beta_schedule"],
        beta_start=s["beta_start"],
        beta_end=s["beta_end"],
        prediction_type="epsilon",
    )


class ShapesTeacher(Teacher):
    def __init__(
        self,
        unet: UNet2DConditionModel,
        text_encoder: WordTextEncoder,
        tokenizer: WordTokenizer,
        config: dict,
        teacher_id: str,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
    ):
        self.config = config
        self.id = teacher_id
        self.device = torch.device(device)
        self.dtype = dtype
        self.unet = frozen(unet, self.device, dtype, channels_last=True)
        if dtype == torch.bfloat16 and self.device.type == "cpu":
            # This UNet's attention is 16 heads of width 4 over 64 tokens: in bfloat16 on CPU,
            # diffusers' bmm-and-softmax processor beats SDPA's flash kernel (a 32-row call
            # 1.17-1.19x faster, docs/experiments/teacher_roofline.py); in float32 it is
            # slower, so float32 and GPUs keep SDPA.
            self.unet.set_attn_processor(AttnProcessor())
        self.text_encoder = frozen(text_encoder, self.device, dtype)
        self.tokenizer = tokenizer
        self.image_size = config["unet"]["sample_size"]
        schedule = noise_schedule(config)
        self.num_train_timesteps = schedule.config.num_train_timesteps
        self.alphas_cumprod = schedule.alphas_cumprod.to(self.device, torch.float32)
        self.scheduler_config = dict(schedule.config)
        self.clip_sample = True
        self.sampling_defaults = config.get("sampling", {"guidance_scale": 3.0, "steps": 50})

    @classmethod
    def from_pretrained(
        cls, path: str | Path | None = None, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32
    ) -> "ShapesTeacher":
        """Load from a weights directory (``config.json`` + ``model.safetensors``);
        the bundled weights when ``path`` is None."""
        check_teacher_dtype(dtype, device)
        path = Path(path) if path is not None else default_weights_dir()
        weights, config_file = path / WEIGHTS_FILE, path / CONFIG_FILE
        if not weights.is_file() or not config_file.is_file():
            raise FileNotFoundError(
                f"no shapes teacher at {path}: expected {WEIGHTS_FILE} and {CONFIG_FILE} "
                "(train one with `python -m sdd.domains.shapes.train_teacher`)"
            )
        config = json.loads(config_file.read_text())
        unet, text_encoder, tokenizer = build_modules(config)
        state = load_file(weights)
        unet.load_state_dict({k[5:]: v for k, v in state.items() if k.startswith("unet.")})
        text_encoder.load_state_dict({k[13:]: v for k, v in state.items() if k.startswith("text_encoder.")})
        digest = hashlib.sha256(weights.read_bytes()).hexdigest()
        return cls(unet, text_encoder, tokenizer, config, f"shapes-teacher@{digest[:12]}", device, dtype)

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        return images

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        return latents

    @torch.no_grad()
    def _embed(self, prompts: list[str]) -> TextEmbedding:
        ids = self.tokenizer(prompts).to(self.device)
        hidden, pooled = self.text_encoder(ids)
        return TextEmbedding(hidden, pooled)

    @torch.no_grad()
    def predict_noise(self, z_t: torch.Tensor, t: torch.Tensor, emb: TextEmbedding) -> torch.Tensor:
        t = torch.as_tensor(t, device=self.device).expand(z_t.shape[0])
        return self.unet(
            as_unet_input(z_t, self.dtype), t, encoder_hidden_states=emb.hidden_states, class_labels=emb.pooled
        ).sample.to(z_t.dtype).contiguous()
