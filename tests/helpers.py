"""What many tests share: tiny configs, a synthetic clip, a small labelled dataset, and a builder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from media import write_frames
from pseudovad.config import build_config
from pseudovad.training.base import Pipeline
from pseudovad.training.pipelines import build_pipeline

# Tiny networks at 32x32 for in-process pipelines: seconds on one CPU thread.
TINY: dict = {
    "data": {"height": 32, "width": 32, "channels": 1, "clip_length": 4},
    "generator": {"width": 4, "levels": 3},
    "discriminator": {"width": 4},
    "flow": {"levels": 2, "iterations": 5},
    "classifier": {"width": 4},
    "train": {"precision": "fp32"},  # exact and equally fast on every CPU
}

# The same on the command line (fp32, no channels_last: exact and fast on any CPU).
TINY_SET = [
    "--set", "data.height=32", "--set", "data.width=32",
    "--set", "generator.width=4", "--set", "generator.levels=3",
    "--set", "discriminator.width=4", "--set", "classifier.width=4",
    "--set", "flow.iterations=5",
    "--set", "train.precision=fp32", "--set", "train.channels_last=false",
    "--set", "loss.flow=2",  # all four of FFP's losses: synthetic_ffp itself drops the flow term
]


def tiny_config(pipeline: str = "ffp", **sections: dict):
    """TINY with `sections` merged over it (a section given whole, e.g. objective={...}, replaces)."""
    values = {**TINY, "pipeline": pipeline}
    for name, options in sections.items():
        merge = isinstance(options, dict) and "name" not in options
        values[name] = {**values.get(name, {}), **options} if merge else options
    return build_config(values)


def tiny_pipeline(pipeline: str = "ffp", training: bool = True, **sections: dict) -> Pipeline:
    torch.manual_seed(0)
    return build_pipeline(tiny_config(pipeline, **sections), torch.device("cpu"), training)


def moving_clips(batch: int = 2, size: int = 32) -> torch.Tensor:
    """A bright square moving right by one pixel per frame, in [-1, 1]: (batch, 5, 1, size, size)."""
    clips = torch.full((batch, 5, 1, size, size), -1.0)
    for t in range(5):
        clips[:, t, :, 5:10, 3 + t : 8 + t] = 1.0
    return clips


TEST_LENGTHS = (8, 7)


def make_dataset(root: Path) -> Path:
    """A valid FFP-layout dataset: 2 training videos, 2 test videos with MNAD labels."""
    for i in (1, 2):
        write_frames(root / "training" / "frames" / f"{i:02d}", 8, size=(16, 16))
    for i, length in enumerate(TEST_LENGTHS, start=1):
        write_frames(root / "testing" / "frames" / f"{i:02d}", length, size=(16, 16))
    labels = np.zeros(sum(TEST_LENGTHS), dtype=np.uint8)
    labels[5:9] = 1
    np.save(root / "frame_labels_tiny.npy", labels)
    return root
