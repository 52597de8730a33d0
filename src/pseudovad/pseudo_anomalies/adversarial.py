"""A learned, bounded pseudo-anomaly: X_P = X_N + G(X_N) ("Exploiting autoencoder's weakness",
Astrid et al. 2024), the thesis's GAN idea made so that it cannot run away.

G sees a clip's t input frames (never its target) and proposes a change of each. The bound is explicit:
the change is `amplitude * tanh(.)` inside a smooth box covering at most `area` of the frame (drawn at
random per sample) and zero outside it. The perturbation's continuation, the change of the target frame,
is the last input's change carried one frame on, as a wrong object stays where it was last seen. The
predictor learns to output the clean target from the perturbed inputs; G learns perturbations the
predictor still carries into its prediction (its loss is the predictor's error against the *perturbed*
target), so it keeps finding what the predictor would wrongly reproduce, within the bound.

That loss is lowest for no change at all, and left to choose its size G shrinks its change to a few
grey levels (measured on Ped2 at 128 px: a mean of 2-5 levels in 255 after 4000 steps, docs/RESULTS.md).
`size` > 0 fixes the size: each input frame's change is rescaled to that RMS inside its box (as a
fraction of `amplitude`, still clamped to the bound), so G chooses *what* to change, never *how much*,
and cannot leave the last input, and so the continuation, unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from pseudovad.config import Config, option
from pseudovad.data.clips import ClipDataset
from pseudovad.data.patches import smooth_box
from pseudovad.losses import intensity_loss, masked_mean
from pseudovad.models.unet import UNet
from pseudovad.pseudo_anomalies.base import PseudoClips, Source, SourceOptions
from pseudovad.registry import SOURCES


@SOURCES.register("adversarial")
class AdversarialPerturbation(Source):
    """A bounded perturbation made by a small U-Net trained against the predictor.

    Revision 2 (f1cd1b6, 2026-12-01): G's change no longer reaches the target frame, which until then
    trained the predictor to carry the change on instead of removing it. Revision 3 (2026-12-07): G's
    step leaves the predictor's BatchNorm statistics as they were (only with generator.norm: batch did
    it move them, with perturbed clips the predictor is not trained on). Revision 4 (2026-12-07): G sees
    the input frames only, and the continuation is the last input's change. Until then G also saw the
    target and chose the continuation's change freely: with it at zero, G's loss rewarded inputs the
    predictor *removes* well, the opposite of an adversary (a flaw found in review; no run measured it)."""

    trainable = True
    revision = 4

    @dataclass
    class Options(SourceOptions):
        amplitude: float = option(0.5, above=0.0, at_most=2.0)   # largest |change| of a pixel, in [-1, 1] units
        area: float = option(0.1, above=0.0, at_most=1.0)        # largest fraction of the frame the box covers
        width: int = option(8, at_least=1, at_most=256)          # G's U-Net width (2 levels)
        lr: float = option(1e-4, above=0.0, at_most=10.0)
        size: float = option(0.0, at_least=0.0, at_most=1.0)     # RMS of the change in its box, of amplitude (0: G's own)

    @classmethod
    def check_config(cls, options: Options, config: Config) -> str | None:
        if config.data.height % 2 or config.data.width % 2:
            return "the adversarial source's 2-level U-Net needs an even data.height and data.width"
        return None

    def __init__(self, options: Options, config: Config) -> None:
        super().__init__(options, config)
        channels = config.data.clip_length * config.data.channels
        self.generator = UNet(channels, channels, options.width, levels=2)
        self.networks = {"generator": self.generator}

    def make_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"generator": torch.optim.Adam(self.generator.parameters(), lr=self.options.lr)}

    def make(self, clips: ClipDataset, indices: np.ndarray, rng: np.random.Generator) -> PseudoClips:
        """The normal clips and, per sample, the smooth box G may change (the change is made by `perturb`)."""
        normal = clips.batch(indices)
        _, _, _, height, width = normal.shape
        masks = torch.zeros(len(indices), 1, height, width)
        for row in range(len(indices)):
            side = np.sqrt(rng.uniform(0.25, 1.0) * self.options.area)
            ph, pw = max(2, int(side * height)), max(2, int(side * width))
            y, x = int(rng.integers(height - ph + 1)), int(rng.integers(width - pw + 1))
            masks[row, 0, y : y + ph, x : x + pw] = torch.from_numpy(smooth_box(ph, pw, 0.5)).float()
        return PseudoClips(clips=normal, abnormal=normal[:, -1].clone(), mask=masks)

    def perturbation(self, clips: Tensor, mask: Tensor) -> Tensor:
        """G's change to every frame of `clips` (B, t+1, C, H, W), made from the t inputs alone, the
        last input's change repeated for the target frame: |change| <= amplitude * mask."""
        inputs = clips[:, :-1]
        change = self.generator(inputs.flatten(1, 2)).float().view_as(inputs)  # tanh output, in [-1, 1]
        if self.options.size > 0:
            change = self._sized(change, mask)
        change = torch.cat([change, change[:, -1:]], dim=1)
        return self.options.amplitude * change * mask.unsqueeze(1)

    def _sized(self, change: Tensor, mask: Tensor) -> Tensor:
        """Each frame's `change` rescaled to RMS `size` inside the box (weighted by the box's smooth
        mask), then clamped to [-1, 1] so the amplitude bound holds whatever G outputs."""
        weight = mask.unsqueeze(1).expand_as(change)
        power = (change.square() * weight).sum(dim=(2, 3, 4)) / weight.sum(dim=(2, 3, 4)).clamp_min(1e-6)
        scale = self.options.size / power.sqrt().clamp_min(1e-6)
        return (change * scale[..., None, None, None]).clamp(-1, 1)

    def perturb(self, clips: Tensor, mask: Tensor) -> Tensor:
        """X_P = X_N + G(X_N), kept in [-1, 1] (clamping never enlarges the change)."""
        return (clips + self.perturbation(clips, mask)).clamp(-1, 1)

    def losses(self, predict: Callable[[Tensor], Tensor], perturbed: Tensor, counted: Tensor) -> dict[str, Tensor]:
        """G's loss: the predictor's error against the *perturbed* target, lowest where the predictor
        carries G's change on into its prediction, which is what G searches for."""
        passed = intensity_loss(predict(perturbed), perturbed[:, -1], per_sample=True)
        return {"generator": masked_mean(passed, counted)}
