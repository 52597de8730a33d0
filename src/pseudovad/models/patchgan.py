"""The FFP discriminator: pix2pix's PatchGAN, one real/fake logit per image patch.

4x4 convs with 2w, 4w, 8w, 8w filters (w=64 gives FFP's 128-256-512-512), strides 2, 2, 2, 1, leaky
ReLU, BatchNorm on the inner layers as in pix2pix, and a final 4x4 conv to one channel. The output is
left unsquashed because the LSGAN losses compare it with 0 and 1 directly.
"""

from __future__ import annotations

from torch import Tensor, nn


class PatchDiscriminator(nn.Module):
    """PatchGAN over single frames (B, C, H, W) in [-1, 1]; returns (B, 1, h, w) patch scores."""

    def __init__(self, in_channels: int, width: int = 64, norm: str = "batch") -> None:
        super().__init__()
        filters = [2 * width, 4 * width, 8 * width, 8 * width]
        strides = [2, 2, 2, 1]
        layers: list[nn.Module] = []
        channels = in_channels
        for i, (out_channels, stride) in enumerate(zip(filters, strides)):
            use_norm = norm == "batch" and i > 0
            layers.append(nn.Conv2d(channels, out_channels, 4, stride=stride, padding=1, bias=not use_norm))
            if use_norm:
                layers.append(nn.BatchNorm2d(out_channels))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
            channels = out_channels
        layers.append(nn.Conv2d(channels, 1, 4, stride=1, padding=1))
        self.net = nn.Sequential(*layers)

    def forward(self, frame: Tensor) -> Tensor:
        return self.net(frame)
