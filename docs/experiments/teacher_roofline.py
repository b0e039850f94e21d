"""Where the shapes teacher's time goes on this CPU, and why batching cannot reach 5x here.

    python docs/experiments/teacher_roofline.py [--threads 2] [--compile]

For float32 and bfloat16: the UNet's FLOPs per row (``torch.utils.flop_counter``), its ms
per row and GFLOP/s at 2 rows per call (the reference loop's CFG pair) and at 32 (this
project's CPU call size), the same for one 3x3 convolution at the UNet's widths (what the
arithmetic could run at), torch.profiler's share of attention and of group norm + SiLU, and
the 32-row call with SDPA's flash kernel and with diffusers' classic (bmm) attention (the
other rows use the teacher's own: classic for the bfloat16 CPU teacher, SDPA otherwise).
``--compile`` also times the 32-row call through ``torch.compile`` (inductor, freezing).
Figures go to docs/benchmarks.md ("The indicator sweep").
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from common import median_seconds  # noqa: E402

from sdd.teachers import load_teacher  # noqa: E402
from sdd.teachers.base import TextEmbedding  # noqa: E402

MEMORY_BOUND = {"group_norm_silu": ("aten::native_group_norm", "aten::silu"),
                "attention": ("aten::_scaled_dot_product_flash_attention_for_cpu",  # SDPA
                              "aten::baddbmm", "aten::bmm", "aten::_softmax")}  # classic


def seconds_per_call(fn, calls: int = 20) -> float:
    """Seconds per call: the benches' median of 5 rounds of ``calls`` calls, after a warm-up round."""
    with torch.inference_mode():
        return median_seconds(lambda: [fn() for _ in range(calls)], repeats=5, warmup=1) / calls


def unet_call(teacher, rows: int):
    emb = teacher.embed(["a red object"]).cond
    x = torch.randn(rows, *teacher.latent_shape)
    t = torch.full((rows,), 500)
    e = TextEmbedding(emb.hidden_states.expand(rows, -1, -1).contiguous(), emb.pooled.expand(rows, -1).contiguous())
    return lambda: teacher.predict_noise(x, t, e)


def conv_gflops(dtype: torch.dtype, channels: int, size: int, rows: int = 32) -> float:
    conv = torch.nn.Conv2d(channels, channels, 3, padding=1).to(dtype).to(memory_format=torch.channels_last)
    x = torch.randn(rows, channels, size, size, dtype=dtype).contiguous(memory_format=torch.channels_last)
    return 2 * rows * channels * channels * 9 * size * size / seconds_per_call(lambda: conv(x), 50) / 1e9


def op_shares(call) -> dict[str, float]:
    with torch.inference_mode(), profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(5):
            call()
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    return {name: round(100 * sum(e.self_cpu_time_total for e in events if e.key in keys) / total, 1)
            for name, keys in MEMORY_BOUND.items()}


def attention_seconds(teacher) -> dict[str, float]:
    """One 32-row call with SDPA's flash kernel and with diffusers' bmm-and-softmax attention
    (the bfloat16 CPU teacher's own), whichever the teacher was built with;
    its own processors are restored after."""
    from diffusers.models.attention_processor import AttnProcessor, AttnProcessor2_0

    own = teacher.unet.attn_processors
    out = {}
    try:
        for name, processor in (("sdpa", AttnProcessor2_0()), ("classic", AttnProcessor())):
            teacher.unet.set_attn_processor(processor)
            out[name] = seconds_per_call(unet_call(teacher, 32))
    finally:
        teacher.unet.set_attn_processor(own)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--compile", action="store_true", help="also time torch.compile (inductor, freezing) at 32 rows")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    for dtype in (torch.float32, torch.bfloat16):
        teacher = load_teacher(None, dtype=dtype)
        counter = FlopCounterMode(display=False)
        with torch.inference_mode(), counter:
            unet_call(teacher, 1)()
        gflop_per_row = counter.get_total_flops() / 1e9
        row = {"dtype": str(dtype).removeprefix("torch."), "gflop_per_row": round(gflop_per_row, 3)}
        for rows in (2, 32):
            s = seconds_per_call(unet_call(teacher, rows))
            row[f"ms_per_row_at_{rows}"] = round(1e3 * s / rows, 2)
            row[f"unet_gflops_at_{rows}"] = round(gflop_per_row * rows / s)
        row["conv3x3_gflops"] = [round(conv_gflops(dtype, c, hw)) for c, hw in ((32, 32), (64, 16), (64, 8))]
        row.update({f"share_%_{k}": v for k, v in op_shares(unet_call(teacher, 32)).items()})
        row.update({f"ms_per_row_at_32_{name}_attention": round(1e3 * s / 32, 2)
                    for name, s in attention_seconds(teacher).items()})
        if args.compile:
            import torch._inductor.config as inductor

            inductor.freezing = True
            eager = row["ms_per_row_at_32"]
            teacher.unet = torch.compile(teacher.unet)
            start = time.perf_counter()
            with torch.inference_mode():
                unet_call(teacher, 32)()
            row["compile_s"] = round(time.perf_counter() - start, 1)
            row["compiled_ms_per_row_at_32"] = round(1e3 * seconds_per_call(unet_call(teacher, 32)) / 32, 2)
            row["compile_speedup"] = round(eager / row["compiled_ms_per_row_at_32"], 2)
        print(row, flush=True)


if __name__ == "__main__":
    main()
