"""A normalcy critic for clips (zxVAD / SSMTL style): fully convolutional, one logit per patch that the
clip is abnormal there; a clip is as abnormal as its most abnormal patch (the max), so a small
anomaly is not averaged away by a normal frame around it."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class PatchCritic(nn.Module):
    """Four 3x3 stride-2 convs (w, 2w, 4w, 4w; receptive field 31 px) and a 1x1 conv to one logit per patch."""

    def __init__(self, in_channels: int, width: int = 16) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        previous = in_channels
        for out in (width, 2 * width, 4 * width, 4 * width):
            layers += [nn.Conv2d(previous, out, 3, stride=2, padding=1), nn.LeakyReLU(0.2, inplace=True)]
            previous = out
        self.features = nn.Sequential(*layers)
        self.head = nn.Conv2d(previous, 1, 1)

    def forward(self, inputs: Tensor) -> Tensor:
        """(B, channels, H, W) -> (B,) the largest patch logit, in float32 (bf16 would tie close scores)."""
        features = self.features(inputs)
        with torch.autocast(inputs.device.type, enabled=False):
            return self.head(features.float()).flatten(1).amax(dim=1)
