"""Per-frame image measures shared by training, scoring and evaluation (the lowest layer: torch only)."""

from __future__ import annotations

import torch
from torch import Tensor


def psnr(prediction: Tensor, target: Tensor) -> Tensor:
    """Per-frame PSNR in dB of images in [-1, 1], computed on [0, 1] over the whole frame."""
    error = (((prediction.float() + 1) / 2 - (target.float() + 1) / 2) ** 2).flatten(1).mean(dim=1)
    return 10 * torch.log10(1.0 / error.clamp_min(1e-10))


def error_map(prediction: Tensor, target: Tensor) -> Tensor:
    """|prediction - target| averaged over channels, in [0, 1] intensity units: (B, H, W)."""
    return (prediction.float() - target.float()).abs().mean(dim=1).div(2)
