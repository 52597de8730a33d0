"""What every layout reader returns: a description of the videos and their frame labels.

Readers only describe (paths, frame counts, labels); decoding and caching happen elsewhere, so
`inspect` is fast even on large datasets.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Video:
    """One video: either a folder of frame images (`frames` lists them in order) or a video file."""

    name: str
    path: Path
    num_frames: int
    frames: tuple[Path, ...] | None = None

    @property
    def is_frame_folder(self) -> bool:
        return self.frames is not None


@dataclass
class VideoDataset:
    """A dataset as found on disk.

    `test_labels[i]` is a 0/1 uint8 array with one entry per frame of `test[i]` (1 = anomalous), or
    the whole list is None for unlabelled footage. `label_version` says which label source produced
    them (e.g. "ped2.mat (FFP gt ranges)"), because published numbers differ by label version.
    """

    root: Path
    layout: str
    train: list[Video]
    test: list[Video]
    test_labels: list[np.ndarray] | None = None
    label_version: str | None = None
    label_file: Path | None = None
    extra: dict = field(default_factory=dict)

    @property
    def num_anomalous(self) -> int | None:
        if self.test_labels is None:
            return None
        return int(sum(int(lab.sum()) for lab in self.test_labels))

    def summary(self) -> dict:
        """The numbers `pseudovad inspect --json` prints."""
        return {
            "root": str(self.root),
            "layout": self.layout,
            "train": {"videos": len(self.train), "frames": sum(v.num_frames for v in self.train)},
            "test": {
                "videos": len(self.test),
                "frames": sum(v.num_frames for v in self.test),
                "anomalous": self.num_anomalous,
                "label_version": self.label_version,
                "label_file": str(self.label_file) if self.label_file else None,
            },
        }
