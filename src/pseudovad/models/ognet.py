"""OGNet, "Old is Gold" (Zaheer et al., CVPR 2020): its generator, its discriminator and its
pseudo-anomaly module.

The generator is a denoising autoencoder of unpadded stride-1 5x5 convolutions, so a frame keeps
most of its resolution through the bottleneck (45x45 -> 29x29 in the paper's setting). The
discriminator judges single frames; after OGNet's second phase it is the anomaly detector itself.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from pseudovad.models.blocks import StridedCritic


class OGNetGenerator(nn.Module):
    """Encoder: 4 unpadded 5x5 convs (w, 2w, 4w, 8w) with BN + ReLU; decoder: the mirrored
    transposed convs, tanh. Any frame of at least 17x17 comes back at its own size, in [-1, 1]."""

    def __init__(self, channels: int, width: int = 64) -> None:
        super().__init__()
        widths = [width, 2 * width, 4 * width, 8 * width]
        encoder: list[nn.Module] = []
        previous = channels
        for w in widths:
            encoder += [nn.Conv2d(previous, w, 5, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True)]
            previous = w
        decoder: list[nn.Module] = []
        for w in reversed(widths[:-1]):
            decoder += [nn.ConvTranspose2d(previous, w, 5, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True)]
            previous = w
        decoder += [nn.ConvTranspose2d(previous, channels, 5), nn.Tanh()]
        self.encoder = nn.Sequential(*encoder)
        self.decoder = nn.Sequential(*decoder)

    def forward(self, frames: Tensor) -> Tensor:
        return self.decoder(self.encoder(frames))


class OGNetDiscriminator(StridedCritic):
    """4 5x5 stride-2 convs (w, 2w, 4w, 8w), BatchNorm after all but the last, ReLU, then a
    linear layer to one output and a sigmoid: P(the frame is good, i.e. normal and well formed)."""

    def __init__(self, channels: int, height: int, width: int, base_width: int = 64) -> None:
        super().__init__(channels, height, width, base_width, outputs=1,
                         activation=lambda: nn.ReLU(inplace=True), normalised=lambda i: i < 3)

    def logits(self, frames: Tensor) -> Tensor:
        """(B, C, H, W) in [-1, 1] -> (B,) logits, whose sigmoid is D's output. Losses and scores use
        them directly: the same order and the same BCE, without log(0) or saturated ties."""
        return self.head_outputs(frames).squeeze(1)

    def forward(self, frames: Tensor) -> Tensor:
        """(B, C, H, W) in [-1, 1] -> (B,) probabilities."""
        return self.logits(frames).sigmoid()


def mix_partners(batch_size: int, device: torch.device) -> Tensor:
    """Frame i is mixed with frame i+1 (the last with the first): batches are shuffled, so this is a
    random pairing that costs no random numbers (a resumed run pairs frames exactly as before)."""
    return torch.arange(batch_size, device=device).roll(-1)


@torch.no_grad()
def mixed_pseudo_anomalies(new: nn.Module, old_outputs: Tensor) -> tuple[Tensor, Tensor]:
    """OGNet's pseudo-anomalies G_new((G_old(x_i) + G_old(x_j)) / 2) from the old generator's
    outputs G_old(x), with j = partners[i]; returns them and `partners`.

    It takes G_old(x) rather than G_old because phase 2 needs those outputs as bad examples too.
    The caller sets the generators' mode (OGNet uses them frozen, in eval mode).
    """
    partners = mix_partners(old_outputs.shape[0], old_outputs.device)
    return new((old_outputs + old_outputs[partners]) / 2), partners
