"""Which dtypes a teacher may run in on a device, checked before any weights load.

float32 runs everywhere. bfloat16 runs on GPUs and on CPUs; on a CPU with native bf16
(AVX512-BF16 or AMX; oneDNN reports it) the teacher's convolutions and attention run faster
than in float32, elsewhere they are emulated and slower, which is worth a warning rather
than an error. float16 on a CPU is refused: oneDNN has no fast float16 path on most CPUs and
some diffusers ops have no CPU float16 kernel, so a job would crawl or fail mid-way.
"""

from __future__ import annotations

import warnings

import torch

CPU_FLOAT16_ERROR = "float16 teachers need a GPU; on a CPU use bfloat16 (fast where the CPU has native bf16) or float32"


def cpu_has_native_bf16() -> bool:
    """Whether oneDNN runs bfloat16 natively here (AVX512-BF16 or AMX), not emulated."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def check_teacher_dtype(dtype: torch.dtype, device: torch.device | str) -> None:
    """Raise on a dtype the device cannot run well; warn where it runs but slowly."""
    if dtype not in (torch.float32, torch.bfloat16, torch.float16):
        raise ValueError(f"teacher dtype {dtype} is not supported; use float32, bfloat16 or float16")
    if torch.device(device).type != "cpu":
        return
    if dtype == torch.float16:
        raise ValueError(CPU_FLOAT16_ERROR)
    if dtype == torch.bfloat16 and not cpu_has_native_bf16():
        warnings.warn("this CPU has no native bfloat16 (AVX512-BF16 or AMX): a bfloat16 teacher is emulated "
                      "and slower than float32 here", RuntimeWarning, stacklevel=3)


def dtype_name(dtype: torch.dtype) -> str:
    """``torch.bfloat16`` -> ``"bfloat16"``: the spelling configs, manifests and benches use."""
    return str(dtype).removeprefix("torch.")


def cast_module(module: torch.nn.Module, dtype: torch.dtype) -> torch.nn.Module:
    """``module`` in ``dtype``. A diffusers model's own ``.to(dtype)`` warns on every cast, in
    every Ray worker, even where no submodule must stay float32; this casts with torch's
    ``Module.to`` unless the model names modules to keep in float32 (then diffusers' cast)."""
    if getattr(module, "_keep_in_fp32_modules", None):
        return module.to(dtype)
    return torch.nn.Module.to(module, dtype)
