"""Spatial pseudo-anomalies from real frames: a foreign patch moving through the scene.

A patch is cut from another training video (or, with one video, a clip of it drawn at random), given a
smooth border, and slid across the input frames along a straight line at a random speed: an object
that does not belong, moving as objects do (LNTRA's patch pseudo-anomaly, with patches of the
training data itself rather than CIFAR images). The target is the real frame without the patch.
With `cut: moving` the patch is cut where the donor clip moves, so it holds one of the scene's own
moving objects (a pedestrian) rather than background, now gliding where and how fast nothing does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from pseudovad.config import Config, option
from pseudovad.data.clips import ClipDataset
from pseudovad.data.patches import smooth_box
from pseudovad.pseudo_anomalies.base import PseudoClips, Source, SourceOptions, box_on_change, box_size, frames_at
from pseudovad.registry import SOURCES


@SOURCES.register("patch")
class MovingPatch(Source):
    """A smooth-bordered patch of another video sliding across the inputs.

    `size`: the patch side as a fraction of the frame side, drawn from [size[0], size[1]] for each
    side; `speed`: the most it moves per frame, as a fraction of the frame width; `border`: the
    fraction of each half-side over which it fades in; `cut`: where in the donor frame the patch is
    cut, anywhere or centred where the donor clip moves (its consecutive frames differ)."""

    @dataclass
    class Options(SourceOptions):
        size: list[float] = option(factory=lambda: [0.1, 0.4], above=0.0, at_most=1.0)
        speed: float = option(0.04, at_least=0.0, at_most=1.0)
        border: float = option(0.2, at_least=0.0, at_most=1.0)
        cut: str = option("anywhere", choices=("anywhere", "moving"))

    @classmethod
    def check_config(cls, options: Options, config: Config) -> str | None:
        low_high = options.size
        return None if len(low_high) == 2 and low_high[0] <= low_high[1] else "patch.size must be [smallest, largest]"

    def make(self, clips: ClipDataset, indices: np.ndarray, rng: np.random.Generator) -> PseudoClips:
        normal = clips.batch(indices)
        made = normal.clone()
        abnormal = normal[:, -1].clone()
        t = clips.clip_length
        _, _, height, width = abnormal.shape
        for row, index in enumerate(indices):
            ph, pw = box_size(self.options.size, height, width, rng)
            patch = self._donor_patch(clips, index, ph, pw, rng)
            weight = torch.from_numpy(smooth_box(ph, pw, self.options.border)).float()
            path = self._path(ph, pw, height, width, t, rng)
            for step, (y, x) in enumerate(path):
                target = made[row, step] if step < t else abnormal[row]
                region = target[:, y : y + ph, x : x + pw]
                region.mul_(1 - weight).add_(patch * weight)
        return PseudoClips(clips=made, abnormal=abnormal)

    def _donor_patch(self, clips: ClipDataset, index: int, ph: int, pw: int, rng: np.random.Generator) -> torch.Tensor:
        """A (C, ph, pw) crop of a frame of another video; if the video is alone, of one of its clips drawn at
        random (possibly its own)."""
        own = clips.video_bounds[index][0]
        others = np.flatnonzero(clips.video_bounds[:, 0] != own)
        donor = int(rng.choice(others)) if others.size else int(rng.integers(len(clips)))
        if self.options.cut == "moving":  # cut from the clip's first frame, around where its frames change
            clip = frames_at(clips, clips.starts[donor] + np.arange(clips.clip_length + 1))
            frame = clip[0]
            y, x = box_on_change(clip.diff(dim=0).abs().sum(dim=(0, 1)), ph, pw, rng)
        else:
            frame = frames_at(clips, np.asarray([clips.starts[donor]]))[0]
            y, x = int(rng.integers(frame.shape[-2] - ph + 1)), int(rng.integers(frame.shape[-1] - pw + 1))
        return frame[:, y : y + ph, x : x + pw]

    def _path(self, ph: int, pw: int, height: int, width: int, t: int, rng: np.random.Generator) -> list[tuple[int, int]]:
        """Top-left corners for the t inputs and the frame after them: a straight line, inside the frame."""
        angle = rng.uniform(0, 2 * np.pi)
        speed = rng.uniform(0, self.options.speed) * width
        step = np.array([np.sin(angle), np.cos(angle)]) * speed
        limits = np.array([height - ph, width - pw], dtype=float)
        start = rng.uniform(0, 1, size=2) * limits
        points = np.clip(start + np.arange(t + 1)[:, None] * step, 0, limits)
        return [(int(round(y)), int(round(x))) for y, x in points]
