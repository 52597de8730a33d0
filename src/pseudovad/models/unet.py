"""The FFP generator: a U-Net that predicts frame t+1 from t frames stacked on channels.

Liu et al. (CVPR 2018): per level two 3x3 convs + ReLU, 2x2 max-pool down, 2x2 stride-2 transposed
conv up, skip concatenation, a final 3x3 conv and tanh (frames live in [-1, 1]). The original has no
normalisation; `norm="batch"` adds BatchNorm as popular ports do. `dropout` (after each conv) is used
by the pseudo-anomaly variants, which want a stochastic generator.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from pseudovad.models.blocks import double_conv, size_problem


class UNet(nn.Module):
    """U-Net generator with `levels` resolutions and `width * 2**i` channels at level i."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        width: int = 64,
        levels: int = 4,
        norm: str = "none",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        widths = [width * 2**i for i in range(levels)]
        self.down = nn.ModuleList()
        channels = in_channels
        for w in widths:
            self.down.append(double_conv(channels, w, norm, dropout))
            channels = w
        self.pool = nn.MaxPool2d(2)
        self.upsample = nn.ModuleList()
        self.up = nn.ModuleList()
        for w in reversed(widths[:-1]):
            self.upsample.append(nn.ConvTranspose2d(channels, w, kernel_size=2, stride=2))
            self.up.append(double_conv(2 * w, w, norm, dropout))
            channels = w
        self.head = nn.Conv2d(channels, out_channels, 3, padding=1)
        self.levels = levels

    def forward(self, frames: Tensor) -> Tensor:
        """frames: (B, t*C, H, W) in [-1, 1], H and W divisible by 2**(levels-1). Returns (B, C, H, W)."""
        problem = size_problem(*frames.shape[-2:], 2 ** (self.levels - 1), f"a U-Net with {self.levels} levels", "generator.levels")
        if problem:
            raise ValueError(problem)
        skips = []
        x = frames
        for i, block in enumerate(self.down):
            if i > 0:
                x = self.pool(x)
            x = block(x)
            skips.append(x)
        skips.pop()
        for upsample, block in zip(self.upsample, self.up):
            x = block(torch.cat([skips.pop(), upsample(x)], dim=1))
        return torch.tanh(self.head(x))
