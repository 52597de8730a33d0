"""Learning not to predict anomalies: pseudo-anomalies train the predictor itself.

Each training sample becomes a pseudo-anomaly with probability `probability`: its input clip is
swapped for one made by a pseudo-anomaly source (pseudo_anomalies/), while its target stays a real,
normal frame. Normal samples keep FFP's full loss; pseudo-anomalous ones get intensity + gradient
loss towards the normal frame (weight `weight`), so the predictor learns to output normal frames
even from abnormal inputs, and a real anomaly at test time leaves a large prediction error (LNTRA,
Astrid et al. BMVC 2021; FastAno, Park et al. WACV 2022). The optional hinge (`hinge_weight`,
`margin`) also pushes the prediction away from the abnormal continuation, but never further than
`margin`: no unbounded ascent.

Which samples become pseudo-anomalies, and how, is a pure function of (seed, step), so a resumed run
sees the batches the uninterrupted one would have.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any

import numpy as np
import torch
from torch import Tensor, nn

from pseudovad.config import Chosen, Config, component, option
from pseudovad.data.clips import ClipDataset
from pseudovad.losses import (gradient_loss, hinge_loss, intensity_loss, lsgan_discriminator_loss, lsgan_generator_loss,
                              masked_mean)
from pseudovad.models.critic import PatchCritic
from pseudovad.pseudo_anomalies import Source
from pseudovad.registry import OBJECTIVES, SOURCES
from pseudovad.training.base import Fusion, Score, exportable, frozen, statistics_kept
from pseudovad.training.objectives import Objective, ObjectiveOptions

if TYPE_CHECKING:
    from pseudovad.training.ffp import FFPPipeline

# Mixed into the seed of each step's draw, so it never coincides with the batch order's draw.
_STREAM = 0x5EED


def critic_input(clips: Tensor, differences: bool) -> Tensor:
    """What the critic sees of (B, t+1, C, H, W) clips: the t frame differences and the last frame,
    or all frames, stacked on channels."""
    if differences:
        clips = torch.cat([clips[:, 1:] - clips[:, :-1], clips[:, -1:]], dim=1)
    return clips.flatten(1, 2)


def p_normal(logits: Tensor) -> Tensor:
    """The critic's logit is of "pseudo-anomaly" (its training label 1), so P(normal) is the sigmoid of
    minus it: the one place that turns the logit into the score scoring and the export both deploy."""
    return torch.sigmoid(-logits)


class CriticScore(nn.Module):
    """The critic's P(normal) of each clip, as one module (for an export)."""

    def __init__(self, critic: nn.Module, differences: bool) -> None:
        super().__init__()
        self.critic, self.differences = critic, differences

    def forward(self, clips: Tensor) -> Tensor:
        return p_normal(self.critic(critic_input(clips, self.differences)))


@dataclass
class CriticOptions:
    """The thesis's classifier done with bounded pseudo-anomalies (zxVAD, SSMTL): a patch critic that
    learns the same pseudo-anomalies against normal clips, from their frame `differences` (and the
    last frame) or the `frames` themselves; its P(normal) is a second score, fused with PSNR as
    minmax(w minmax(PSNR) + (1 - w) minmax(critic)) with `fusion_weight` w (choose it on validation).

    `last_frame` is what ends a pseudo-anomalous clip the critic learns from: `continuation`, the frame
    that carries the pseudo-anomaly on (a pasted patch still there, a fast box still fast), as the last
    frame of a real anomaly does when the critic scores a test clip; or `target`, the normal frame the
    predictor is trained towards, which shows the anomaly vanishing in the last step, a cue no test
    clip has (the default, and the only behaviour before 2026-12-01).

    `probability` gives the critic a batch of its own, made from the same clips with this share of
    pseudo-anomalies, so that what the critic sees no longer depends on the predictor's share: the
    objective's `probability` can then be 0 (the predictor trains as FFP does, and pseudo-anomalies
    teach the critic alone) while the critic learns from balanced batches. None: the critic learns from
    the predictor's batch (the behaviour before 2026-12-07)."""

    enabled: bool = False
    input: str = option("differences", choices=("differences", "frames"))
    last_frame: str = option("target", choices=("target", "continuation"))
    width: int = option(16, at_least=1, at_most=512)
    lr: float = option(1e-4, above=0.0, at_most=10.0)
    fusion_weight: float = option(0.5, at_least=0.0, at_most=1.0)
    probability: float | None = option(None, at_least=0.0, at_most=1.0)


