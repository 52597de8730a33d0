"""Objectives: how a frame predictor (an FFPPipeline) is trained, one registered class each.

The objective decides what a batch holds, the terms of the generator's loss and their weights.
`ffp` is Future Frame Prediction's own objective. The thesis's pseudo-anomaly generator (branch A of
the single- and two-branch pipelines) swaps in one that pushes it out of the normal data:
`inverted_flow`, `hinge_flow`, `kl` or `skip_frames`. `learn_not_to_predict` (not_to_predict.py)
trains the predictor itself on pseudo-anomalies with normal targets.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from pseudovad.config import Config, option
from pseudovad.data.clips import ClipDataset
from pseudovad.losses import hinge_loss, pixel_kl_divergence
from pseudovad.registry import OBJECTIVES
from pseudovad.training.base import Fusion, Score

if TYPE_CHECKING:
    from pseudovad.training.ffp import FFPPipeline


@dataclass
class ObjectiveOptions:
    """Options every objective has: its registered `name`."""

    name: str


class Objective:
    """FFP's objective, and the base of the others: clips of consecutive frames, FFP's four losses."""

    Options: ClassVar[type] = ObjectiveOptions
    revision: ClassVar[int] = 1  # raised when the same options train differently: see pipelines.behaviour_revisions
    swap_flow_inputs = False

    def __init__(self, options: ObjectiveOptions, predictor: FFPPipeline) -> None:
        self.options = options
        self.predictor = predictor
        self.config = predictor.config

    @classmethod
    def check_config(cls, options: ObjectiveOptions, config: Config) -> str | None:
        """Why `options` cannot work with `config`, or None."""
        return None

    @property
    def networks(self) -> dict[str, nn.Module]:
        """Networks the objective trains besides the predictor's (checkpointed with it)."""
        return {}

    def make_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """Optimisers of `networks`, made once by the predictor's make_optimizers."""
        return {}

    def make_batch(self, clips: ClipDataset, indices: np.ndarray, step: int) -> dict[str, Tensor]:
        return {"clips": clips.batch(indices)}

    def sample_batch(self, clips: ClipDataset, indices: np.ndarray) -> dict[str, Tensor]:
        """The fixed sample shown in TensorBoard and the galleries."""
        return {"clips": clips.batch(indices)}

    def prepare(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """The batch as the predictor sees it (a trainable source perturbs it here)."""
        return batch

    def term_weights(self) -> dict[str, float]:
        weights = self.config.loss
        return {"intensity": weights.intensity, "gradient": weights.gradient, "flow": weights.flow, "adversarial": weights.adversarial}

    def discriminator_loss(self, batch: dict[str, Tensor], prediction: Tensor) -> Tensor:
        return self.predictor.lsgan_discriminator_loss(batch["clips"][:, -1], prediction)

    def terms(self, batch: dict[str, Tensor], prediction: Tensor) -> dict[str, Tensor]:
        clips = batch["clips"]
        return self.predictor.ffp_terms(clips[:, -2], prediction, clips[:, -1], self.term_weights(), self.swap_flow_inputs)

    def after_update(self, batch: dict[str, Tensor]) -> dict[str, float]:
        """Anything trained after the predictor's step (a trainable source); returns its losses."""
        return {}

    def sample_images(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """Extra gallery columns."""
        return {}

    def extra_scores(self) -> tuple[Score, ...]:
        """Scores the objective adds to the predictor's PSNR (declared like a pipeline's)."""
        return ()

    def score(self, clips: Tensor) -> dict[str, Tensor]:
        """Values of `extra_scores` for clips (high = normal)."""
        return {}

    def fusion(self) -> Fusion | None:
        return None

    def scoring_network(self) -> nn.Module | None:
        """A float32 copy of what computes `extra_scores` from clips, (B,) per clip; None without any."""
        return None

    def distribute(self, wrap: Callable[[nn.Module], nn.Module]) -> None:
        """Wrap the objective's own networks for DDP."""


OBJECTIVES.register("ffp")(Objective)


@OBJECTIVES.register("inverted_flow")
class InvertedFlow(Objective):
    """Gradient ascent on the flow loss (thesis): weight -`weight` on FFP's flow term."""

    @dataclass
    class Options(ObjectiveOptions):
        weight: float = option(0.5, at_least=0.0)
        swap_flow_inputs: bool = False

    def __init__(self, options: Options, predictor: FFPPipeline) -> None:
        super().__init__(options, predictor)
        self.swap_flow_inputs = options.swap_flow_inputs

    def term_weights(self) -> dict[str, float]:
        return {**super().term_weights(), "flow": -self.options.weight}


@OBJECTIVES.register("hinge_flow")
class HingeFlow(InvertedFlow):
    """The flow error pushed up to `margin` pixels and no further (a bounded version of ascent)."""

    @dataclass
    class Options(ObjectiveOptions):
        weight: float = option(0.5, at_least=0.0)
        margin: float = option(1.0, at_least=0.0)
        swap_flow_inputs: bool = False

    def term_weights(self) -> dict[str, float]:
        return {**Objective.term_weights(self), "flow": 0.0, "flow_hinge": self.options.weight}

    def terms(self, batch: dict[str, Tensor], prediction: Tensor) -> dict[str, Tensor]:
        terms = super().terms(batch, prediction)
        if self.options.weight:
            clips = batch["clips"]
            error = self.predictor.flow_error(clips[:, -2], prediction, clips[:, -1], self.swap_flow_inputs)
            terms["flow_hinge"] = hinge_loss(error, self.options.margin)
        return terms


@OBJECTIVES.register("kl")
class KLDivergence(Objective):
    """A pixel KL divergence between prediction and target maximised with weight `weight`, with an
    optional perceptual (VGG) L1 loss of weight `perceptual` (thesis 4.3.2)."""

    @dataclass
    class Options(ObjectiveOptions):
        weight: float = option(0.1, at_least=0.0)
        perceptual: float = option(0.0, at_least=0.0)
        perceptual_weights: str | None = option(None, file=True)

    def __init__(self, options: Options, predictor: FFPPipeline) -> None:
        super().__init__(options, predictor)
        self.features = None
        if options.perceptual > 0 and predictor.training:
            from pseudovad.models.features import load_vgg_features

            self.features, source = load_vgg_features(options.perceptual_weights)
            self.features.to(predictor.device)
            print(f"perceptual loss: {source}", file=sys.stderr)

    def term_weights(self) -> dict[str, float]:
        return {**super().term_weights(), "kl": -self.options.weight, "perceptual": self.options.perceptual}

    def terms(self, batch: dict[str, Tensor], prediction: Tensor) -> dict[str, Tensor]:
        from pseudovad.models.features import perceptual_loss

        terms = super().terms(batch, prediction)
        target = batch["clips"][:, -1]
        if self.options.weight:
            terms["kl"] = pixel_kl_divergence(prediction, target)
        if self.options.perceptual:
            terms["perceptual"] = perceptual_loss(self.features, prediction, target)
        return terms


@OBJECTIVES.register("skip_frames")
class SkipFramesGenerator(Objective):
    """FFP's losses on clips of every `skip`-th frame, the normal next frame as target (LNTRA-style
    fast motion, no negative loss): a generator of fast-motion frames for the thesis's classifier.
    Not the `skip_frames` pseudo-anomaly source, which feeds such clips to the predictor to learn not
    to predict (pseudo_anomalies/temporal.py); this objective trains a thesis branch on them."""

    @dataclass
    class Options(ObjectiveOptions):
        skip: int = option(3, at_least=1, at_most=32)

    def make_batch(self, clips: ClipDataset, indices: np.ndarray, step: int) -> dict[str, Tensor]:
        return {"clips": clips.batch(indices, skip=self.options.skip)}
