"""Clips for frame prediction: `t` input frames and the frame that follows them.

Every valid window of every video is one sample, so an epoch covers frames, not videos.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from pseudovad.data.cache import FrameArray
from pseudovad.data.dataset import Video
from pseudovad.errors import DataError


def to_model_range(frames: np.ndarray) -> Tensor:
    """uint8 (..., H, W, C) -> float32 (..., C, H, W) in [-1, 1]."""
    return tensor_to_model_range(torch.from_numpy(np.ascontiguousarray(frames)))


def tensor_to_model_range(frames: Tensor) -> Tensor:
    """to_model_range on a tensor, without in-place steps, so that an exported scorer (which takes the
    camera's uint8 frames as its input) traces the very same conversion as training and scoring."""
    return (frames.float() / 127.5 - 1.0).movedim(-1, -3)


def _held_out_frames(video: Video, clip_length: int, holdout: float) -> int:
    """How many of a video's last frames are held out: the fraction, at least one clip, leaving one to train on."""
    held = max(math.ceil(holdout * video.num_frames), clip_length + 1)
    if video.num_frames - held <= clip_length:
        raise DataError(
            f"{video.path}: {video.num_frames} frames is too short to hold out {held} for calibration "
            f"(data.holdout {holdout:g}) and still train on a clip of {clip_length + 1}; lower data.holdout or use longer videos"
        )
    return held


class ClipDataset(torch.utils.data.Dataset):
    """Sample i is (clip_length + 1, C, H, W): the inputs followed by the target frame.

    With `holdout` > 0 each video is cut in time: its last `holdout` fraction (at least one clip) is the
    held-out part, the rest the training part, and `held_out` picks which one the clips come from. No
    clip crosses the cut, so the held-out frames are frames training never saw.
    """

    def __init__(self, frames: FrameArray, clip_length: int, holdout: float = 0.0, held_out: bool = False) -> None:
        self.frames = frames
        self.clip_length = clip_length
        starts, video_bounds = [], []
        for index, video in enumerate(frames.videos):
            if video.num_frames <= clip_length:
                raise DataError(
                    f"{video.path}: {video.num_frames} frames is too short for a clip of "
                    f"{clip_length} inputs + 1 target; remove the video or lower data.clip_length"
                )
            first, end = frames.offsets[index], frames.offsets[index + 1]
            if holdout > 0:
                cut = end - _held_out_frames(video, clip_length, holdout)
                first, end = (cut, end) if held_out else (first, cut)
            starts.append(first + np.arange(end - first - clip_length))
            video_bounds.append(np.tile([first, end], (end - first - clip_length, 1)))
        self.starts = np.concatenate(starts)
        self.video_bounds = np.concatenate(video_bounds)

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, index: int) -> Tensor:
        return self.batch(np.array([index]))[0]

    def last_frames(self, indices: np.ndarray) -> np.ndarray:
        """Where the last frame of each clip lies in `frames.frames`."""
        return self.starts[indices] + self.clip_length

    def batch(self, indices: np.ndarray, skip: int = 1) -> Tensor:
        """Clips for many indices at once: (B, clip_length + 1, C, H, W).

        With `skip` > 1 the inputs are `skip` frames apart (abnormally fast motion, one `skip` for the
        whole batch: the thesis's `skip_frames` objective) and the target is the frame right after the
        last input; a window that would run past its video's end is moved back to fit. The pseudo-anomaly
        source of the same name (pseudo_anomalies/temporal.py) draws a stride per sample and a target.
        """
        offsets = np.append(np.arange(self.clip_length) * skip, (self.clip_length - 1) * skip + 1)
        first, end = self.video_bounds[indices].T
        starts = np.minimum(self.starts[indices], end - offsets[-1] - 1)
        if np.any(starts < first):
            raise DataError(f"a training video is shorter than a clip with skip {skip} ({offsets[-1] + 1} frames)")
        return to_model_range(self.frames.frames[starts[:, None] + offsets])
