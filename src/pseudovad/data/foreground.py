"""Foreground by background subtraction: how much of a frame is moving things, with no label.

A diagnostic asks whether a score follows how many objects a normal frame holds (OGNet's D may learn
"crisp objects = good", which would rank frames with bikes and carts as normal). For a fixed camera
the background is the per-pixel median of a video's frames (each pixel is background most of the
time); a pixel is foreground where its frame differs from that median by more than
FOREGROUND_LEVELS gray levels in any channel. 25 of 255 (10%) is above JPEG noise and the slow
lighting drift of surveillance footage, and below the contrast of a person against the ground.
"""

from __future__ import annotations

import numpy as np

from pseudovad.data.cache import FrameArray

FOREGROUND_LEVELS = 25


def foreground_masks(frames: FrameArray, positions: np.ndarray) -> np.ndarray:
    """Boolean (N, H, W) foreground of the frames at `positions` (indices into `frames.frames`),
    each against the median of its own video."""
    videos = np.searchsorted(frames.offsets, positions, side="right") - 1
    masks = np.empty((len(positions), *frames.frames.shape[1:3]), dtype=bool)
    for video in np.unique(videos):
        background = np.median(frames.video(video), axis=0)
        chosen = videos == video
        difference = np.abs(frames.frames[positions[chosen]].astype(np.float32) - background)
        masks[chosen] = (difference > FOREGROUND_LEVELS).any(axis=-1)
    return masks