@OBJECTIVES.register("learn_not_to_predict")
class LearnNotToPredict(Objective):
    """FFP's objective on normal samples plus pseudo-anomalies with normal targets.

    Revision 2 (2026-12-07): D is run on the normal samples alone. Revision 1 ran it on the whole batch
    and masked its loss, and with D's BatchNorm the adversarial term reached the pseudo-anomalies'
    predictions through the batch statistics (the runs of RESULTS before that date are revision 1).
    Revision 3 (the same day): the hinge's margin is, per sample, at most the real frame's own distance
    from the abnormal continuation, so it never penalises predicting the real frame (it did wherever a
    pseudo-anomaly differed from its target by less than the margin); only runs with hinge_weight > 0
    train differently."""

    revision = 3

    @dataclass
    class Options(ObjectiveOptions):
        probability: float = option(0.2, at_least=0.0, at_most=1.0)
        weight: float = option(1.0, at_least=0.0)
        hinge_weight: float = option(0.0, at_least=0.0)
        margin: float = option(0.0, at_least=0.0)  # MSE (in [-1, 1] units) to the abnormal continuation
        sources: list[Annotated[Any, Chosen(SOURCES)]] = option(factory=lambda: [component(SOURCES, "skip_frames")])
        critic: CriticOptions = field(default_factory=CriticOptions)

    def __init__(self, options: Options, predictor: FFPPipeline) -> None:
        super().__init__(options, predictor)
        self.sources: list[Source] = [SOURCES.get(o.name)(o, predictor.config) for o in options.sources]
        for source in self.sources:
            for network in source.networks.values():
                network.to(predictor.device)
        names = [o.name for o in options.sources]
        # How logs, galleries and checkpoints call each source: its name, numbered where it repeats.
        self.labels = [name if names.count(name) == 1 else f"{name}{j}" for j, name in enumerate(names)]
        shares = np.array([o.share for o in options.sources], dtype=float)
        self.shares = shares / shares.sum()
        self.distributed = False
        self.critic = self._build_critic(options.critic, predictor) if options.critic.enabled else None

    def _build_critic(self, options: CriticOptions, predictor: FFPPipeline) -> PatchCritic:
        data = predictor.config.data  # t differences and the last frame, or the t + 1 frames: as many either way
        return PatchCritic((data.clip_length + 1) * data.channels, options.width).to(predictor.device)

    @classmethod
    def check_config(cls, options: Options, config: Config) -> str | None:
        if not options.sources:
            return "learn_not_to_predict needs at least one pseudo-anomaly source (objective.sources)"
        if options.hinge_weight > 0 and options.margin == 0:
            return ("objective.hinge_weight pushes the error on the abnormal continuation above objective.margin, "
                    "which is 0: the hinge would do nothing; set a margin (an MSE in [-1, 1] units, e.g. 0.01)")
        if options.critic.probability is not None and not options.critic.enabled:
            return "objective.critic.probability sets the share of the critic's own batch: also set objective.critic.enabled: true"
        if options.critic.probability is not None and any(SOURCES.get(o.name).trainable for o in options.sources):
            return ("objective.critic.probability cannot be used with a trainable source (adversarial): its "
                    "perturbation is made in the predictor's batch only; remove one of the two")
        problems = (SOURCES.get(o.name).check_config(o, config) for o in options.sources)
        return next((p for p in problems if p), None)

    @property
    def networks(self) -> dict[str, nn.Module]:
        networks = {f"{label}_{k}": v for label, s in zip(self.labels, self.sources) for k, v in s.networks.items()}
        return networks if self.critic is None else {**networks, "critic": self.critic}

    def make_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        optimizers = {f"{label}_{k}": v for label, s in zip(self.labels, self.sources) for k, v in s.make_optimizers().items()}
        if self.critic is not None:
            optimizers["critic"] = torch.optim.Adam(self.critic.parameters(), lr=self.options.critic.lr)
        return optimizers

    def distribute(self, wrap: Callable[[nn.Module], nn.Module]) -> None:
        self.distributed = True
        if self.critic is not None:
            self.critic = wrap(self.critic)
        for source in self.sources:
            for name, network in source.networks.items():
                source.networks[name] = wrap(network)
                setattr(source, name, source.networks[name])

    # --- batches ----------------------------------------------------------------------------------------

    def make_batch(self, clips: ClipDataset, indices: np.ndarray, step: int) -> dict[str, Tensor]:
        """The clips with some samples swapped for pseudo-anomalies; `source` says which (-1: normal)."""
        rng = np.random.default_rng([self.config.train.seed, step, _STREAM])
        batch = self._with_sources(clips, indices, self._draw_kinds(rng, self.options.probability, len(indices)), rng)
        share = self.options.critic.probability
        if self.critic is not None and share is not None:  # drawn after the predictor's: its batch stays as it was
            made = self._with_sources(clips, indices, self._draw_kinds(rng, share, len(indices)), rng)
            batch.update({f"critic/{key}": value for key, value in made.items()})
        return batch

    def _draw_kinds(self, rng: np.random.Generator, probability: float, size: int) -> np.ndarray:
        """Which source makes each sample (-1: it stays normal)."""
        chosen = rng.random(size) < probability
        kinds = rng.choice(len(self.sources), size=size, p=self.shares)
        return np.where(chosen, kinds, -1)

    def sample_batch(self, clips: ClipDataset, indices: np.ndarray) -> dict[str, Tensor]:
        """The fixed sample for galleries: the normal clips and each source's version of them."""
        batch = {"clips": clips.batch(indices)}
        rng = np.random.default_rng([self.config.train.seed, _STREAM])
        for j, label in enumerate(self.labels):
            made = self._with_sources(clips, indices, np.full(len(indices), j), rng)
            batch.update({f"{label}/{key}": value for key, value in made.items()})
        return batch

    def _with_sources(self, clips: ClipDataset, indices: np.ndarray, kinds: np.ndarray, rng: np.random.Generator) -> dict[str, Tensor]:
        """The batch of `indices` with row i made by source kinds[i] (-1: left normal): `clips`, `abnormal`
        (each row's continuation; a normal row's is its own target), `source` (the kinds) and, where a
        source is trainable, `mask` (where it may perturb: zero for every other row)."""
        batch_clips = clips.batch(indices)
        abnormal = batch_clips[:, -1].clone()
        mask = torch.zeros(len(indices), 1, *batch_clips.shape[-2:]) if any(s.trainable for s in self.sources) else None
        for j, source in enumerate(self.sources):
            rows = torch.from_numpy(np.flatnonzero(kinds == j))
            if rows.numel() == 0:
                continue
            made = source.make(clips, indices[rows.numpy()], rng)
            batch_clips[rows], abnormal[rows] = made.clips, made.abnormal
            if made.mask is not None:
                mask[rows] = made.mask
        batch = {"clips": batch_clips, "abnormal": abnormal, "source": torch.from_numpy(kinds).long()}
        return batch if mask is None else {**batch, "mask": mask}

    def prepare(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """Trainable sources perturb their samples here (without a graph: the predictor's step). G's
        change goes into the input frames only: the target stays the clean frame, as for every source,
        and the perturbed target is the abnormal continuation (the one G wants predicted, _train_sources)."""
        if "mask" not in batch:
            return batch
        batch = {**batch, "clean": batch["clips"], "clips": batch["clips"].clone(), "abnormal": batch["abnormal"].clone()}
        for j, source in enumerate(self.sources):
            rows = batch["source"] == j
            if source.trainable and bool(rows.any()):
                with torch.no_grad(), self.predictor.autocast():
                    perturbed = source.perturb(batch["clean"][rows], batch["mask"][rows])
                batch["clips"][rows, :-1] = perturbed[:, :-1]
                batch["abnormal"][rows] = perturbed[:, -1]
        return batch

    # --- losses -----------------------------------------------------------------------------------------

    def term_weights(self) -> dict[str, float]:
        weights = super().term_weights()
        pseudo = self.options.weight
        return {**weights, "pseudo_intensity": pseudo * weights["intensity"], "pseudo_gradient": pseudo * weights["gradient"],
                "pseudo_hinge": self.options.hinge_weight}

    def discriminator_loss(self, batch: dict[str, Tensor], prediction: Tensor) -> Tensor:
        """D learns real frames against predictions of normal clips only."""
        rows, counted = self._normal_rows(batch)
        real = self.predictor.run_discriminator(batch["clips"][rows, -1])
        fake = self.predictor.run_discriminator(prediction.detach()[rows])
        return masked_mean(lsgan_discriminator_loss(real, fake, per_sample=True), counted)

    @staticmethod
    def _normal_rows(batch: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        """The rows D is run on for the normal-only terms, and which of them count. D sees the normal
        samples alone: run on the whole batch and masked after, its batch statistics (BatchNorm) would
        pass the adversarial term on to the pseudo-anomalies' predictions. A batch without a normal
        sample runs D on every row, counted for nothing, so every data-parallel process runs D."""
        normal = batch["source"] < 0
        rows = normal.nonzero().squeeze(1) if bool(normal.any()) else torch.arange(len(normal), device=normal.device)
        return rows, normal[rows]

    def terms(self, batch: dict[str, Tensor], prediction: Tensor) -> dict[str, Tensor]:
        clips, pseudo = batch["clips"], batch["source"] >= 0
        normal, target, weights = ~pseudo, clips[:, -1], self.term_weights()
        terms = {
            "intensity": masked_mean(intensity_loss(prediction, target, per_sample=True), normal),
            "gradient": masked_mean(gradient_loss(prediction, target, per_sample=True), normal),
        }
        if weights["flow"] != 0:
            rows = normal.nonzero().squeeze(1)
            terms["flow"] = (self.predictor.flow_error(clips[rows, -2], prediction[rows], target[rows])
                             if rows.numel() else prediction.sum() * 0)
        if weights["adversarial"] > 0:
            rows, counted = self._normal_rows(batch)
            with frozen(self.predictor.discriminator):
                fooled = lsgan_generator_loss(self.predictor.run_discriminator(prediction[rows]), per_sample=True)
            terms["adversarial"] = masked_mean(fooled, counted)
        terms["pseudo_intensity"] = masked_mean(intensity_loss(prediction, target, per_sample=True), pseudo)
        terms["pseudo_gradient"] = masked_mean(gradient_loss(prediction, target, per_sample=True), pseudo)
        if weights["pseudo_hinge"]:
            away = intensity_loss(prediction, batch["abnormal"], per_sample=True)
            # never asks for more distance than the real frame has: predicting it exactly costs nothing
            reach = intensity_loss(target, batch["abnormal"], per_sample=True).clamp(max=self.options.margin)
            terms["pseudo_hinge"] = masked_mean(hinge_loss(away, reach), pseudo)
        return terms

    def after_update(self, batch: dict[str, Tensor]) -> dict[str, float]:
        """Each trainable source learns perturbations the predictor would carry into its prediction;
        the critic learns the batch's pseudo-anomalies against its normal clips."""
        logged = self._train_sources(batch)
        if self.critic is not None:
            self.critic.train()
            own = {key.removeprefix("critic/"): value for key, value in batch.items() if key.startswith("critic/")}
            seen = own or batch
            with self.predictor.autocast():
                logits = self.critic(self._critic_input(self._critic_clips(seen)))
            loss = nn.functional.binary_cross_entropy_with_logits(logits, (seen["source"] >= 0).float())
            self.predictor.apply("objective_critic", loss, {"critic": loss})
            logged["critic"] = loss.item()
        return logged

    def _critic_clips(self, batch: dict[str, Tensor]) -> Tensor:
        """The clips the critic learns from (see CriticOptions.last_frame); a normal sample's
        `abnormal` frame is its own last frame, so only pseudo-anomalies change."""
        if self.options.critic.last_frame == "target":
            return batch["clips"]
        return torch.cat([batch["clips"][:, :-1], batch["abnormal"][:, None]], dim=1)

    def _critic_input(self, clips: Tensor) -> Tensor:
        return self.predictor.layout(critic_input(clips, self.options.critic.input == "differences"))

    def extra_scores(self) -> tuple[Score, ...]:
        return () if self.critic is None else (Score("classifier", "critic P(normal)", probability=True),)

    def score(self, clips: Tensor) -> dict[str, Tensor]:
        if self.critic is None:
            return {}
        self.critic.eval()
        with self.predictor.autocast():
            return {"classifier": p_normal(self.critic(self._critic_input(clips)))}

    def fusion(self) -> Fusion | None:
        return None if self.critic is None else Fusion(("psnr", "classifier"), self.options.critic.fusion_weight)

    def scoring_network(self) -> nn.Module | None:
        if self.critic is None:
            return None
        return CriticScore(exportable(self.critic), self.options.critic.input == "differences").eval()

    def _train_sources(self, batch: dict[str, Tensor]) -> dict[str, float]:
        """One step of each trainable source, the predictor frozen; under DDP on every sample (masked),
        so each process runs the same backward passes."""
        logged = {}
        for j, source in enumerate(self.sources):
            rows = batch["source"] == j
            if not source.trainable or not (self.distributed or bool(rows.any())):
                continue
            rows = rows if not self.distributed else torch.ones_like(rows)
            with frozen(self.predictor.generator), statistics_kept(self.predictor.generator):
                with self.predictor.autocast():
                    perturbed = source.perturb(batch["clean"][rows], batch["mask"][rows])
                counted = (batch["source"] == j)[rows]
                for network, loss in source.losses(self.predictor.run_generator, perturbed, counted).items():
                    name = f"{self.labels[j]}_{network}"
                    self.predictor.apply(f"objective_{name}", loss, {name: loss})
                    logged[name] = loss.item()
        return logged

    def sample_images(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """Per source: its last pseudo-anomalous input and what the predictor makes of it."""
        images = {}
        for name, source in zip(self.labels, self.sources):
            clips = batch[f"{name}/clips"]
            if source.trainable:
                with torch.no_grad(), self.predictor.autocast():
                    clips = source.perturb(clips, batch[f"{name}/mask"]).float()
            images[f"{name}: input"] = clips[:, -2]
            images[f"{name}: prediction"] = self.predictor.predict(clips)
        return images
