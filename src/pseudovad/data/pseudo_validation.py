"""Pseudo-validation: a labelled dataset made from the training videos alone, for choosing settings
without the test set.

The last `held_out` training videos become test videos into which anomalies are injected; the rest
stay training videos (linked, not copied). Two kinds, each once per held-out video:
- `foreign_object`: a smooth-bordered patch of another training video sliding across the frames;
- `speed_up`: a stretch of the video played three times too fast (every third frame).
Both are real frames rearranged, like the pseudo-anomaly sources of `learn_not_to_predict`: choosing
that objective's own settings here would reward it for recognising its training material, so its
settings are chosen on the synthetic scene's other seeds instead (docs/RESULTS.md says which split
chose what).
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from pseudovad.data.cache import sources_fingerprint
from pseudovad.data.dataset import Video
from pseudovad.data.decode import iter_frames
from pseudovad.data.generated import reusable
from pseudovad.data.layouts import load_dataset
from pseudovad.errors import DataError
from pseudovad.files import write_json
from pseudovad.data.patches import smooth_box

SPEED_UP = 3
EVENT_FRACTION = 0.15  # of a held-out video's length, per event (shorter where the video is short)


def make_pseudo_validation(root: Path, out: Path, held_out: int = 3, seed: int = 0) -> Path:
    """Write the pseudo-validation dataset of `root` into `out` (FFP frame layout, MNAD labels,
    dataset.json listing the events) and return `out`; an existing complete one is reused."""
    out = Path(out)
    train = load_dataset(Path(root)).train
    if len(train) <= held_out:
        raise DataError(f"{root}: {len(train)} training videos; pseudo-validation holds out {held_out} and needs more")
    if not all(video.is_frame_folder for video in train):
        raise DataError(f"{root}: pseudo-validation needs training videos stored as frame folders")
    made_with = {"made_from": str(Path(root).resolve()), "held_out": [v.name for v in train[-held_out:]], "seed": seed,
                 "sources": sources_fingerprint(train)}  # so that a dataset replaced under the same names is noticed
    if reusable(out, made_with):
        return out
    rng = np.random.default_rng(seed)
    for video in train[:-held_out]:
        link = out / "training" / "frames" / video.name
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.exists():
            os.symlink(video.path.resolve(), link, target_is_directory=True)
    labels, events = [], []
    for video in train[-held_out:]:
        frames, video_labels, video_events = _inject(video, train[:-held_out], rng)
        folder = out / "testing" / "frames" / video.name
        folder.mkdir(parents=True, exist_ok=True)
        for index, frame in enumerate(frames):
            cv2.imwrite(str(folder / f"{index:04d}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        labels.append(video_labels)
        events += [{**event, "video": video.name} for event in video_events]
    np.save(out / f"frame_labels_{Path(root).name}_pseudo_validation.npy", np.concatenate(labels).astype(np.uint8))
    description = {**made_with, "events": events}
    write_json(description, out / "dataset.json")
    return out


def _inject(video: Video, donors: list[Video], rng: np.random.Generator) -> tuple[list[np.ndarray], np.ndarray, list[dict]]:
    """A held-out video with a speed-up in one half and a foreign object in the other."""
    frames = list(iter_frames(video))
    half = len(frames) // 2
    length = min(int(EVENT_FRACTION * len(frames)), (half - 8) // SPEED_UP)
    if length < 6:
        raise DataError(f"{video.path}: {len(frames)} frames is too short for pseudo-validation events")
    start = int(rng.integers(4, half - length * SPEED_UP + 1))
    frames = frames[:start] + frames[start : start + length * SPEED_UP : SPEED_UP] + frames[start + length * SPEED_UP :]
    events = [{"kind": "speed_up", "start": start, "end": start + length}]
    second = int(rng.integers(max(len(frames) // 2, start + length + 4), len(frames) - length + 1))
    donor = list(iter_frames(donors[int(rng.integers(len(donors)))]))[int(rng.integers(0, 8))]
    _slide_patch(frames, second, length, donor, rng)
    events.append({"kind": "foreign_object", "start": second, "end": second + length})
    labels = np.zeros(len(frames), dtype=np.uint8)
    for event in events:
        labels[event["start"] : event["end"]] = 1
    return frames, labels, events


def _slide_patch(frames: list[np.ndarray], start: int, length: int, donor: np.ndarray, rng: np.random.Generator) -> None:
    """Paste a crop of `donor` (a quarter of the frame's side) sliding across frames start..start+length.
    Of 20 random crops the most textured is taken: a crop of plain pavement pasted on pavement would
    be no anomaly at all."""
    height, width = frames[start].shape[:2]
    ph, pw = height // 4, width // 4
    corners = [(int(rng.integers(height - ph)), int(rng.integers(width - pw))) for _ in range(20)]
    y, x = max(corners, key=lambda c: float(donor[c[0] : c[0] + ph, c[1] : c[1] + pw].std()))
    patch = donor[y : y + ph, x : x + pw].astype(np.float32)
    weight = smooth_box(ph, pw, 0.3)[..., None]
    row = int(rng.integers(height - ph))
    columns = np.linspace(0, width - pw, length).round().astype(int)
    if rng.random() < 0.5:
        columns = columns[::-1]
    for frame_index, column in zip(range(start, start + length), columns):
        region = frames[frame_index][row : row + ph, column : column + pw].astype(np.float32)
        frames[frame_index][row : row + ph, column : column + pw] = (region * (1 - weight) + patch * weight).round().astype(np.uint8)
