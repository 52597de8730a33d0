"""A DCGAN-style generator for branch A of the pseudo-anomaly pipeline (thesis section 4.4.1).

It replaces the U-Net with an encoder-decoder that has no skip connections: the clip is encoded
into one `bottleneck`-long vector and the frame is decoded from that vector alone. The thesis found
that such a generator loses the small foreground objects (the people), which is what the gallery
shows; the U-Net's skips are what carry them.
"""

from __future__ import annotations

from torch import Tensor, nn

from pseudovad.models.blocks import size_problem


class DCGANGenerator(nn.Module):
    """(B, in_channels, H, W) -> (B, out_channels, H, W) in [-1, 1] through a (B, bottleneck, 1, 1) code.

    Encoder: `levels` 4x4 stride-2 convs (w, 2w, ... channels), BN on all but the first, leaky ReLU,
    then one conv over the whole remaining map to the code. Decoder: the mirror image with
    transposed convs, BN and ReLU, tanh at the end. H and W must be divisible by 2**levels.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        height: int,
        width: int,
        base_width: int = 64,
        levels: int = 4,
        bottleneck: int = 100,
    ) -> None:
        super().__init__()
        divisor = 2**levels
        problem = size_problem(height, width, divisor, f"a DCGAN generator with {levels} levels", "generator.levels")
        if problem:
            raise ValueError(problem)
        smallest = (height // divisor, width // divisor)
        widths = [base_width * 2**i for i in range(levels)]

        encoder: list[nn.Module] = []
        previous = in_channels
        for i, w in enumerate(widths):
            encoder.append(nn.Conv2d(previous, w, 4, stride=2, padding=1, bias=i == 0))
            if i > 0:
                encoder.append(nn.BatchNorm2d(w))
            encoder.append(nn.LeakyReLU(0.2, inplace=True))
            previous = w
        encoder.append(nn.Conv2d(previous, bottleneck, smallest))

        decoder: list[nn.Module] = [
            nn.ConvTranspose2d(bottleneck, previous, smallest, bias=False),
            nn.BatchNorm2d(previous),
            nn.ReLU(inplace=True),
        ]
        for w in reversed(widths[:-1]):
            decoder += [nn.ConvTranspose2d(previous, w, 4, stride=2, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True)]
            previous = w
        decoder += [nn.ConvTranspose2d(previous, out_channels, 4, stride=2, padding=1), nn.Tanh()]

        self.encoder = nn.Sequential(*encoder)
        self.decoder = nn.Sequential(*decoder)

    def forward(self, frames: Tensor) -> Tensor:
        return self.decoder(self.encoder(frames))
