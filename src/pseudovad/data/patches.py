"""A fixed grid of patches that covers a frame, for methods that judge patches rather than frames.

OGNet's networks see 45x45 patches of frames kept at native resolution (the authors' `frame_size`
is "one side size of the square patch to be extracted from each frame"), so that a pedestrian keeps
its pixels instead of being squashed with the whole frame. The grid has ceil(side / patch) patches
along each side, spread evenly from edge to edge: every pixel is in a patch, and neighbours overlap
by a few pixels where the patch does not divide the side (Ped2's 240 rows: 6 rows of 45 at 0, 39,
..., 195; its 360 columns: 8 columns of 45, no overlap). A patch as large as the frame is the whole
frame, so one code path serves both.

`smooth_box` is the soft-edged weight a pasted patch is blended with, shared by the pseudo-anomaly
sources and the pseudo-validation set's injected anomalies.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor


def _starts(side: int, patch: int) -> list[int]:
    """Where the patches along one side begin: ceil(side / patch) of them, first and last at the edges."""
    return np.linspace(0, side - patch, math.ceil(side / patch)).round().astype(int).tolist()


@dataclass(frozen=True)
class PatchGrid:
    """The patches (patch_height x patch_width) covering a height x width frame, in row-major order."""

    height: int
    width: int
    patch_height: int
    patch_width: int

    def __post_init__(self) -> None:
        if not (0 < self.patch_height <= self.height and 0 < self.patch_width <= self.width):
            raise ValueError(f"a {self.patch_height}x{self.patch_width} patch does not fit a {self.height}x{self.width} frame")

    @property
    def corners(self) -> list[tuple[int, int]]:
        """(top, left) of every patch."""
        return [(top, left) for top in _starts(self.height, self.patch_height) for left in _starts(self.width, self.patch_width)]

    def __len__(self) -> int:
        return len(self.corners)

    def cut(self, frames: Tensor) -> Tensor:
        """(B, C, H, W) -> (B, P, C, patch_height, patch_width), patch p of frame b at [b, p]."""
        return torch.stack([frames[..., top : top + self.patch_height, left : left + self.patch_width]
                            for top, left in self.corners], dim=1)

    def paste(self, patches: Tensor) -> Tensor:
        """The inverse of `cut`: (B, P, C, h, w) -> (B, C, H, W); where patches overlap, the later one shows."""
        frames = patches.new_empty(patches.shape[0], patches.shape[2], self.height, self.width)
        for index, (top, left) in enumerate(self.corners):
            frames[..., top : top + self.patch_height, left : left + self.patch_width] = patches[:, index]
        return frames


def smooth_box(height: int, width: int, border: float) -> np.ndarray:
    """(height, width) weights: 1 inside, falling linearly to 0 over the outer `border` fraction of
    each half-side, so a pasted patch has no hard edge."""
    def ramp(size: int) -> np.ndarray:
        distance = np.minimum(np.arange(size) + 1, size - np.arange(size))
        return np.clip(distance / max(border * size / 2, 1.0), 0.0, 1.0)

    return np.outer(ramp(height), ramp(width))
