"""The pseudo-anomaly classifier: OGNet's discriminator shape with a two-way head.

5x5 convs with stride 2 (w, 2w, 4w, 8w filters), BatchNorm on the inner layers, leaky ReLU, then a
linear layer to two outputs and a sigmoid: output 0 is P(abnormal), output 1 is P(normal), matching
the labels [1, 0] for pseudo-anomalies and [0, 1] for normal frames.
"""

from __future__ import annotations

from torch import Tensor, nn

from pseudovad.models.blocks import StridedCritic


class FrameClassifier(StridedCritic):
    """Classifies single frames (B, C, H, W) in [-1, 1]; returns (B, 2) probabilities."""

    def __init__(self, in_channels: int, height: int, width: int, base_width: int = 64) -> None:
        super().__init__(in_channels, height, width, base_width, outputs=2,
                         activation=lambda: nn.LeakyReLU(0.2, inplace=True), normalised=lambda i: i > 0)

    def forward(self, frames: Tensor) -> Tensor:
        return self.head_outputs(frames).sigmoid()
