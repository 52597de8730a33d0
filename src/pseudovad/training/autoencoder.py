"""The autoencoder baseline with gradient-ascent pseudo-anomalies (thesis section 4.3.1).

An MNAD-style autoencoder (no memory) reconstructs the last frame of each clip; its PSNR is the
score. A pseudo-anomaly is made from a normal frame by climbing the autoencoder's own reconstruction
error: k steps of size eta along the sign of d||AE(x) - x||^2 / dx, kept inside the input range.
It is a frame the autoencoder reconstructs badly yet close to a normal one. With
`autoencoder.pseudo_weight` > 0 the autoencoder also learns to reconstruct the normal frame from it
(bounded, no negative loss); otherwise the pseudo-anomalies are only shown in the samples.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from pseudovad.config import Config
from pseudovad.data.clips import ClipDataset
from pseudovad.losses import intensity_loss
from pseudovad.metrics import psnr
from pseudovad.models.autoencoder import ConvAutoencoder
from pseudovad.models.blocks import size_problem
from pseudovad.registry import PIPELINES
from pseudovad.training.base import Pipeline, Score


@PIPELINES.register("autoencoder")
class AutoencoderPipeline(Pipeline):
    """A frame autoencoder trained on normal frames, scored by the PSNR of its reconstruction
    (`train.precision` applies, `train.channels_last` does not)."""

    scores = (Score("psnr", "PSNR"),)
    sections = ("autoencoder",)
    network_names = ("autoencoder",)

    def __init__(self, config: Config, device: torch.device, training: bool = True) -> None:
        super().__init__(config, device, training)
        options = config.autoencoder
        self.zero_one = options.input_range == "zero_one"
        output = "sigmoid" if self.zero_one else "tanh"
        self.autoencoder = ConvAutoencoder(config.data.channels, options.width, options.levels, output).to(device)

    def make_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"autoencoder": torch.optim.Adam(self.autoencoder.parameters(), lr=self.config.train.lr_generator)}

    @classmethod
    def check_config(cls, config: Config) -> str | None:
        levels = config.autoencoder.levels
        return size_problem(config.data.height, config.data.width, 2 ** (levels - 1),
                            f"the autoencoder with {levels} levels", "autoencoder.levels")

    def to_input(self, frames: Tensor) -> Tensor:
        """Frames in [-1, 1] -> the autoencoder's input range."""
        return (frames + 1) / 2 if self.zero_one else frames

    def from_input(self, images: Tensor) -> Tensor:
        """The autoencoder's range -> [-1, 1] (for PSNR and galleries)."""
        return images * 2 - 1 if self.zero_one else images

    def reconstruct(self, images: Tensor) -> Tensor:
        with self.autocast():
            return self.autoencoder(images).float()

    def gradient_ascent(self, images: Tensor, steps: int | None = None) -> Tensor:
        """`images` (in the input range) after `steps` (default `autoencoder.ascent_steps`) steps of
        `ascent_step_size` up the sign of their reconstruction error's gradient, clamped to the
        range. The autoencoder runs in eval mode, so the perturbed frames leave its BatchNorm
        statistics alone, and its parameters get no gradient."""
        options = self.config.autoencoder
        steps = options.ascent_steps if steps is None else steps
        low = 0.0 if self.zero_one else -1.0
        self.autoencoder.eval()
        # Gradients are needed even when a caller (a gallery) runs under no_grad or inference_mode.
        with torch.inference_mode(False), torch.enable_grad():
            moved = images.clone()
            for _ in range(steps):
                moved.requires_grad_(True)
                error = intensity_loss(self.reconstruct(moved), moved)
                (gradient,) = torch.autograd.grad(error, moved)
                moved = (moved + options.ascent_step_size * gradient.sign()).clamp(low, 1.0).detach()
        return moved

    def make_batch(self, clips: ClipDataset, indices: np.ndarray, step: int) -> dict[str, Tensor]:
        return {"frames": clips.batch(indices)[:, -1]}

    def train_step(self, batch: dict[str, Tensor]) -> dict[str, float]:
        weight = self.config.autoencoder.pseudo_weight
        images = self.to_input(batch["frames"])
        pseudo = self.gradient_ascent(images) if weight > 0 else None
        self.autoencoder.train()
        terms = {"reconstruction": intensity_loss(self.reconstruct(images), images)}
        if pseudo is not None:
            terms["pseudo"] = intensity_loss(self.reconstruct(pseudo), images)
        total = terms["reconstruction"] + weight * terms.get("pseudo", 0.0)
        self.apply("autoencoder", total, terms)
        return {"autoencoder": total.item(), **{k: v.item() for k, v in terms.items()}}

    @torch.inference_mode()
    def predict(self, clips: Tensor) -> Tensor:
        """The reconstruction of each clip's last frame, in [-1, 1]."""
        self.autoencoder.eval()
        return self.from_input(self.reconstruct(self.to_input(clips[:, -1])))

    @torch.inference_mode()
    def score(self, clips: Tensor) -> dict[str, Tensor]:
        return {"psnr": psnr(self.predict(clips), clips[:, -1])}

    def sample_images(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """Input, reconstruction and gradient-ascent pseudo-anomaly, in [-1, 1]."""
        frames = batch["clips"][:, -1]
        return {
            "input": frames,
            "reconstruction": self.predict(batch["clips"]),
            "pseudo-anomaly": self.from_input(self.gradient_ascent(self.to_input(frames))),
        }
