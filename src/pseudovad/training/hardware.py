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


def bf16_support(device: torch.device) -> tuple[bool, str]:
    """Whether `device` computes bf16 natively, and the evidence in words."""
    if device.type == "cuda":
        supported = torch.cuda.is_bf16_supported()
        return supported, f"{torch.cuda.get_device_name(device)} {'supports' if supported else 'lacks'} bf16"
    if device.type == "cpu":
        features = cpu_bf16_features()
        found = f"has {' and '.join(features)}" if features else "has neither AMX nor AVX512-BF16"
        return bool(features), f"{cpu_model()} {found}"
    return False, f"{device.type}: bf16 speed unknown"


def resolve_precision(requested: str, device: torch.device) -> tuple[str, str]:
    """The precision to run in ('bf16' or 'fp32') for `requested` ('auto', 'bf16', 'fp32'), and why."""
    if requested != "auto":
        return requested, "set in the config"
    native, evidence = bf16_support(device)
    return ("bf16", f"auto: {evidence}") if native else ("fp32", f"auto: {evidence}, so bf16 would be emulated")
