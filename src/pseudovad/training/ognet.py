"""OGNet, "Old is Gold" (Zaheer et al., CVPR 2020), as a pipeline: the discriminator of an
adversarial autoencoder, fine-tuned on pseudo-anomalies, is the anomaly detector.

Phase 1 (all but the last `ognet.phase2_iterations` steps): the generator G learns to reconstruct
frames corrupted with Gaussian noise (0.5 MSE + 0.5 adversarial) and the discriminator D learns
real frames against reconstructions (BCE). After `ognet.old_at` steps a frozen copy G_old is kept.
Phase 2: G and G_old are frozen and D alone is fine-tuned to call G_old(x) and the mixtures
G_new((G_old(x_i) + G_old(x_j)) / 2) bad and G_new(x) and x good. A frame's score is D(G(x)).

OGNet judges single frames: it sees the last frame of each clip, so the frames it scores are the
ones FFP scores. The pipeline counts its own steps and phase in a `progress` module, so the
generic checkpoint carries them (with G_old) and a run resumes mid-phase-2 exactly.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import Tensor, nn

from pseudovad.config import Config
from pseudovad.data.clips import ClipDataset
from pseudovad.losses import intensity_loss
from pseudovad.models.ognet import OGNetDiscriminator, OGNetGenerator, mixed_pseudo_anomalies
from pseudovad.registry import PIPELINES
from pseudovad.training.base import Pipeline, Score, frozen


def _bce(logits: Tensor, target: float) -> Tensor:
    """BCE of D's sigmoid output against a constant label (on logits: same loss, no log(0))."""
    return nn.functional.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


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
        self.generator = OGNetGenerator(channels, options.width).to(device)
        self.old_generator = copy.deepcopy(self.generator).requires_grad_(False)
        self.discriminator = OGNetDiscriminator(channels, config.data.height, config.data.width, options.width).to(device)
        self.progress = TrainingProgress().to(device)
        self.optimizers = {
            "generator": torch.optim.Adam(self.generator.parameters(), lr=config.train.lr_generator),
            "discriminator": torch.optim.Adam(self.discriminator.parameters(), lr=config.train.lr_discriminator),
            "discriminator_finetune": torch.optim.Adam(self.discriminator.parameters(), lr=options.finetune_lr),
        }

    @classmethod
    def check_config(cls, config: Config) -> str | None:
        options = config.ognet
        phase2_start = config.train.iterations - options.phase2_iterations
        if not 0 < options.old_at < phase2_start:
            return (f"ognet.old_at ({options.old_at}) must lie inside phase 1, which runs from step 0 to step "
                    f"{phase2_start} (train.iterations {config.train.iterations} - ognet.phase2_iterations "
                    f"{options.phase2_iterations}); lower ognet.old_at or ognet.phase2_iterations")
        if min(config.data.height, config.data.width) < 17:
            return f"OGNet's generator needs frames of at least 17x17, got {config.data.height}x{config.data.width}"
        return None

    @property
    def has_old_generator(self) -> bool:
        return int(self.progress.iteration) > self.config.ognet.old_at

    def make_batch(self, clips: ClipDataset, indices: np.ndarray, step: int) -> dict[str, Tensor]:
        return {"frames": clips.batch(indices)[:, -1]}

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
        """Phase 1: D on real frames vs reconstructions of noisy frames, then G with D frozen."""
        options = self.config.ognet
        self.generator.train()
        self.discriminator.train()
        noisy = frames + options.noise_std * torch.randn_like(frames)
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
        """Phase 2: only D learns, with the authors' weights for each kind of example."""
        options = self.config.ognet
        bad = self.pseudo_anomalies(frames)
        reconstruction = self.reconstruct(frames)
        self.discriminator.train()
        terms = {
            "old": _bce(self.run_discriminator(bad["old"]), 0.0),
            "pseudo": _bce(self.run_discriminator(bad["pseudo"]), 0.0),
            "new": _bce(self.run_discriminator(reconstruction), 1.0),
            "real": _bce(self.run_discriminator(frames), 1.0),
        }
        weights = {"old": options.weight_old, "pseudo": options.weight_pseudo, "new": options.weight_new, "real": options.weight_real}
        total = sum(weights[name] * value for name, value in terms.items())
        self.apply("discriminator_finetune", total, terms)
        return {"finetune": total.item(), **{f"finetune_{k}": v.item() for k, v in terms.items()}}

    @torch.inference_mode()
    def predict(self, clips: Tensor) -> Tensor:
        """G(x) of each clip's last frame."""
        return self.reconstruct(clips[:, -1])

    @torch.inference_mode()
    def score(self, clips: Tensor) -> dict[str, Tensor]:
        """D(G(x)), high = normal. Reported as D's logit: the same order as the probability, without
        the ties float32 makes when the sigmoid saturates."""
        self.discriminator.eval()
        return {"ognet": self.run_discriminator(self.predict(clips))}

    @torch.inference_mode()
    def sample_images(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        frames = batch["clips"][:, -1]
        bad = self.pseudo_anomalies(frames)
        return {"frame": frames, "G(x)": self.reconstruct(frames), "G_old(x)": bad["old"], "pseudo-anomaly": bad["pseudo"]}
