"""Clips for frame prediction: `t` input frames and the frame that follows them.

Every valid window of every video is one sample, so an epoch covers frames, not videos.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from pseudovad.data.cache import FrameArray
from pseudovad.errors import DataError


def to_model_range(frames: np.ndarray) -> Tensor:
    """uint8 (..., H, W, C) -> float32 (..., C, H, W) in [-1, 1]."""
    tensor = torch.from_numpy(np.ascontiguousarray(frames)).float().div_(127.5).sub_(1.0)
    return tensor.movedim(-1, -3)


class ClipDataset(torch.utils.data.Dataset):
    """Sample i is (clip_length + 1, C, H, W): the inputs followed by the target frame."""

    def __init__(self, frames: FrameArray, clip_length: int) -> None:
        self.frames = frames
        self.clip_length = clip_length
        starts = []
        for index, video in enumerate(frames.videos):
            if video.num_frames <= clip_length:
                raise DataError(
                    f"{video.path}: {video.num_frames} frames is too short for a clip of "
                    f"{clip_length} inputs + 1 target; remove the video or lower data.clip_length"
                )
            starts.append(frames.offsets[index] + np.arange(video.num_frames - clip_length))
        self.starts = np.concatenate(starts)

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, index: int) -> Tensor:
        return self.batch(np.array([index]))[0]

    def batch(self, indices: np.ndarray) -> Tensor:
        """Clips for many indices at once: (B, clip_length + 1, C, H, W)."""
        window = self.starts[indices][:, None] + np.arange(self.clip_length + 1)
        return to_model_range(self.frames.frames[window])
