"""Future Frame Prediction (Liu et al., CVPR 2018): one training step and the frame score.

The step follows the paper and avoids the defects of popular ports: the discriminator is updated
first, from its own loss alone; the generator is then updated with D frozen, so D's gradients never
mix with G's loss; the flow term keeps its graph so it really trains the generator.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from pseudovad.config import Config
from pseudovad.data.clips import ClipDataset
from pseudovad.errors import ConfigError
from pseudovad.evaluation.protocol import psnr
from pseudovad.losses import (
    directed_flow_loss,
    gradient_loss,
    intensity_loss,
    lsgan_discriminator_loss,
    lsgan_generator_loss,
)
from pseudovad.models.flow import HornSchunckFlow, MemoisedFlow, SpyNet
from pseudovad.models.patchgan import PatchDiscriminator
from pseudovad.models.unet import UNet


class NonFiniteLoss(RuntimeError):
    """A loss became NaN or Inf; the step was not applied."""

    def __init__(self, name: str, value: float) -> None:
        super().__init__(f"loss '{name}' is {value}")
        self.name = name


def build_flow_estimator(config: Config) -> MemoisedFlow:
    """The frozen flow network of the flow loss: Horn-Schunck (no weights), or SpyNet with the
    user's weights file; its flows between real frames are memoised up to `flow.memo_mb`."""
    if config.flow.estimator == "spynet":
        if not config.flow.weights:
            raise ConfigError("flow.estimator 'spynet' needs flow.weights: the path of a SpyNet state dict (.pytorch, .pth or .safetensors)")
        estimator = SpyNet(Path(config.flow.weights))
    else:
        flow = config.flow
        options = {"levels": flow.levels, "iterations": flow.iterations, "finest_iterations": flow.finest_iterations}
        if flow.alpha is not None:
            options["alpha"] = flow.alpha
        estimator = HornSchunckFlow(**options)
    return MemoisedFlow(estimator, config.flow.memo_mb)


def split_clip(clips: Tensor) -> tuple[Tensor, Tensor]:
    """(B, t+1, C, H, W) -> inputs stacked on channels (B, t*C, H, W) and the target (B, C, H, W)."""
    return clips[:, :-1].flatten(1, 2), clips[:, -1]


@contextmanager
def frozen(network: nn.Module) -> Iterator[None]:
    """Let gradients pass through `network` to its input without accumulating in its parameters
    (and, under DDP, without a gradient exchange for parameters that get no gradient)."""
    network.requires_grad_(False)
    try:
        with network.no_sync() if isinstance(network, DistributedDataParallel) else nullcontext():
            yield
    finally:
        network.requires_grad_(True)


def _check_finite(losses: dict[str, Tensor]) -> None:
    for name, value in losses.items():
        if not torch.isfinite(value):
            raise NonFiniteLoss(name, value.item())


