"""Job configuration: pydantic models, validated once at the edge, before any work starts.

Every job (``sdd select/distill/eval``, and the Ray jobs in ``pipelines/``) reads the same
YAML schema, ``JobConfig``; the augment job reads ``AugmentConfig``. docs/config.md is their
reference (``sdd.config_reference``). Unknown keys are errors (a typo must not silently fall
back to a default); ``load_config`` turns validation failures into one readable message.
"""

from __future__ import annotations

from dataclasses import MISSING, fields
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from sdd.batching import DEFAULT_CALL_PIXELS
from sdd.distill import DistillConfig
from sdd.domains.shapes.edits import RECOLOUR_PROMPTS
from sdd.guidance import WEIGHTINGS

# the method's defaults live on sdd.distill.DistillConfig alone; the job config validates and
# overrides them, never restates them
RECIPE = {f.name: (f.default_factory() if f.default is MISSING else f.default)
          for f in fields(DistillConfig) if f.name != "prompts"}


class ConfigError(ValueError):
    """A configuration that cannot be run; the message says where and why."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TimestepGrid(Strict):
    """Every ``step``-th timestep from ``start`` to ``stop``, both included."""

    start: int = Field(100, ge=0)
    stop: int = Field(900, ge=0)
    step: int = Field(50, ge=1)

    @model_validator(mode="after")
    def ordered(self):
        if self.start > self.stop:
            raise ValueError(f"start ({self.start}) must not exceed stop ({self.stop})")
        return self

    def values(self) -> list[int]:
        return list(range(self.start, self.stop + 1, self.step))


def _check_weighting(v: str) -> str:
    if v not in WEIGHTINGS:
        raise ValueError(f"unknown weighting {v!r}; expected one of {WEIGHTINGS}")
    return v


class TaskResources(Strict):
    """Ray resources of one task/actor/worker; fractional GPUs let several share a device."""

    num_cpus: float = Field(1, ge=0, description="CPUs reserved, and the torch threads it runs")
    num_gpus: float = Field(0, ge=0, description="GPUs reserved (fractional: several share a device)")


class SelectSettings(Strict):
    timesteps: TimestepGrid | list[int] = Field(
        TimestepGrid(), description="the t grid: {start, stop, step} (both ends included) or an explicit list")
    images: int = Field(16, ge=1, description="sample images per prompt")
    draws: int = Field(4, ge=2, description="noise draws per image (consistency needs >= 2)")
    guidance_scale: float = Field(3.0, gt=0, description="classifier-free guidance of the indicator sweep")
    weighting: str = Field("sds", description=f"timestep weighting w(t): one of {', '.join(WEIGHTINGS)}")
    indicator: Literal["hybrid", "entropy", "reference_entropy"] = Field(
        "hybrid", description="gradient-map score (lower = better; see sdd.indicator)")
    policy: str = Field("window:2", description="argmin, below:<x>, topk:<k>, or window:<k> (k neighbouring t)")
    seed: int = Field(0, description="fixed-noise seed: sweeps are reproducible")
    max_batch: int | None = Field(None, ge=2, description="rows per teacher call (memory budget; default 32 on CPU, 512 on GPU)")
    shard_images: int = Field(8, ge=1, description="sample images per Ray task; each task takes a group of "
                              "prompts, as large as still fills the cluster (they share CFG's unconditional rows)")
    resources: TaskResources = Field(TaskResources(), description="each indicator task")

    _weighting = field_validator("weighting")(_check_weighting)

    @field_validator("policy")
    @classmethod
    def known_policy(cls, v: str) -> str:
        import pandas as pd

        from sdd.indicator import select

        select(pd.DataFrame({"t": [0], "x": [0.0]}), "x", v)  # raises a clear ValueError if malformed
        return v

    def grid(self) -> list[int]:
        return self.timesteps.values() if isinstance(self.timesteps, TimestepGrid) else sorted(self.timesteps)


class ManipulatorSettings(BaseModel):
    """An architecture name and its constructor's options (``sdd.manipulators``); an option
    the architecture does not take is an error here, before any work starts."""

    model_config = ConfigDict(extra="allow")
    architecture: str = Field(RECIPE["manipulator"]["architecture"],
                              description="a name in sdd.manipulators.ARCHITECTURES")

    @model_validator(mode="after")
    def options_match_architecture(self):
        import inspect

        from sdd.manipulators import ARCHITECTURES

        if self.architecture not in ARCHITECTURES:
            raise ValueError(f"unknown architecture {self.architecture!r}; expected one of {sorted(ARCHITECTURES)}")
        accepted = set(inspect.signature(ARCHITECTURES[self.architecture]).parameters)
        unknown = sorted(set(self.model_extra or {}) - accepted)
        if unknown:
            raise ValueError(f"the {self.architecture} architecture takes no option {', '.join(map(repr, unknown))}; "
                             f"it takes {sorted(accepted)}")
        return self

    def hparams(self) -> dict:
        """Constructor arguments for ``sdd.manipulators.build`` (unset options left to its defaults)."""
        return {"architecture": self.architecture, **(self.model_extra or {})}


class DistillSettings(Strict):
    """The ``distill`` section: every field of the method (``sdd.distill.DistillConfig``)
    with its default taken from there, plus how the job runs it on Ray (packing,
    checkpoints, concurrency, resources)."""

    timestep_policy: str = Field(
        RECIPE["timestep_policy"], description="selected, selected-anneal:<lo> (from each prompt's largest selected t "
                                               "down to lo), random:<lo>,<hi>, fixed:<t>, or anneal[:<lo>,<hi>]")
    steps: int = Field(RECIPE["steps"], ge=1, description="training steps per pack")
    batch_size: int = Field(RECIPE["batch_size"], ge=1, description="source images per step (shared by a pack)")
    lr: float = Field(RECIPE["lr"], gt=0, description="Adam learning rate")
    lr_schedule: Literal["constant", "cosine"] = Field(
        RECIPE["lr_schedule"], description="learning rate over the run: constant, or cosine decay to 0 at the last step")
    guidance_scale: float = Field(RECIPE["guidance_scale"], gt=0, description="guidance scale of the distillation gradient")
    guidance_norm: float | None = Field(
        RECIPE["guidance_norm"], gt=0,
        description="scale each prompt's guidance to this mean per-image norm on the unedited sources "
                    "(null: the raw scale; see sdd.distill.Distiller.guidance_gains)")
    weighting: str = Field(RECIPE["weighting"], description="timestep weighting w(t), as in select")
    estimator: Literal["sds", "classifier", "dds"] = Field(
        RECIPE["estimator"],
        description="guidance gradient: full SDS, its classifier term only, or delta denoising score against the source (see sdd.guidance)")
    topk: int | None = Field(RECIPE["topk"], ge=1, description="keep the k largest gradient entries per row "
                                                               "(the reference's sparsification); null keeps all")
    fidelity_weight: float = Field(RECIPE["fidelity_weight"], ge=0, description="weight of the pixel fidelity term")
    fidelity_mask: bool = Field(RECIPE["fidelity_mask"], description="weight the fidelity term by 1 - the guidance magnitude map")
    fidelity_loss: Literal["l2", "l1", "robust"] = Field(
        RECIPE["fidelity_loss"], description="per-pixel fidelity cost: squared error, Charbonnier L1 (sparse edits), or robust L1 "
                          "(L1 whose pull fades on pixels the edit has moved far; see sdd.distill.fidelity_penalty)")
    fidelity_scale: float = Field(RECIPE["fidelity_scale"], gt=0, description="robust fidelity: the change (images in [-1, 1]) at which its pull halves")
    latent_weight: float = Field(RECIPE["latent_weight"], ge=0, description="weight of the latent L2 to the source (latent teachers)")
    contrast_weight: float = Field(RECIPE["contrast_weight"], ge=0, description="penalise edge contrast the edit takes away (sdd.distill.lost_contrast)")
    contrast_scope: Literal["all", "moved"] = Field(
        RECIPE["contrast_scope"], description="pixels the contrast term may move: all, or each only as far as the edit moved it")
    seed: int = Field(RECIPE["seed"], description="everything random in training derives from it")
    manipulator: ManipulatorSettings = ManipulatorSettings(**RECIPE["manipulator"])
    pack: int = Field(3, ge=1, description="prompts trained together, sharing each teacher call")
    checkpoint_every: int = Field(100, ge=1, description="steps between Ray Train checkpoints")
    max_batch: int | None = Field(RECIPE["max_batch"], ge=2, description="rows per teacher call (default 32 on CPU, 512 on GPU)")
    max_concurrent_trials: int = Field(2, ge=1, description="Ray Tune trials (one per pack) running at once")
    max_failures: int = Field(2, ge=-1, description="Ray Train restarts from the latest checkpoint (-1: forever)")
    resources: TaskResources = Field(TaskResources(), description="each Ray Train worker")

    _weighting = field_validator("weighting")(_check_weighting)

    @field_validator("timestep_policy")
    @classmethod
    def known_timestep_policy(cls, v: str) -> str:
        DistillConfig(prompts=["p"], timestep_policy=v, selected_timesteps={"p": [1]})  # raises if malformed
        return v

    def recipe(self, prompts: list[str], selected_timesteps: dict[str, list[int]]) -> DistillConfig:
        """The method's config for these prompts: this section's values for every field
        DistillConfig has; the Ray-side fields stay here."""
        values = self.model_dump(include=set(RECIPE) - {"selected_timesteps", "manipulator"})
        return DistillConfig(prompts=prompts, selected_timesteps=selected_timesteps,
                             manipulator=self.manipulator.hparams(), **values)


class EvalSettings(Strict):
    images: int = Field(1000, ge=1, description="held-out images per prompt in the evaluation")
    seed: int = Field(10_000, description="seed of the held-out images")


class JobConfig(Strict):
    run_dir: str = Field("runs/default", description="run directory URL (local or s3://): selections, registry, "
                                                     "summary, plots, checkpoints")
    storage_path: str | None = Field(None, description="Ray Train/Tune storage (default: <run_dir>/ray)")
    teacher: str = Field("shapes", description="'shapes' or a diffusers checkpoint directory URL")
    device: str = Field("auto", description="'auto' (cuda when visible, else cpu), 'cpu', 'cuda', 'cuda:1', ...")
    dtype: Literal["float32", "float16", "bfloat16"] | None = Field(
        None, description="the teacher's UNet/text-encoder dtype (VAE stays float32); default float32 on CPU, "
                          "float16 for Stable Diffusion on GPU. bfloat16 also runs on CPUs, fastest with native "
                          "bf16 (AVX512-BF16 or AMX); float16 needs a GPU")
    prompts: list[str] = Field(default_factory=lambda: list(RECOLOUR_PROMPTS),
                               description="attribute prompts, one manipulator each")
    sources: str = Field("shapes", description="'shapes' (fresh procedural images) or a Parquet image dataset URL")
    image_column: str = Field("image", description="image column of a Parquet sources dataset")
    select: SelectSettings = SelectSettings()
    distill: DistillSettings = DistillSettings()
    eval: EvalSettings = EvalSettings()

    @model_validator(mode="after")
    def dtype_runs_on_device(self) -> "JobConfig":
        if self.dtype == "float16" and self.device == "cpu":
            from sdd.teachers.precision import CPU_FLOAT16_ERROR

            raise ValueError(f"dtype float16 with device cpu: {CPU_FLOAT16_ERROR}")
        return self

    @field_validator("prompts")
    @classmethod
    def non_empty_unique(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("at least one prompt is needed")
        dupes = sorted({p for p in v if v.count(p) > 1})
        if dupes:
            raise ValueError(f"duplicate prompts: {dupes}")
        if any(not p.strip() for p in v):
            raise ValueError("prompts must not be blank")
        return v


class AugmentConfig(Strict):
    """The augment job's config (``pipelines/augment.py``): which dataset, which
    manipulators, where the output goes, and how the edit actors run."""

    input: str = Field(description="Parquet file or directory URL")
    output: str = Field(description="output directory URL (data/, rejects/, manifest.json)")
    manipulators: list[str] = Field(min_length=1, description="artifact directories or registry/run URLs")
    image_column: str = Field("image", description="image column of the input")
    id_column: str = Field("id", description="row id column (the row's position when absent)")
    resize: str = Field("native", description="the size each image is edited at: native (its own, the default: "
                                              "labels that refer to its pixels stay valid), square:<N>, "
                                              "shorter_side:<N> or longer_side:<N>")
    call_pixels: int = Field(DEFAULT_CALL_PIXELS, ge=1,
                             description="pixels per manipulator call, and per slice of a block held decoded at once: "
                                         "memory is bounded by it, whatever the images' sizes")
    format: str = Field("png", description="output image format: png, jpeg or webp")
    quality: int = Field(95, ge=1, le=100, description="JPEG/WebP quality")
    max_pixels: int = Field(64_000_000, ge=1, description="images with more pixels are rejected (decompression bombs)")
    batch_size: int = Field(256, ge=1, description="rows per block: the input is split into blocks of this size, so "
                                                   "work streams and spreads over the cluster (the networks run in "
                                                   "the device's call size, sdd.batching)")
    rows_per_file: int = Field(4096, ge=1, description="output rows gathered per staged Parquet file (and checkpoint)")
    concurrency: int | None = Field(None, ge=1, description="edit actors (default: 1 on GPUs, one per "
                                                              "num_cpus cores of the cluster on CPUs)")
    resources: TaskResources = Field(TaskResources(), description="each edit actor")
    codecs_in_actor: bool | None = Field(None, description="decode and encode inside the edit actors (default: "
                                                           "on CPUs; with GPUs they run in CPU tasks)")
    judge: bool | None = Field(None, description="add judge columns (default: when the shapes judge applies)")

    @field_validator("resize")
    @classmethod
    def known_resize(cls, v: str) -> str:
        from sdd.io.resize import parse_resize

        parse_resize(v)
        return v

    @field_validator("format")
    @classmethod
    def known_format(cls, v: str) -> str:
        if v.lower() not in ("png", "jpeg", "jpg", "webp"):
            raise ValueError(f"unknown image format {v!r}; expected png, jpeg or webp")
        return v.lower()


def format_validation_error(exc: ValidationError, source: str) -> str:
    lines = [f"invalid config {source}:"]
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "(top level)"
        lines.append(f"  {where}: {err['msg']}")
    return "\n".join(lines)


def parse_config(data: dict | None, source: str = "<dict>") -> JobConfig:
    try:
        return JobConfig.model_validate(data or {})
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, source)) from None


def load_config(path: str | Path | None, **overrides) -> JobConfig:
    """Read a YAML file (or nothing: every default) and apply top-level overrides."""
    data: dict = {}
    if path is not None:
        from sdd.io.storage import filesystem

        fs, p = filesystem(str(path))
        try:
            with fs.open(p, "rb") as f:
                data = yaml.safe_load(f) or {}
        except FileNotFoundError:
            raise ConfigError(f"config file not found: {path}") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"config {path} is not valid YAML: {exc}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"config {path} must be a mapping at the top level, got {type(data).__name__}")
    data.update({k: v for k, v in overrides.items() if v is not None})
    return parse_config(data, str(path or "<defaults>"))
