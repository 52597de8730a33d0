"""The pseudo-anomaly pipeline: a generator kept near, but out of, the normal data; a classifier
trained from scratch on its outputs against normal frames; PSNR and classifier fused.

- single-branch (the thesis as built): one generator, trained with a pseudo-anomaly objective,
  gives both the pseudo-anomalies and the PSNR score;
- two-branch (the thesis's proposed fix): branch B is a plain FFP predictor whose PSNR is the score,
  branch A generates pseudo-anomalies, and the classifier learns B's predictions and real frames
  (normal) against A's outputs (pseudo-anomalous). All trained jointly, one step each per batch.

The defects of the first implementation are avoided by construction: the flow term keeps its graph
(so inverting it does something), the KL term is real, every network's optimiser steps, and every
score is oriented high = normal before fusion.

Two options swap a part for a baseline's, to compare them on equal terms: `pseudo.generator: dcgan`
makes branch A a DCGAN generator without skips (thesis 4.4.1), and `pseudo.source: ognet_mix`
replaces branch A with OGNet's pseudo-anomaly module (see PseudoAnomalyPipeline).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor, nn

from pseudovad.config import Config
from pseudovad.data.clips import ClipDataset
from pseudovad.errors import ConfigError
from pseudovad.evaluation.protocol import psnr
from pseudovad.losses import classifier_loss, directed_flow_loss, flow_hinge_loss, pixel_kl_divergence
from pseudovad.models.classifier import FrameClassifier
from pseudovad.models.dcgan import DCGANGenerator
from pseudovad.training.ffp import FFPPipeline, _check_finite, frozen
from pseudovad.training.ognet import OGNetPipeline


class PseudoAnomalyGenerator(FFPPipeline):
    """Branch A: an FFP generator (with its own discriminator) whose loss is modified by
    `config.pseudo.objective`, plus the classifier's loss on its outputs labelled pseudo-anomalous."""

    def __init__(self, config: Config, device: torch.device, classifier: nn.Module) -> None:
        super().__init__(config, device, dropout=config.pseudo.dropout)
        if config.pseudo.generator == "dcgan":
            # The DCGAN generator takes the place of the U-Net FFPPipeline built, with its own optimiser.
            data, g = config.data, config.generator
            self.generator = DCGANGenerator(
                data.clip_length * data.channels, data.channels, data.height, data.width, g.width, g.levels, config.dcgan.bottleneck
            ).to(device)
            if config.train.channels_last:
                self.generator.to(memory_format=torch.channels_last)
            self.optimizers["generator"] = torch.optim.Adam(self.generator.parameters(), lr=config.train.lr_generator)
        self.classifier = classifier
        self.swap_flow_inputs = config.pseudo.swap_flow_inputs
        self.features = None
        if config.pseudo.objective == "kl" and config.pseudo.lambda_perceptual > 0:
            from pseudovad.models.features import load_vgg_features

            self.features, self.features_source = load_vgg_features(config.pseudo.perceptual_weights)
            self.features.to(device)

    def term_weights(self) -> dict[str, float]:
        pseudo = self.config.pseudo
        weights = super().term_weights()
        if pseudo.objective == "inverted_flow":
            weights["flow"] = -pseudo.lambda_flow
        elif pseudo.objective == "hinge_flow":
            weights["flow"] = 0.0
            weights["flow_hinge"] = pseudo.lambda_flow
        elif pseudo.objective == "kl":
            weights["kl"] = -pseudo.lambda_kl
            weights["perceptual"] = pseudo.lambda_perceptual
        weights["classifier"] = self.config.classifier.generator_weight
        return weights

    def generator_terms(self, previous: Tensor, prediction: Tensor, target: Tensor) -> dict[str, Tensor]:
        weights = self.term_weights()
        terms = super().generator_terms(previous, prediction, target)
        if weights.get("flow_hinge"):
            error = directed_flow_loss(self.flow, previous, prediction, target, self.swap_flow_inputs)
            terms["flow_hinge"] = flow_hinge_loss(error, self.config.pseudo.flow_margin)
        if weights.get("kl"):
            terms["kl"] = pixel_kl_divergence(prediction, target)
        if weights.get("perceptual"):
            from pseudovad.models.features import perceptual_loss

            terms["perceptual"] = perceptual_loss(self.features, prediction, target)
        if weights["classifier"]:
            with frozen(self.classifier), self.autocast():
                terms["classifier"] = classifier_loss(self.classifier(self._layout(prediction)), abnormal=True)
        return terms


