"""Temporal pseudo-anomalies from real frames: the right frames in the wrong order or at the wrong speed.

The inputs of a normal clip starting at frame s are s, s+1, ..., s+t-1 and its target is s+t. Each
source below rearranges the inputs; the target stays a real frame, chosen by `target` in SkipFrames and
Reverse (Repeat and TemporalCuboid keep the clip's own target s+t):
- `next`: the real frame right after the last input frame (what really happened next);
- `clip`: the normal clip's own target s+t.
A target that is also one of the inputs lets the predictor learn to copy it: SkipFrames' `clip` is input
t/k when the stride k divides t, and Reverse's `next` (s+1) is always an input. Each default is the
target that is never an input (SkipFrames `next`, Reverse `clip`).
`abnormal` is the frame the rearranged motion would reach next, for the optional hinge.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from pseudovad.config import Config, option
from pseudovad.data.clips import ClipDataset
from pseudovad.data.patches import smooth_box
from pseudovad.errors import DataError
from pseudovad.pseudo_anomalies.base import PseudoClips, Source, SourceOptions, box_on_change, box_size, frames_at
from pseudovad.registry import SOURCES


def _fit(clips: ClipDataset, index: int, low: int, high: int) -> int:
    """The clip's start moved so that frames start+low .. start+high lie in its video."""
    first, end = clips.video_bounds[index]
    start = min(max(clips.starts[index], first - low), end - 1 - high)
    if start + low < first:
        raise DataError(f"a training video of {end - first} frames is too short for this pseudo-anomaly "
                        f"(it spans {high - low + 1} frames); lower the stride or data.clip_length")
    return int(start)


def rearranged(clips: ClipDataset, index: int, mode: str, k: int = 1, freeze_last: bool = True) -> list[int]:
    """The frames of clip `index` in the wrong time, the t inputs then where that motion goes next:
    `skip`, every k-th frame; `reverse`, backwards from the last input; `freeze`, one frame throughout
    (the last input's, or with `freeze_last` false the first's). The clip's start is moved (_fit) so
    that every frame, and the frame after the inputs, lie in its video. One implementation for the
    whole-frame sources and for the cuboid, which rearranges a box only."""
    t = clips.clip_length
    if mode == "skip":
        s = _fit(clips, index, 0, t * k)
        return [s + j * k for j in range(t + 1)]
    if mode == "reverse":
        s = _fit(clips, index, -1, t)
        return [s + t - 1 - j for j in range(t + 1)]
    s = _fit(clips, index, 0, t)
    return [s + t - 1 if freeze_last else s] * (t + 1)


def _assemble(clips: ClipDataset, positions: list[list[int]]) -> PseudoClips:
    """positions: per sample, the t input frames, the target frame and the abnormal frame."""
    frames = frames_at(clips, np.asarray(positions))
    return PseudoClips(clips=frames[:, :-1], abnormal=frames[:, -1])


@SOURCES.register("skip_frames")
class SkipFrames(Source):
    """Inputs every k-th frame (k drawn from `strides`): motion k times too fast (LNTRA's skip frames)."""

    @dataclass
    class Options(SourceOptions):
        strides: list[int] = option(factory=lambda: [2, 3, 4, 5], at_least=2, at_most=32)
        target: str = option("next", choices=("next", "clip"))

    @classmethod
    def check_config(cls, options: Options, config: Config) -> str | None:
        return None if options.strides else "skip_frames needs at least one stride"

    def make(self, clips: ClipDataset, indices: np.ndarray, rng: np.random.Generator) -> PseudoClips:
        t = clips.clip_length
        positions = []
        for index in indices:
            times = rearranged(clips, index, "skip", int(rng.choice(self.options.strides)))
            target = times[t - 1] + 1 if self.options.target == "next" else times[0] + t
            positions.append([*times[:t], target, times[t]])
        return _assemble(clips, positions)


