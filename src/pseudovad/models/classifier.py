"""The pseudo-anomaly classifier: OGNet's discriminator shape with a two-way head.

5x5 convs with stride 2 (w, 2w, 4w, 8w filters), BatchNorm on the inner layers, leaky ReLU, then a
linear layer to two outputs and a sigmoid: output 0 is P(abnormal), output 1 is P(normal), matching
the labels [1, 0] for pseudo-anomalies and [0, 1] for normal frames.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class FrameClassifier(nn.Module):
    """Classifies single frames (B, C, H, W) in [-1, 1]; returns (B, 2) probabilities."""

    def __init__(self, in_channels: int, height: int, width: int, base_width: int = 64) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = in_channels
        for i in range(4):
            out_channels = base_width * 2**i
            layers.append(nn.Conv2d(channels, out_channels, 5, stride=2, padding=2, bias=i == 0))
            if i > 0:
                layers.append(nn.BatchNorm2d(out_channels))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
            channels = out_channels
            height, width = (height + 1) // 2, (width + 1) // 2
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(channels * height * width, 2)

    def forward(self, frames: Tensor) -> Tensor:
        features = self.features(frames).flatten(1)
        # The head runs in float32 even under bf16 autocast: bf16 probabilities have ~3 significant
        # digits, which turns close scores into ties and flattens the ROC curve.
        with torch.autocast(frames.device.type, enabled=False):
            return self.head(features.float()).sigmoid()
