"""What a pseudo-anomaly source is: a registered class that turns clip indices into pseudo-anomalous clips."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from pseudovad.config import Config, option
from pseudovad.data.clips import ClipDataset, to_model_range


@dataclass
class SourceOptions:
    """Options every source has: its registered `name` and its `share` of the pseudo-anomalies."""

    name: str
    share: float = option(1.0, above=0.0)


@dataclass
class PseudoClips:
    """`clips` (n, t+1, C, H, W): the pseudo-anomalous inputs, then a real normal frame as target.
    `abnormal` (n, C, H, W): the frame that would continue the inputs' anomaly (for a hinge loss).
    `mask` (n, 1, H, W) or None: where a trainable source may perturb the clip."""

    clips: Tensor
    abnormal: Tensor
    mask: Tensor | None = None


class Source:
    """Base of every pseudo-anomaly source. `make` must be a pure function of its arguments (the
    batch of a step is then the same after a resume); trainable sources also own networks."""

    Options: ClassVar[type] = SourceOptions
    trainable: ClassVar[bool] = False
    revision: ClassVar[int] = 1  # raised when the same options train differently: see pipelines.behaviour_revisions

    def __init__(self, options: SourceOptions, config: Config) -> None:
        self.options = options
        self.config = config
        self.networks: dict[str, nn.Module] = {}

    @classmethod
    def check_config(cls, options: SourceOptions, config: Config) -> str | None:
        """Why this source cannot work with `config`, or None."""
        return None

    def make_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """Optimisers of `networks`, made once when training starts (scoring needs none)."""
        return {}

    def make(self, clips: ClipDataset, indices: np.ndarray, rng: np.random.Generator) -> PseudoClips:
        raise NotImplementedError

    def perturb(self, clips: Tensor, mask: Tensor) -> Tensor:
        """A trainable source's change of normal `clips` (n, t+1, C, H, W) inside `mask` (n, 1, H, W),
        called by the objective at every step, since what it makes depends on networks that `make`, a
        pure function of indices, cannot hold. Only sources with `trainable = True` implement it."""
        raise NotImplementedError

    def losses(self, predict: Callable[[Tensor], Tensor], perturbed: Tensor, counted: Tensor) -> dict[str, Tensor]:
        """A trainable source's loss for each of its `networks` (same keys) in one step, from clips it
        has just perturbed and the predictor's `predict` (frozen by the caller, so the gradient reaches
        this source's networks only); `counted` marks the rows that are this source's samples (under
        DDP every row is passed, so every process runs the same backward). Trainable sources only."""
        raise NotImplementedError


def frames_at(clips: ClipDataset, positions: np.ndarray) -> Tensor:
    """Frames at global frame positions (any shape of indices) as (..., C, H, W) in [-1, 1]."""
    return to_model_range(clips.frames.frames[positions])


def box_size(size: list[float], height: int, width: int, rng: np.random.Generator) -> tuple[int, int]:
    """A box's (height, width): each side its own draw from `size`, a [smallest, largest] fraction of the
    frame's side, and at least 2 pixels (a smooth border needs room)."""
    return tuple(max(2, round(rng.uniform(*size) * side)) for side in (height, width))


def box_on_change(change: Tensor, ph: int, pw: int, rng: np.random.Generator) -> tuple[int, int]:
    """Top-left corner of a (ph, pw) box inside a frame, centred on a pixel drawn in proportion to
    `change` (H, W): on a fixed camera, where something moves rather than on still background. Uniform
    where nothing changes; a box at the frame's edge is shifted inside."""
    height, width = change.shape
    weights = change.flatten().double().numpy() + 1e-12
    cy, cx = divmod(int(rng.choice(weights.size, p=weights / weights.sum())), width)
    return min(max(cy - ph // 2, 0), height - ph), min(max(cx - pw // 2, 0), width - pw)


