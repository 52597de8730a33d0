"""Future Frame Prediction (Liu et al., CVPR 2018): a U-Net predicts frame t+1 from t frames, a
PatchGAN judges single frames, and the PSNR of the prediction is the score.

The step follows the paper and avoids the defects of popular ports: the discriminator is updated
first, from its own loss alone; the generator is then updated with D frozen, so D's gradients never
mix with G's loss; the flow term keeps its graph so it really trains the generator. What the
generator's loss holds is its objective's business (training/objectives.py): FFP's own four
losses, a thesis objective for a pseudo-anomaly generator, or learning not to predict pseudo-anomalies.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor, nn

from pseudovad.config import Config
from pseudovad.data.clips import ClipDataset
from pseudovad.errors import ConfigError, PseudovadError
from pseudovad.losses import directed_flow_loss, gradient_loss, intensity_loss, lsgan_discriminator_loss, lsgan_generator_loss
from pseudovad.metrics import psnr
from pseudovad.models.blocks import size_problem
from pseudovad.models.flow import HornSchunckFlow, MemoisedFlow, SpyNet
from pseudovad.models.patchgan import PatchDiscriminator
from pseudovad.models.unet import UNet
from pseudovad.registry import OBJECTIVES, PIPELINES
from pseudovad.training.base import CompiledForScoring, Fusion, Pipeline, Score, exportable, frozen

if TYPE_CHECKING:  # objectives.py imports this module's pipeline at run time
    from pseudovad.training.objectives import ObjectiveOptions


def build_flow_estimator(config: Config) -> MemoisedFlow:
    """The frozen flow network of the flow loss: Horn-Schunck (no weights), or SpyNet with the
    user's weights file; its flows between real frames are memoised up to `flow.memo_mb`."""
    flow = config.flow
    if flow.estimator == "spynet":
        if not flow.weights:
            raise ConfigError("flow.estimator 'spynet' needs flow.weights: the path of a SpyNet state dict (.pytorch, .pth or .safetensors)")
        estimator = SpyNet(Path(flow.weights))
    else:
        options = {"levels": flow.levels, "iterations": flow.iterations, "finest_iterations": flow.finest_iterations}
        if flow.alpha is not None:
            options["alpha"] = flow.alpha
        estimator = HornSchunckFlow(**options)
    return MemoisedFlow(estimator, flow.memo_mb)


def split_clip(clips: Tensor) -> tuple[Tensor, Tensor]:
    """(B, t+1, C, H, W) -> inputs stacked on channels (B, t*C, H, W) and the target (B, C, H, W)."""
    return clips[:, :-1].flatten(1, 2), clips[:, -1]


def unet_generator(config: Config, dropout: float) -> nn.Module:
    g, data = config.generator, config.data
    return UNet(data.clip_length * data.channels, data.channels, g.width, g.levels, g.norm, dropout)


class DeployedScores(nn.Module):
    """FFP's scores as one module: the PSNR of the generator's prediction of each clip's last frame,
    then the objective's own scores (the critic's P(normal)), as columns (B, k)."""

    def __init__(self, generator: nn.Module, extra: nn.Module | None) -> None:
        super().__init__()
        self.generator, self.extra = generator, extra

    def forward(self, clips: Tensor) -> Tensor:
        inputs, target = split_clip(clips)
        columns = [psnr(self.generator(inputs), target)]
        if self.extra is not None:
            columns.append(self.extra(clips))
        return torch.stack(columns, dim=1)