class PseudoAnomalyPipeline:
    """Single- or two-branch pseudo-anomaly pipeline (`config.pipeline`).

    With `pseudo.source: ognet_mix` (two-branch only) branch A is OGNet's module instead: an OGNet
    generator and discriminator trained on the clips' last frames exactly as in the `ognet`
    pipeline (same `ognet` options and schedule; its phase 2 only fine-tunes OGNet's own
    discriminator, so `ognet.phase2_iterations: 0` skips it), and the classifier's pseudo-anomalies
    are the mixtures G_new((G_old(x_i) + G_old(x_j)) / 2) of the current generators. The classifier
    starts once G_old is taken (after `ognet.old_at` steps), and its loss does not reach OGNet's
    generator (`classifier.generator_weight` does not apply). Branch B and the scores are unchanged.
    """

    score_names = ("psnr", "classifier", "classifier_abnormal")

    def __init__(self, config: Config, device: torch.device) -> None:
        self.config = config
        self.device = device
        channels = config.data.channels
        self.classifier = FrameClassifier(channels, config.data.height, config.data.width, config.classifier.width).to(device)
        if config.train.channels_last:
            self.classifier.to(memory_format=torch.channels_last)
        self.pseudo, self.ognet = None, None
        if config.pseudo.source == "ognet_mix":
            if config.pipeline != "two_branch":
                raise ConfigError("pseudo.source=ognet_mix needs pipeline two_branch: OGNet's generator predicts no frame to score")
            self.ognet = OGNetPipeline(config, device)
        else:
            self.pseudo = PseudoAnomalyGenerator(config, device, self.classifier)
        self.normal = FFPPipeline(config, device) if config.pipeline == "two_branch" else None
        if self.normal and self.pseudo:
            self.normal.flow = self.pseudo.flow  # one estimator, one memo of the real frames' flows
        self.classifier_optimizer = torch.optim.SGD(
            self.classifier.parameters(), lr=config.classifier.lr, momentum=config.classifier.momentum
        )

    def distribute(self, wrap: Callable[[nn.Module], nn.Module]) -> None:
        """Wrap every trained network for data-parallel training; the classifier once (branch A
        holds the same one)."""
        if self.ognet:
            raise ConfigError("pseudo.source=ognet_mix trains in one process only; run it without torchrun")
        self.classifier = wrap(self.classifier)
        self.pseudo.classifier = self.classifier
        self.pseudo.distribute(wrap)
        if self.normal:
            self.normal.distribute(wrap)

    @property
    def scoring_branch(self) -> FFPPipeline:
        """The generator whose prediction error is the PSNR score."""
        return self.normal or self.pseudo

    @property
    def networks(self) -> dict[str, nn.Module]:
        networks = {"classifier": self.classifier}
        if self.pseudo:
            networks.update({f"pseudo_{name}": net for name, net in self.pseudo.networks.items()})
        if self.ognet:
            networks.update({f"ognet_{name}": net for name, net in self.ognet.networks.items()})
        if self.normal:
            networks.update({f"normal_{name}": net for name, net in self.normal.networks.items()})
        return networks

    @property
    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        optimizers = {"classifier": self.classifier_optimizer}
        if self.pseudo:
            optimizers.update({f"pseudo_{name}": opt for name, opt in self.pseudo.optimizers.items()})
        if self.ognet:
            optimizers.update({f"ognet_{name}": opt for name, opt in self.ognet.optimizers.items()})
        if self.normal:
            optimizers.update({f"normal_{name}": opt for name, opt in self.normal.optimizers.items()})
        return optimizers

    def make_batch(self, clips: ClipDataset, indices: np.ndarray) -> dict[str, Tensor]:
        batch = {"clips": clips.batch(indices)}
        if self.config.pseudo.objective == "skip_frames":
            batch["pseudo_clips"] = clips.batch(indices, skip=self.config.pseudo.skip)
        return batch

    def train_step(self, batch: dict[str, Tensor]) -> dict[str, float]:
        """B's FFP step, then A's step, then one classifier step on the fresh outputs of both."""
        clips = batch["clips"]
        logged: dict[str, float] = {}
        normal_frames = [clips[:, -1]]
        if self.normal:
            normal_losses, normal_prediction = self.normal.update(clips)
            logged.update({f"normal/{k}": v for k, v in normal_losses.items()})
            normal_frames.append(normal_prediction)
        if self.ognet:
            ognet_losses = self.ognet.train_step({"frames": clips[:, -1]})
            logged.update({f"ognet/{k}": v for k, v in ognet_losses.items()})
            if not self.ognet.has_old_generator:
                return logged
            pseudo_anomalies = self.ognet.pseudo_anomalies(clips[:, -1])["pseudo"]
        else:
            pseudo_losses, pseudo_anomalies = self.pseudo.update(batch.get("pseudo_clips", clips))
            logged.update({f"pseudo/{k}": v for k, v in pseudo_losses.items()})

        self.classifier.train()
        branch = self.scoring_branch
        with branch.autocast():
            abnormal = classifier_loss(self.classifier(branch._layout(pseudo_anomalies)), abnormal=True)
            normal = classifier_loss(self.classifier(branch._layout(torch.cat(normal_frames))), abnormal=False)
        loss = (abnormal + normal) / 2
        _check_finite({"classifier": loss})
        self.classifier_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.classifier_optimizer.step()
        logged["classifier"] = loss.item()
        return logged

    @torch.inference_mode()
    def predict(self, clips: Tensor) -> Tensor:
        return self.scoring_branch.predict(clips)

    @torch.inference_mode()
    def classify(self, frames: Tensor) -> Tensor:
        """(B, 2) probabilities: [P(abnormal), P(normal)]."""
        self.classifier.eval()
        with self.scoring_branch.autocast():
            return self.classifier(self.scoring_branch._layout(frames)).float()

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
    def sample_images(self, clips: Tensor) -> dict[str, Tensor]:
        images = self.scoring_branch.sample_images(clips)
        if self.ognet:
            images["pseudo-anomaly"] = self.ognet.pseudo_anomalies(clips[:, -1])["pseudo"]
            return images
        self.pseudo.generator.eval()
        pseudo_anomaly = self.pseudo.run_generator(clips)
        images["pseudo-anomaly"] = pseudo_anomaly
        images["pseudo flow error"] = self.pseudo.flow_error_image(clips, pseudo_anomaly).expand_as(pseudo_anomaly)
        return images
