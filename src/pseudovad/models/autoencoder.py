"""A convolutional autoencoder in the style of MNAD (Park et al., CVPR 2020), without its memory.

Per level two 3x3 conv + BN + ReLU blocks and a 2x2 max-pool down; up, a 3x3 stride-2 transposed
conv + BN + ReLU and two more conv blocks. Unlike the FFP U-Net it has no skip connections:
everything the reconstruction holds went through the bottleneck, which is what makes its
reconstruction error an anomaly score (and what gradient ascent on its input can push up).
"""

from __future__ import annotations

from torch import Tensor, nn

from pseudovad.models.blocks import double_conv, size_problem


class ConvAutoencoder(nn.Module):
    """Reconstructs frames (B, C, H, W); `output` is `tanh` for inputs in [-1, 1], `sigmoid` for [0, 1]."""

    def __init__(self, channels: int, width: int = 64, levels: int = 4, output: str = "tanh") -> None:
        super().__init__()
        widths = [width * 2**i for i in range(levels)]
        encoder: list[nn.Module] = []
        previous = channels
        for i, w in enumerate(widths):
            if i > 0:
                encoder.append(nn.MaxPool2d(2))
            encoder.append(double_conv(previous, w, "batch", 0.0))
            previous = w
        decoder: list[nn.Module] = []
        for w in reversed(widths[:-1]):
            decoder += [
                nn.ConvTranspose2d(previous, w, 3, stride=2, padding=1, output_padding=1, bias=False),
                nn.BatchNorm2d(w),
                nn.ReLU(inplace=True),
                double_conv(w, w, "batch", 0.0),
            ]
            previous = w
        decoder += [nn.Conv2d(previous, channels, 3, padding=1), nn.Tanh() if output == "tanh" else nn.Sigmoid()]
        self.encoder = nn.Sequential(*encoder)
        self.decoder = nn.Sequential(*decoder)
        self.levels = levels

    def forward(self, frames: Tensor) -> Tensor:
        """H and W must be divisible by 2**(levels-1)."""
        problem = size_problem(*frames.shape[-2:], 2 ** (self.levels - 1), f"an autoencoder with {self.levels} levels", "autoencoder.levels")
        if problem:
            raise ValueError(problem)
        return self.decoder(self.encoder(frames))
