"""Building blocks shared by several networks, and the frame-size rule of the encoder-decoders."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn


def double_conv(in_channels: int, out_channels: int, norm: str, dropout: float) -> nn.Sequential:
    """Two 3x3 convs, each with optional BatchNorm, ReLU and optional dropout (U-Net, autoencoder)."""
    layers: list[nn.Module] = []
    for channels_in in (in_channels, out_channels):
        layers.append(nn.Conv2d(channels_in, out_channels, 3, padding=1, bias=norm == "none"))
        if norm == "batch":
            layers.append(nn.BatchNorm2d(out_channels))
        layers.append(nn.ReLU(inplace=True))
        if dropout > 0:
            layers.append(nn.Dropout2d(dropout))
    return nn.Sequential(*layers)


def size_problem(height: int, width: int, divisor: int, network: str, key: str) -> str | None:
    """Why an encoder-decoder that halves `log2(divisor)` times cannot take (height, width), or None."""
    if height % divisor or width % divisor:
        return (f"{network} needs data.height and data.width divisible by {divisor} (set by {key}), "
                f"got {height}x{width}")
    return None


class StridedCritic(nn.Module):
    """Four 5x5 stride-2 convs (w, 2w, 4w, 8w) and a linear head: the shape of OGNet's discriminator,
    which the thesis's classifier reuses with two outputs.

    `normalised(i)` says whether conv i is followed by BatchNorm; a conv has a bias exactly where it
    has none. The head runs in float32 even under bf16 autocast: bf16 outputs have ~3 significant
    digits, which turns close scores into ties and flattens the ROC curve.
    """

    def __init__(self, channels: int, height: int, width: int, base_width: int, outputs: int,
                 activation: Callable[[], nn.Module], normalised: Callable[[int], bool]) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        previous = channels
        for i in range(4):
            out = base_width * 2**i
            layers.append(nn.Conv2d(previous, out, 5, stride=2, padding=2, bias=not normalised(i)))
            if normalised(i):
                layers.append(nn.BatchNorm2d(out))
            layers.append(activation())
            previous = out
            height, width = (height + 1) // 2, (width + 1) // 2
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(previous * height * width, outputs)

    def head_outputs(self, frames: Tensor) -> Tensor:
        """(B, C, H, W) in [-1, 1] -> (B, outputs) raw head outputs, float32."""
        features = self.features(frames).flatten(1)
        with torch.autocast(frames.device.type, enabled=False):
            return self.head(features.float())
