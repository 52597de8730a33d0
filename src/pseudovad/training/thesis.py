"""The thesis's pseudo-anomaly pipelines: a generator kept near, but out of, the normal data; a
classifier trained from scratch on its outputs against normal frames; PSNR and classifier fused.

- single-branch (the thesis as built): one generator, trained with a pseudo-anomaly objective,
  gives both the pseudo-anomalies and the PSNR score;
- two-branch (the thesis's proposed fix): branch B is a plain FFP predictor whose PSNR is the score,
  branch A generates pseudo-anomalies, and the classifier learns B's predictions and real frames
  (normal) against A's outputs (pseudo-anomalous). All trained jointly, one step each per batch.

Both are kept as a faithful reproduction (docs/RESULTS.md: they lose to FFP, as the thesis's did);
`learn_not_to_predict` (not_to_predict.py) is the design that makes pseudo-anomalies help. The
defects of the thesis's code are avoided by construction: the flow term keeps its graph (so
inverting it does something), the KL term is real, every network's optimiser steps, and every score
is oriented high = normal before fusion.

Two options swap a part for a baseline's, to compare them on equal terms: `pseudo.generator: dcgan`
makes branch A a DCGAN generator without skips (thesis 4.4.1), and `pseudo.source: ognet_mix`
replaces branch A with OGNet's pseudo-anomaly module: an OGNet generator and discriminator trained
on the clips' last frames exactly as in the `ognet` pipeline (its phase 2 only fine-tunes OGNet's
own discriminator, so `ognet.phase2_iterations: 0` skips it), whose mixtures
G_new((G_old(x_i) + G_old(x_j)) / 2) are the classifier's pseudo-anomalies. The classifier then
starts once G_old is taken, and its loss does not reach OGNet's generator.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor, nn

from pseudovad.config import Config
from pseudovad.data.clips import ClipDataset
from pseudovad.errors import ConfigError
from pseudovad.losses import classifier_loss
from pseudovad.metrics import psnr
from pseudovad.models.blocks import size_problem
from pseudovad.models.classifier import FrameClassifier
from pseudovad.models.dcgan import DCGANGenerator
from pseudovad.registry import OBJECTIVES, PIPELINES
from pseudovad.training.base import Fusion, Pipeline, Score, frozen
from pseudovad.training.ffp import FFPPipeline, unet_generator
from pseudovad.training.ognet import OGNetPipeline


def _branch_a_generator(config: Config) -> nn.Module:
    """Branch A's network: the FFP U-Net (with the pseudo section's dropout) or a DCGAN generator."""
    if config.pseudo.generator == "dcgan":
        data, g = config.data, config.generator
        return DCGANGenerator(data.clip_length * data.channels, data.channels, data.height, data.width,
                              g.width, g.levels, config.dcgan.bottleneck)
    return unet_generator(config, config.pseudo.dropout)


class ThesisPipeline(Pipeline):
    """Single- or two-branch (`two_branches`); see the module docstring."""

    two_branches = False
    scores = (
        Score("psnr", "PSNR"),
        Score("classifier", "classifier P(normal)", probability=True),
        Score("classifier_abnormal", "classifier 1 - P(abnormal)", probability=True),
    )
    sections = (*FFPPipeline.sections, "pseudo", "classifier", "dcgan", "ognet")

    def __init__(self, config: Config, device: torch.device, training: bool = True) -> None:
        super().__init__(config, device, training)
        data = config.data
        self.classifier = FrameClassifier(data.channels, data.height, data.width, config.classifier.width).to(device)
        if config.train.channels_last:
            self.classifier.to(memory_format=torch.channels_last)
        self.pseudo, self.ognet = None, None
        if config.pseudo.source == "ognet_mix":
            self.ognet = OGNetPipeline(config, device, training)
        else:
            self.pseudo = FFPPipeline(config, device, training, objective=config.pseudo.objective,
                                      generator=_branch_a_generator(config))
            self.pseudo.critic_terms = self._classifier_term
            self.pseudo.critic_weights = {"classifier": config.classifier.generator_weight}
        self.normal = FFPPipeline(config, device, training) if self.two_branches else None
        if self.normal and self.pseudo:
            self.normal.flow = self.pseudo.flow  # one estimator, one memo of the real frames' flows

    def make_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        options = self.config.classifier
        optimizers = {"classifier": torch.optim.SGD(self.classifier.parameters(), lr=options.lr, momentum=options.momentum)}
        for prefix, branch in self._branches():  # the branches' own: their train steps apply them
            optimizers.update({f"{prefix}_{name}": opt for name, opt in branch.optimizers.items()})
        return optimizers

    @classmethod
    def check_config(cls, config: Config) -> str | None:
        pseudo = config.pseudo
        if pseudo.source == "ognet_mix":
            if not cls.two_branches:
                return "pseudo.source=ognet_mix needs pipeline two_branch: OGNet's generator predicts no frame to score"
            if config.ognet.patches:
                return "ognet.patches applies to pipeline ognet only: pseudo.source=ognet_mix mixes whole frames; set it to 0"
            return OGNetPipeline.check_config(config) or FFPPipeline.check_config(config)
        if pseudo.generator == "dcgan":
            levels = config.generator.levels
            problem = size_problem(config.data.height, config.data.width, 2**levels,
                                   f"the DCGAN generator with {levels} levels", "generator.levels")
            if problem:
                return problem
        return FFPPipeline.check_config(config) or OBJECTIVES.get(pseudo.objective.name).check_config(pseudo.objective, config)

    def fused(self) -> Fusion:
        return Fusion(("psnr", self.config.classifier.fused_score))

    def _branches(self) -> list[tuple[str, Pipeline]]:
        named = [("pseudo", self.pseudo), ("ognet", self.ognet), ("normal", self.normal)]
        return [(prefix, branch) for prefix, branch in named if branch is not None]

    @property
    def networks(self) -> dict[str, nn.Module]:
        networks = {"classifier": self.classifier}
        for prefix, branch in self._branches():
            networks.update({f"{prefix}_{name}": net for name, net in branch.networks.items()})
        return networks

    def distribute(self, wrap: Callable[[nn.Module], nn.Module]) -> None:
        """Wrap every trained network for data-parallel training (branch A reads the classifier
        through `self`, so it is wrapped once)."""
        if self.ognet:
            raise ConfigError("pseudo.source=ognet_mix trains in one process only; run it without torchrun")
        self.classifier = wrap(self.classifier)
        for _, branch in self._branches():
            branch.distribute(wrap)

    @property
    def scoring_branch(self) -> FFPPipeline:
        """The generator whose prediction error is the PSNR score."""
        return self.normal or self.pseudo

    def _classifier_term(self, prediction: Tensor) -> dict[str, Tensor]:
        """Branch A's extra loss: the classifier should call its outputs pseudo-anomalous."""
        if not self.config.classifier.generator_weight:
            return {}
        with frozen(self.classifier), self.pseudo.autocast():
            return {"classifier": classifier_loss(self.classifier(self.pseudo.layout(prediction)), abnormal=True)}

    # --- training ---------------------------------------------------------------------------------------

    def make_batch(self, clips: ClipDataset, indices: np.ndarray, step: int) -> dict[str, Tensor]:
        batch = {"clips": clips.batch(indices)}
        if self.pseudo:
            batch["pseudo_clips"] = self.pseudo.make_batch(clips, indices, step)["clips"]
        return batch

    def train_step(self, batch: dict[str, Tensor]) -> dict[str, float]:
        """B's FFP step, then A's step, then one classifier step on the fresh outputs of both."""
        clips = batch["clips"]
        logged: dict[str, float] = {}
        normal_frames = [clips[:, -1]]
        if self.normal:
            normal_losses, normal_prediction = self.normal.update({"clips": clips})
            logged.update({f"normal/{k}": v for k, v in normal_losses.items()})
            normal_frames.append(normal_prediction)
        if self.ognet:
            ognet_losses = self.ognet.train_step({"frames": clips[:, -1]})
            logged.update({f"ognet/{k}": v for k, v in ognet_losses.items()})
            if not self.ognet.has_old_generator:
                return logged
            pseudo_anomalies = self.ognet.pseudo_anomalies(clips[:, -1])["pseudo"]
        else:
            pseudo_losses, pseudo_anomalies = self.pseudo.update({"clips": batch.get("pseudo_clips", clips)})
            logged.update({f"pseudo/{k}": v for k, v in pseudo_losses.items()})

        self.classifier.train()
        branch = self.scoring_branch
        with branch.autocast():
            abnormal = classifier_loss(self.classifier(branch.layout(pseudo_anomalies)), abnormal=True)
            normal = classifier_loss(self.classifier(branch.layout(torch.cat(normal_frames))), abnormal=False)
        loss = (abnormal + normal) / 2
        self.apply("classifier", loss)
        logged["classifier"] = loss.item()
        return logged

    # --- scoring and pictures ----------------------------------------------------------------------------

    @torch.inference_mode()
    def predict(self, clips: Tensor) -> Tensor:
        return self.scoring_branch.predict(clips)

    def scoring_network(self) -> nn.Module:
        return self.scoring_branch.scoring_network()

    @torch.inference_mode()
    def classify(self, frames: Tensor) -> Tensor:
        """(B, 2) probabilities: [P(abnormal), P(normal)]."""
        self.classifier.eval()
        with self.scoring_branch.autocast():
            return self.classifier(self.scoring_branch.layout(frames)).float()

    @torch.inference_mode()
    def score(self, clips: Tensor) -> dict[str, Tensor]:
        """PSNR of the scoring branch and both classifier indices, all oriented high = normal."""
        prediction = self.predict(clips)
        judged = prediction if self.config.classifier.input == "prediction" else clips[:, -1]
        probabilities = self.classify(judged)
        return {
            "psnr": psnr(prediction, clips[:, -1]),
            "classifier": probabilities[:, 1],
            "classifier_abnormal": 1 - probabilities[:, 0],
        }

    @torch.inference_mode()
    def sample_images(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        clips = batch["clips"]
        images = self.scoring_branch.sample_images({"clips": clips})
        if self.ognet:
            images["pseudo-anomaly"] = self.ognet.pseudo_anomalies(clips[:, -1])["pseudo"]
            return images
        self.pseudo.generator.eval()
        pseudo_anomaly = self.pseudo.run_generator(clips)
        images["pseudo-anomaly"] = pseudo_anomaly
        images["pseudo flow error"] = self.pseudo.flow_error_image(clips, pseudo_anomaly).expand_as(pseudo_anomaly)
        return images


@PIPELINES.register("single_branch")
class SingleBranch(ThesisPipeline):
    """The thesis as built: one generator gives PSNR and pseudo-anomalies."""


@PIPELINES.register("two_branch")
class TwoBranch(ThesisPipeline):
    """The thesis's proposed fix: a plain FFP predictor for PSNR beside the pseudo-anomaly generator."""

    two_branches = True
