"""OGNet, "Old is Gold" (Zaheer et al., CVPR 2020), as a pipeline: the discriminator of an
adversarial autoencoder, fine-tuned on pseudo-anomalies, is the anomaly detector.

Phase 1 (all but the last `ognet.phase2_iterations` steps): the generator G learns to reconstruct
frames corrupted with Gaussian noise (0.5 MSE + 0.5 adversarial) and the discriminator D learns
real frames against reconstructions (BCE). After `ognet.old_at` steps a frozen copy G_old is kept.
Phase 2: G and G_old are frozen and D alone is fine-tuned to call G_old(x) and the mixtures
G_new((G_old(x_i) + G_old(x_j)) / 2) bad and G_new(x) and x good. A frame's score is D(G(x)).

With `ognet.patches` the networks see square patches of the frame on a fixed grid (the authors'
45x45 at native resolution) instead of the whole frame resized: a training sample is one patch of a
frame, and a frame's score is the minimum of D(G(patch)) over its patches. Without it the grid is
one patch, the whole frame, and the same code runs.

OGNet judges single frames: it sees the last frame of each clip, so the frames it scores are the
ones FFP scores. The pipeline counts its own steps and phase in a `progress` module, so the
generic checkpoint carries them (with G_old) and a run resumes mid-phase-2 exactly.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor, nn

from pseudovad.config import Config
from pseudovad.data.clips import ClipDataset
from pseudovad.data.foreground import FOREGROUND_LEVELS, foreground_masks
from pseudovad.data.patches import PatchGrid
from pseudovad.losses import intensity_loss
from pseudovad.models.ognet import OGNetDiscriminator, OGNetGenerator, mixed_pseudo_anomalies
from pseudovad.registry import PIPELINES
from pseudovad.training.base import Pipeline, Score, frozen

_STREAM = 0x0647  # the random stream of the patch each training sample takes

# Phase 2's kinds of example: D learns to call the first two good and the last two bad.
GOOD_KINDS, BAD_KINDS = ("real", "new"), ("old", "pseudo")

# Held-out frames the diagnostics judge, evenly spaced: 1536 patches on Ped2, a minute on one core.
DIAGNOSTIC_FRAMES = 32


def _bce(logits: Tensor, target: float) -> Tensor:
    """BCE of D's sigmoid output against a constant label (on logits: same loss, no log(0))."""
    return nn.functional.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


def patch_grid(config: Config) -> PatchGrid:
    """The grid of `ognet.patches` squares covering a frame, or the whole frame as one patch."""
    side = config.ognet.patches
    height, width = config.data.height, config.data.width
    return PatchGrid(height, width, side or height, side or width)


def kind_aucs(logits: dict[str, Tensor]) -> dict[str, float]:
    """ROC AUC of D's logits for each good kind against each bad kind, and for both against both:
    1 when D ranks every good example above every bad one, 0.5 when it cannot tell them apart, below
    0.5 when it has them the wrong way round."""
    from sklearn.metrics import roc_auc_score  # here, not at the top: every process that registers pipelines would pay its import (0.4-1 s measured)

    def auc(good: Tensor, bad: Tensor) -> float:
        labels = np.r_[np.ones(len(good)), np.zeros(len(bad))]
        return float(roc_auc_score(labels, torch.cat([good, bad]).cpu().numpy()))

    pairs = {f"{good}_vs_{bad}": auc(logits[good], logits[bad]) for good in GOOD_KINDS for bad in BAD_KINDS}
    both = [torch.cat([logits[kind] for kind in kinds]) for kinds in (GOOD_KINDS, BAD_KINDS)]
    return {**pairs, "good_vs_bad": auc(*both)}


def rank_correlation(first: Tensor, second: Tensor) -> float | None:
    """Spearman's rank correlation; None where one side is constant (no ranking to correlate)."""
    if first.unique().numel() < 2 or second.unique().numel() < 2:
        return None
    from scipy.stats import spearmanr  # here, not at the top: scipy.stats takes ~1 s to import
    return float(spearmanr(first.cpu().numpy(), second.cpu().numpy()).statistic)