@PIPELINES.register("ffp")
class FFPPipeline(Pipeline):
    """A generator predicting the last frame of each clip and a PatchGAN discriminator, trained by an
    objective (`config.objective`, or the one given). `generator` replaces the U-Net (the thesis's
    DCGAN branch A); `critic_terms` adds terms that judge the prediction (the thesis's classifier)."""

    sections = ("generator", "discriminator", "flow", "loss", "objective")
    network_names = ("generator", "discriminator")

    def __init__(self, config: Config, device: torch.device, training: bool = True,
                 objective: ObjectiveOptions | None = None, generator: nn.Module | None = None) -> None:
        super().__init__(config, device, training)
        self.generator = (generator or unet_generator(config, config.generator.dropout)).to(device)
        self.discriminator = PatchDiscriminator(config.data.channels, config.discriminator.width, config.discriminator.norm).to(device)
        if config.train.channels_last:
            self.generator.to(memory_format=torch.channels_last)
            self.discriminator.to(memory_format=torch.channels_last)
        if config.train.compile and training:  # in place: state_dict keys stay those of the plain modules
            self.generator.compile()
            self.discriminator.compile()
        self.scoring_generator: CompiledForScoring | None = None  # set by compile_scoring
        self.flow = build_flow_estimator(config).to(device) if training else None
        options = objective if objective is not None else config.objective
        self.objective = OBJECTIVES.get(options.name)(options, self)
        self.critic_terms: Callable[[Tensor], dict[str, Tensor]] | None = None
        self.critic_weights: dict[str, float] = {}

    @classmethod
    def check_config(cls, config: Config) -> str | None:
        levels = config.generator.levels
        problem = size_problem(config.data.height, config.data.width, 2 ** (levels - 1),
                               f"the U-Net generator with {levels} levels", "generator.levels")
        options = config.objective
        return problem or OBJECTIVES.get(options.name).check_config(options, config)

    @property
    def scores(self) -> tuple[Score, ...]:
        return (Score("psnr", "PSNR"), *self.objective.extra_scores())

    def fused(self) -> Fusion | None:
        return self.objective.fusion()

    @property
    def networks(self) -> dict[str, nn.Module]:
        return {**super().networks, **{f"objective_{k}": v for k, v in self.objective.networks.items()}}

    def make_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        train = self.config.train
        return {
            "generator": torch.optim.Adam(self.generator.parameters(), lr=train.lr_generator),
            "discriminator": torch.optim.Adam(self.discriminator.parameters(), lr=train.lr_discriminator),
            **{f"objective_{k}": v for k, v in self.objective.make_optimizers().items()},
        }

    def distribute(self, wrap: Callable[[nn.Module], nn.Module]) -> None:
        self.generator = wrap(self.generator)
        self.discriminator = wrap(self.discriminator)
        self.objective.distribute(wrap)

    # --- the networks, in the configured precision and layout ------------------------------------------

    def run_generator(self, clips: Tensor, generator: Callable[[Tensor], Tensor] | None = None) -> Tensor:
        """Predict the last frame of each clip from the others; float32 output whatever the precision."""
        with self.autocast():
            return (self.generator if generator is None else generator)(self.layout(split_clip(clips)[0])).float()

    def run_discriminator(self, frames: Tensor) -> Tensor:
        with self.autocast():
            return self.discriminator(self.layout(frames)).float()

    # --- FFP's losses, for the objectives ------------------------------------------------------------------

    def lsgan_discriminator_loss(self, real: Tensor, prediction: Tensor) -> Tensor:
        return lsgan_discriminator_loss(self.run_discriminator(real), self.run_discriminator(prediction.detach()))

    def flow_error(self, previous: Tensor, prediction: Tensor, target: Tensor, swap: bool = False) -> Tensor:
        return directed_flow_loss(self.flow, previous, prediction, target, swap)

    def ffp_terms(self, previous: Tensor, prediction: Tensor, target: Tensor, weights: dict[str, float],
                  swap: bool = False) -> dict[str, Tensor]:
        """FFP's terms of G's loss; the flow and adversarial terms are not computed at weight 0."""
        terms = {"intensity": intensity_loss(prediction, target), "gradient": gradient_loss(prediction, target)}
        if weights["flow"] != 0:
            terms["flow"] = self.flow_error(previous, prediction, target, swap)
        if weights["adversarial"] > 0:
            with frozen(self.discriminator):
                terms["adversarial"] = lsgan_generator_loss(self.run_discriminator(prediction))
        return terms

    # --- training ---------------------------------------------------------------------------------------

    def make_batch(self, clips: ClipDataset, indices: np.ndarray, step: int) -> dict[str, Tensor]:
        return self.objective.make_batch(clips, indices, step)

    def train_step(self, batch: dict[str, Tensor]) -> dict[str, float]:
        return self.update(batch)[0]

    def update(self, batch: dict[str, Tensor]) -> tuple[dict[str, float], Tensor]:
        """One D update then one G update; returns the losses and the (detached) predictions, which
        other branches of a pipeline may reuse."""
        batch = self.objective.prepare(batch)
        self.generator.train()
        self.discriminator.train()
        prediction = self.run_generator(batch["clips"])
        logged: dict[str, float] = {}
        weights = {**self.objective.term_weights(), **self.critic_weights}
        if weights["adversarial"] > 0:
            d_loss = self.objective.discriminator_loss(batch, prediction)
            self.apply("discriminator", d_loss)
            logged["discriminator"] = d_loss.item()
        terms = self.objective.terms(batch, prediction)
        if self.critic_terms is not None:
            terms.update(self.critic_terms(prediction))
        total = sum(weights[name] * value for name, value in terms.items())
        self.apply("generator", total, terms)
        logged.update({name: value.item() for name, value in terms.items()})
        logged["generator"] = total.item()
        logged.update(self.objective.after_update(batch))
        return logged, prediction.detach()

    # --- scoring and pictures ----------------------------------------------------------------------------

    @torch.inference_mode()
    def flow_error_image(self, clips: Tensor, frames: Tensor) -> Tensor:
        """|F(I_t, frames) - F(I_t, target)| as an image in [-1, 1] (2 px or more shows white)."""
        previous, target = clips[:, -2], clips[:, -1]
        error = (self.flow(previous, frames) - self.flow.reference(previous, target)).norm(dim=1, keepdim=True)
        return (error / 2).clamp(max=1) * 2 - 1

    def sample_batch(self, clips: ClipDataset, indices: np.ndarray) -> dict[str, Tensor]:
        return self.objective.sample_batch(clips, indices)

    def sample_images(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        clips = batch["clips"]
        prediction = self.predict(clips)
        return {
            "last input": clips[:, -2],
            "target": clips[:, -1],
            "prediction": prediction,
            "flow error": self.flow_error_image(clips, prediction).expand_as(prediction),
            **self.objective.sample_images(batch),
        }

    @torch.inference_mode()
    def predict(self, clips: Tensor) -> Tensor:
        self.generator.eval()
        return self.run_generator(clips, self.scoring_generator)

    def compile_scoring(self) -> bool:
        if self.training:
            raise PseudovadError("compile_scoring needs a pipeline built for scoring (training=False): compiled weights are frozen")
        self.generator.eval()
        self.scoring_generator = CompiledForScoring(self.generator, self.eval_batch_size)
        data = self.config.data
        # Compile now rather than at the first real batch: a live camera's frames would queue meanwhile.
        self.predict(torch.zeros(1, data.clip_length + 1, data.channels, data.height, data.width, device=self.device))
        return True

    @torch.inference_mode()
    def score(self, clips: Tensor) -> dict[str, Tensor]:
        return {"psnr": psnr(self.predict(clips), clips[:, -1]), **self.objective.score(clips)}

    def deployed_scores(self) -> tuple[str, ...]:
        return tuple(score.name for score in self.scores)

    def scoring_network(self) -> nn.Module:
        return DeployedScores(exportable(self.generator), self.objective.scoring_network()).eval()