@SOURCES.register("reverse")
class Reverse(Source):
    """Inputs in reverse order: everything moves backwards ("moving backward", Astrid et al. 2022)."""

    @dataclass
    class Options(SourceOptions):
        target: str = option("clip", choices=("next", "clip"))

    def make(self, clips: ClipDataset, indices: np.ndarray, rng: np.random.Generator) -> PseudoClips:
        t = clips.clip_length
        positions = []
        for index in indices:
            times = rearranged(clips, index, "reverse")  # s+t-1 down to s, then s-1
            target = times[t - 1] + 1 if self.options.target == "next" else times[0] + 1
            positions.append([*times[:t], target, times[t]])
        return _assemble(clips, positions)


@SOURCES.register("repeat")
class Repeat(Source):
    """One frame repeated as every input: the scene frozen, while the target moves on."""

    @dataclass
    class Options(SourceOptions):
        pass

    def make(self, clips: ClipDataset, indices: np.ndarray, rng: np.random.Generator) -> PseudoClips:
        t = clips.clip_length
        positions = []
        for index in indices:
            times = rearranged(clips, index, "freeze")  # s+t-1 throughout
            positions.append([*times[:t], times[0] + 1, times[t]])
        return _assemble(clips, positions)


@SOURCES.register("cuboid")
class TemporalCuboid(Source):
    """Only a box of the inputs is rearranged in time (FastAno's temporally mixed patch cuboids): inside
    a smooth-bordered box the scene runs `mode` (k times too fast, backwards, or frozen) while the rest
    of the frame runs normally, as one object would that moves wrongly among normal ones. A whole-frame
    rearrangement could be learnt as "everything is fast"; this one must be learnt locally.
    `size` bounds the box side as a fraction of the frame side. `place: moving` centres the box on a
    pixel drawn in proportion to how much the rearrangement changes the inputs there: on a fixed camera
    a box drawn anywhere often holds only still background, which looks the same at any speed, so the "pseudo-anomaly" is a normal clip."""

    @dataclass
    class Options(SourceOptions):
        mode: str = option("skip", choices=("skip", "reverse", "freeze"))
        strides: list[int] = option(factory=lambda: [2, 3, 4, 5], at_least=2, at_most=32)
        size: list[float] = option(factory=lambda: [0.2, 0.5], above=0.0, at_most=1.0)
        border: float = option(0.3, at_least=0.0, at_most=1.0)
        place: str = option("anywhere", choices=("anywhere", "moving"))

    @classmethod
    def check_config(cls, options: Options, config: Config) -> str | None:
        if len(options.size) != 2 or options.size[0] > options.size[1]:
            return "cuboid.size must be [smallest, largest]"
        return None if options.strides else "cuboid needs at least one stride"

    def make(self, clips: ClipDataset, indices: np.ndarray, rng: np.random.Generator) -> PseudoClips:
        t = clips.clip_length
        normal = clips.batch(indices)
        made, abnormal = normal.clone(), normal[:, -1].clone()
        height, width = normal.shape[-2:]
        for row, index in enumerate(indices):
            k = int(rng.choice(self.options.strides)) if self.options.mode == "skip" else 1
            wrong = rearranged(clips, index, self.options.mode, k, freeze_last=False)
            frames = frames_at(clips, np.asarray(wrong))  # t inputs, then the abnormal continuation
            ph, pw = box_size(self.options.size, height, width, rng)
            y, x = self._corner(frames[:t], normal[row, :t], ph, pw, rng)
            mask = torch.zeros(1, height, width)
            mask[:, y : y + ph, x : x + pw] = torch.from_numpy(smooth_box(ph, pw, self.options.border)).float()
            made[row, :t] = normal[row, :t] * (1 - mask) + frames[:t] * mask
            abnormal[row] = normal[row, -1] * (1 - mask) + frames[t] * mask
        return PseudoClips(clips=made, abnormal=abnormal)

    def _corner(self, wrong: torch.Tensor, normal: torch.Tensor, ph: int, pw: int,
                rng: np.random.Generator) -> tuple[int, int]:
        """The box's top-left corner: uniform, or with `place: moving` centred on a pixel drawn in
        proportion to how much the `wrong` inputs differ there from the `normal` ones."""
        height, width = normal.shape[-2:]
        if self.options.place == "anywhere":
            return int(rng.integers(height - ph + 1)), int(rng.integers(width - pw + 1))
        return box_on_change((wrong - normal).abs().sum(dim=(0, 1)), ph, pw, rng)