class TrainingProgress(nn.Module):
    """Steps taken and phase reached, kept as buffers so that checkpoints carry them."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("iteration", torch.zeros((), dtype=torch.long))
        self.register_buffer("phase", torch.ones((), dtype=torch.long))


@PIPELINES.register("ognet")
class OGNetPipeline(Pipeline):
    """OGNet's generator, old generator and discriminator, trained in its two phases
    (`train.precision` applies, `train.channels_last` does not)."""

    scores = (Score("ognet", "OGNet D(G(x))"),)
    sections = ("ognet",)
    network_names = ("generator", "old_generator", "discriminator", "progress")

    def __init__(self, config: Config, device: torch.device, training: bool = True) -> None:
        super().__init__(config, device, training)
        options = config.ognet
        channels = config.data.channels
        self.grid = patch_grid(config)
        self.generator = OGNetGenerator(channels, options.width).to(device)
        self.old_generator = copy.deepcopy(self.generator).requires_grad_(False)
        self.discriminator = OGNetDiscriminator(channels, self.grid.patch_height, self.grid.patch_width, options.width).to(device)
        self.progress = TrainingProgress().to(device)

    def make_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        train = self.config.train
        return {
            "generator": torch.optim.Adam(self.generator.parameters(), lr=train.lr_generator),
            "discriminator": torch.optim.Adam(self.discriminator.parameters(), lr=train.lr_discriminator),
            "discriminator_finetune": torch.optim.Adam(self.discriminator.parameters(), lr=self.config.ognet.finetune_lr),
        }

    @classmethod
    def check_config(cls, config: Config) -> str | None:
        options = config.ognet
        phase2_start = config.train.iterations - options.phase2_iterations
        if not 0 < options.old_at < phase2_start:
            return (f"ognet.old_at ({options.old_at}) must lie inside phase 1, which runs from step 0 to step "
                    f"{phase2_start} (train.iterations {config.train.iterations} - ognet.phase2_iterations "
                    f"{options.phase2_iterations}); lower ognet.old_at or ognet.phase2_iterations")
        height, width = config.data.height, config.data.width
        if options.patches > min(height, width):
            return f"ognet.patches ({options.patches}) is larger than the {height}x{width} frames; lower it or raise data.height/width"
        if min(options.patches or height, options.patches or width) < 17:
            return f"OGNet's generator needs images of at least 17x17, got {options.patches or height}x{options.patches or width}"
        return None

    @property
    def has_old_generator(self) -> bool:
        return int(self.progress.iteration) > self.config.ognet.old_at

    def make_batch(self, clips: ClipDataset, indices: np.ndarray, step: int) -> dict[str, Tensor]:
        """One grid patch of each clip's last frame, drawn from (seed, step) so a resumed run draws the
        same ones (the whole frame without `ognet.patches`)."""
        rng = np.random.default_rng([self.config.train.seed, step, _STREAM])
        chosen = torch.from_numpy(rng.integers(len(self.grid), size=len(indices)))
        return {"frames": self.grid.cut(clips.batch(indices)[:, -1])[torch.arange(len(indices)), chosen]}

    def train_step(self, batch: dict[str, Tensor]) -> dict[str, float]:
        """One step of the current phase. G_old is copied before step `old_at` (after `old_at`
        updates); phase 2 begins `phase2_iterations` before the budget ends and, once begun, lasts
        (a resumed run whose budget was extended keeps fine-tuning). The step is counted even if its
        loss is not finite, as the loop counts it."""
        done = int(self.progress.iteration)
        if done == self.config.ognet.old_at:
            self.old_generator.load_state_dict(self.generator.state_dict())
        if done >= self.config.train.iterations - self.config.ognet.phase2_iterations:
            self.progress.phase.fill_(2)
        self.progress.iteration += 1
        if int(self.progress.phase) == 2:
            return {**self.finetune_discriminator(batch["frames"]), "phase": 2.0}
        return {**self.train_autoencoder(batch["frames"]), "phase": 1.0}

    def run_discriminator(self, frames: Tensor) -> Tensor:
        """D's logits (float32); D(x) is their sigmoid."""
        with self.autocast():
            return self.discriminator.logits(frames)

    def train_autoencoder(self, frames: Tensor) -> dict[str, float]:
        """Phase 1: D on real frames vs reconstructions of noisy frames, then G with D frozen. The
        noisy frames are clamped to [-1, 1], as the authors' `gaussian` (utils.py) does."""
        options = self.config.ognet
        self.generator.train()
        self.discriminator.train()
        noisy = (frames + options.noise_std * torch.randn_like(frames)).clamp(-1.0, 1.0)
        with self.autocast():
            reconstruction = self.generator(noisy).float()

        d_loss = (_bce(self.run_discriminator(frames), 1.0) + _bce(self.run_discriminator(reconstruction.detach()), 0.0)) / 2
        self.apply("discriminator", d_loss)

        with frozen(self.discriminator):
            terms = {
                "reconstruction": intensity_loss(reconstruction, frames),
                "adversarial": _bce(self.run_discriminator(reconstruction), 1.0),
            }
        total = options.reconstruction_weight * terms["reconstruction"] + options.adversarial_weight * terms["adversarial"]
        self.apply("generator", total, terms)
        return {"discriminator": d_loss.item(), "generator": total.item(), **{k: v.item() for k, v in terms.items()}}

    @torch.no_grad()
    def reconstruct(self, frames: Tensor) -> Tensor:
        """G_new(x), the generator frozen in eval mode."""
        self.generator.eval()
        with self.autocast():
            return self.generator(frames).float()

    @torch.no_grad()
    def pseudo_anomalies(self, frames: Tensor) -> dict[str, Tensor]:
        """OGNet's pseudo-anomaly module, both generators frozen in eval mode: G_old(x) and the
        mixtures G_new((G_old(x_i) + G_old(x_j)) / 2), frame i mixed with frame `partners`[i]."""
        self.generator.eval()
        self.old_generator.eval()
        with self.autocast():
            old = self.old_generator(frames).float()
            pseudo, partners = mixed_pseudo_anomalies(self.generator, old)
        return {"old": old, "pseudo": pseudo.float(), "partners": partners}

    def finetune_discriminator(self, frames: Tensor) -> dict[str, float]:
        """Phase 2: only D learns, with the authors' weights for each kind of example. D sees each
        kind as a batch of its own, in the authors' order (model_fine_tune_discriminator.py lines
        85-88): its BatchNorm running statistics, which score test frames, depend on that order."""
        options = self.config.ognet
        bad = self.pseudo_anomalies(frames)
        reconstruction = self.reconstruct(frames)
        self.discriminator.train()
        terms = {
            "old": _bce(self.run_discriminator(bad["old"]), 0.0),
            "new": _bce(self.run_discriminator(reconstruction), 1.0),
            "real": _bce(self.run_discriminator(frames), 1.0),
            "pseudo": _bce(self.run_discriminator(bad["pseudo"]), 0.0),
        }
        weights = {"old": options.weight_old, "pseudo": options.weight_pseudo, "new": options.weight_new, "real": options.weight_real}
        total = sum(weights[name] * value for name, value in terms.items())
        self.apply("discriminator_finetune", total, terms)
        return {"finetune": total.item(), **{f"finetune_{k}": v.item() for k, v in terms.items()}}

    @torch.no_grad()
    def judge(self, images: Tensor) -> Tensor:
        """D's logits in eval mode (its running BatchNorm statistics), as it scores test frames."""
        self.discriminator.eval()
        return self.run_discriminator(images)

    def patchwise(self, frames: Tensor, function: Callable[[Tensor], Tensor]) -> Tensor:
        """`function` applied to the grid patches of (B, C, H, W) frames at once: (B, P, ...)."""
        patches = self.grid.cut(frames)
        result = function(patches.flatten(0, 1))
        return result.view(*patches.shape[:2], *result.shape[1:])

    @torch.inference_mode()
    def predict(self, clips: Tensor) -> Tensor:
        """G(patch) of every patch of each clip's last frame, put back in place."""
        return self.grid.paste(self.patchwise(clips[:, -1], self.reconstruct))

    @torch.inference_mode()
    def score(self, clips: Tensor) -> dict[str, Tensor]:
        """The minimum over the last frame's patches of D(G(patch)), high = normal. Reported as D's
        logit: the same order as the probability, without the ties float32 makes when the sigmoid
        saturates."""
        return {"ognet": self.patchwise(clips[:, -1], lambda patches: self.judge(self.reconstruct(patches))).amin(dim=1)}

    @torch.inference_mode()
    def sample_images(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """Each column made patch by patch and put back in place (a mixture pairs a patch with the
        next one in the batch, here its neighbour on the grid)."""
        frames = batch["clips"][:, -1]
        patches = self.grid.cut(frames)
        bad = self.pseudo_anomalies(patches.flatten(0, 1))
        return {"frame": frames, "G(x)": self.predict(batch["clips"]), "G_old(x)": self.grid.paste(bad["old"].view_as(patches)),
                "pseudo-anomaly": self.grid.paste(bad["pseudo"].view_as(patches))}

    @torch.no_grad()
    def kind_logits(self, images: Tensor) -> dict[str, Tensor]:
        """D's logits, as at test time, on each kind of phase-2 example made from `images`."""
        bad = self.pseudo_anomalies(images)
        kinds = {"real": images, "new": self.reconstruct(images), "old": bad["old"], "pseudo": bad["pseudo"]}
        return {kind: self.judge(made).float().cpu() for kind, made in kinds.items()}

    def shuffled_kind_logits(self, patches: Tensor) -> dict[str, Tensor]:
        """`kind_logits` in shuffled batches of train.batch_size, so that mixtures pair random
        patches as in training; returned in the order of `patches`."""
        order = torch.randperm(len(patches), generator=torch.Generator().manual_seed(self.config.train.seed))
        parts = [self.kind_logits(patches[chunk]) for chunk in order.split(self.config.train.batch_size)]
        return {kind: torch.cat([part[kind] for part in parts])[order.argsort()] for kind in parts[0]}

    def training_diagnostics(self, held_out: ClipDataset) -> dict:
        """On DIAGNOSTIC_FRAMES frames of the held-out training videos: whether D, as it scores test
        frames, tells phase 2's good kinds from its bad ones (`kind_auc`), and whether D(G(x)) follows
        the foreground area of normal frames (Spearman, per patch and per frame score; foreground as
        data/foreground.py defines it). A score that rises with foreground favours busy frames,
        whatever their objects: that ranks frames with bikes and carts as normal."""
        indices = np.linspace(0, len(held_out) - 1, min(DIAGNOSTIC_FRAMES, len(held_out))).round().astype(int)
        patches = self.grid.cut(held_out.batch(indices)[:, -1].to(self.device))
        logits = self.shuffled_kind_logits(patches.flatten(0, 1))
        masks = torch.from_numpy(foreground_masks(held_out.frames, held_out.last_frames(indices)))[:, None].float()
        patch_area = self.grid.cut(masks).mean(dim=(2, 3, 4))
        patch_scores = logits["new"].view(patch_area.shape)
        return {
            "frames": len(indices),
            "patches_per_frame": len(self.grid),
            "kind_auc": kind_aucs(logits),
            "mean_logit": {kind: float(value.mean()) for kind, value in logits.items()},
            "foreground": {
                "levels": FOREGROUND_LEVELS,
                "mean_area": float(masks.mean()),
                "spearman_patch": rank_correlation(patch_scores.flatten(), patch_area.flatten()),
                "spearman_frame": rank_correlation(patch_scores.amin(dim=1), masks.mean(dim=(1, 2, 3))),
            },
        }