class FFPPipeline:
    """A U-Net generator and a PatchGAN discriminator trained with FFP's four losses."""

    score_names = ("psnr",)
    swap_flow_inputs = False

    def __init__(self, config: Config, device: torch.device, dropout: float | None = None) -> None:
        channels, t = config.data.channels, config.data.clip_length
        self.config = config
        self.device = device
        g, d = config.generator, config.discriminator
        dropout = g.dropout if dropout is None else dropout
        self.generator = UNet(t * channels, channels, g.width, g.levels, g.norm, dropout).to(device)
        self.discriminator = PatchDiscriminator(channels, d.width, d.norm).to(device)
        if config.train.channels_last:
            self.generator.to(memory_format=torch.channels_last)
            self.discriminator.to(memory_format=torch.channels_last)
        self.flow = build_flow_estimator(config).to(device)
        self.optimizers = {
            "generator": torch.optim.Adam(self.generator.parameters(), lr=config.train.lr_generator),
            "discriminator": torch.optim.Adam(self.discriminator.parameters(), lr=config.train.lr_discriminator),
        }

    def autocast(self) -> torch.autocast:
        """bfloat16 autocast for the networks when `train.precision` is bf16, a no-op otherwise."""
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.config.train.precision == "bf16")

    def _layout(self, images: Tensor) -> Tensor:
        return images.contiguous(memory_format=torch.channels_last) if self.config.train.channels_last else images

    def run_generator(self, clips: Tensor) -> Tensor:
        """Predict the last frame of each clip from the others; float32 output whatever the precision."""
        with self.autocast():
            return self.generator(self._layout(split_clip(clips)[0])).float()

    def run_discriminator(self, frames: Tensor) -> Tensor:
        with self.autocast():
            return self.discriminator(self._layout(frames)).float()

    @property
    def networks(self) -> dict[str, nn.Module]:
        return {"generator": self.generator, "discriminator": self.discriminator}

    def distribute(self, wrap: Callable[[nn.Module], nn.Module]) -> None:
        """Wrap the trained networks for data-parallel training (see training/distributed.py)."""
        self.generator = wrap(self.generator)
        self.discriminator = wrap(self.discriminator)

    def term_weights(self) -> dict[str, float]:
        """The weight of each term of the generator's loss (a subclass may add or invert terms)."""
        weights = self.config.loss
        return {"intensity": weights.intensity, "gradient": weights.gradient, "flow": weights.flow, "adversarial": weights.adversarial}

    def make_batch(self, clips: ClipDataset, indices: np.ndarray) -> dict[str, Tensor]:
        """The tensors one training step needs (FFP: consecutive clips)."""
        return {"clips": clips.batch(indices)}

    def train_step(self, batch: dict[str, Tensor]) -> dict[str, float]:
        return self.update(batch["clips"])[0]

    def update(self, clips: Tensor) -> tuple[dict[str, float], Tensor]:
        """One D update then one G update on a batch of clips; returns the losses and the
        (detached) predictions, which other branches of a pipeline may reuse."""
        target = clips[:, -1]
        self.generator.train()
        self.discriminator.train()
        prediction = self.run_generator(clips)
        logged: dict[str, float] = {}
        weights = self.term_weights()

        if weights["adversarial"] > 0:
            d_loss = lsgan_discriminator_loss(self.run_discriminator(target), self.run_discriminator(prediction.detach()))
            _check_finite({"discriminator": d_loss})
            self.optimizers["discriminator"].zero_grad(set_to_none=True)
            d_loss.backward()
            self.optimizers["discriminator"].step()
            logged["discriminator"] = d_loss.item()

        terms = self.generator_terms(clips[:, -2], prediction, target)
        _check_finite(terms)
        total = sum(weights[name] * value for name, value in terms.items())
        self.optimizers["generator"].zero_grad(set_to_none=True)
        total.backward()
        self.optimizers["generator"].step()
        logged.update({name: value.item() for name, value in terms.items()})
        logged["generator"] = total.item()
        return logged, prediction.detach()

    def generator_terms(self, previous: Tensor, prediction: Tensor, target: Tensor) -> dict[str, Tensor]:
        """The terms of G's loss; the flow and adversarial terms are not computed at weight 0."""
        weights = self.term_weights()
        terms = {
            "intensity": intensity_loss(prediction, target),
            "gradient": gradient_loss(prediction, target),
        }
        if weights["flow"] != 0:
            terms["flow"] = directed_flow_loss(self.flow, previous, prediction, target, self.swap_flow_inputs)
        if weights["adversarial"] > 0:
            with frozen(self.discriminator):
                terms["adversarial"] = lsgan_generator_loss(self.run_discriminator(prediction))
        return terms

    @torch.inference_mode()
    def flow_error_image(self, clips: Tensor, frames: Tensor) -> Tensor:
        """|F(I_t, frames) - F(I_t, target)| as an image in [-1, 1] (2 px or more shows white)."""
        previous, target = clips[:, -2], clips[:, -1]
        error = (self.flow(previous, frames) - self.flow.reference(previous, target)).norm(dim=1, keepdim=True)
        return (error / 2).clamp(max=1) * 2 - 1

    def sample_images(self, clips: Tensor) -> dict[str, Tensor]:
        """Named image columns for TensorBoard and galleries."""
        prediction = self.predict(clips)
        return {
            "last input": clips[:, -2],
            "target": clips[:, -1],
            "prediction": prediction,
            "flow error": self.flow_error_image(clips, prediction).expand_as(prediction),
        }

    @torch.inference_mode()
    def predict(self, clips: Tensor) -> Tensor:
        self.generator.eval()
        return self.run_generator(clips)

    @torch.inference_mode()
    def score(self, clips: Tensor) -> dict[str, Tensor]:
        """Per-clip scores of the target frame, each oriented high = normal."""
        return {"psnr": psnr(self.predict(clips), clips[:, -1])}
