"""What the hardware offers, asked once: whether bfloat16 is fast here, and what the CPU is called.

`train.precision: auto` picks bf16 only where the hardware computes it natively: CUDA GPUs that
support it, CPUs with AMX or AVX512-BF16. Elsewhere bf16 autocast is emulated and can be slower than
fp32, so auto picks fp32. The choice goes into the run's train_summary.json with its reason.
"""

from __future__ import annotations

import platform
from pathlib import Path

import torch


def cpu_model() -> str:
    """The CPU's marketing name ("AMD EPYC ...", "Intel(R) Xeon(R) ..."), for every reported timing."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_bf16_features() -> list[str]:
    """The CPU's native bfloat16 instruction sets that PyTorch uses (AMX tiles, AVX512-BF16)."""
    checks = {"AMX": "_is_amx_tile_supported", "AVX512-BF16": "_is_avx512_bf16_supported"}
    return [name for name, check in checks.items() if getattr(torch.cpu, check, lambda: False)()]


def device_name(device: torch.device) -> str:
    """What computes on `device`, by name: the GPU's, else the CPU's (a run's numbers depend on it)."""
    return torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_model()


def bf16_support(device: torch.device) -> tuple[bool, str]:
    """Whether `device` computes bf16 natively, and the evidence in words."""
    if device.type == "cuda":
        supported = torch.cuda.is_bf16_supported()
        return supported, f"{device_name(device)} {'supports' if supported else 'lacks'} bf16"
    if device.type == "cpu":
        features = cpu_bf16_features()
        found = f"has {' and '.join(features)}" if features else "has neither AMX nor AVX512-BF16"
        return bool(features), f"{device_name(device)} {found}"
    return False, f"{device.type}: bf16 speed unknown"


def resolve_precision(requested: str, device: torch.device) -> tuple[str, str]:
    """The precision to run in ('bf16' or 'fp32') for `requested` ('auto', 'bf16', 'fp32'), and why."""
    if requested != "auto":
        return requested, "set in the config"
    native, evidence = bf16_support(device)
    return ("bf16", f"auto: {evidence}") if native else ("fp32", f"auto: {evidence}, so bf16 would be emulated")


CPU_PIXELS_PER_BATCH = 128 * 128 * 4
MOST_FRAMES_PER_BATCH = 16  # the former fixed default: 64 frames of 64 px were no faster, and a batch is a stream's delay
GPU_SCORING_BATCH = 32


def scoring_batch_size(requested: int | str, height: int, width: int, device: torch.device) -> int:
    """Frames per scoring call for eval.batch_size `requested` (a number, or `auto`) at this frame size.

    On a CPU, `auto` keeps a batch to CPU_PIXELS_PER_BATCH pixels (4 frames at 128 px, 16 at 64 px, 1 at
    256 px; at most 16 frames): on the AMD EPYC a batch of 16 scored ~20 % fewer frames per second than
    one of 4 at 128 px, and ~35 % fewer than one of 1 at 256 px, its activations no longer fitting the
    caches (docs/RESULTS.md). A GPU wants wide batches instead."""
    if requested != "auto":
        return int(requested)
    if device.type == "cuda":
        return GPU_SCORING_BATCH
    return max(1, min(MOST_FRAMES_PER_BATCH, CPU_PIXELS_PER_BATCH // (height * width)))
