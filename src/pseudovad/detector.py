"""A trained run as a detector in memory: `pseudovad.load(run).score(frames)`.

Frames go in as the camera gives them (RGB uint8, any size) and are prepared exactly as training
prepared them (resized, grey if the run is); each frame after the first `clip_length` gets the
pipeline's scores and a normalised anomaly in [0, 1]: 0.5 at the calibrated threshold, above it
flagged, high = anomalous. The `score` and `live` commands and the export all go through this class,
so they agree by construction.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from pseudovad.alerts import FLAG_LEVEL
from pseudovad.calibration import CalibratedFusion, read_calibration, threshold_at, unmeasurable
from pseudovad.data.cache import prepare_frame
from pseudovad.data.clips import to_model_range
from pseudovad.data.sources import Gap
from pseudovad.errors import PseudovadError
from pseudovad.metrics import error_map
from pseudovad.runs import RunDir
from pseudovad.training.base import Pipeline
from pseudovad.training.trained import load_trained


class Normaliser(nn.Module):
    """A raw score (high = normal) -> anomaly in [0, 1]: 0.5 + (threshold - score) / spread, clipped,
    where `spread` is the range of the calibration scores (anomalib's normalisation, for video)."""

    def __init__(self, threshold: float, spread: float) -> None:
        super().__init__()
        self.register_buffer("threshold", torch.tensor(float(threshold)))
        self.register_buffer("spread", torch.tensor(float(spread) if spread > 0 else 1.0))

    def forward(self, score: Tensor) -> Tensor:
        return (FLAG_LEVEL + (self.threshold - score) / self.spread).clamp(0, 1)


class Combiner(nn.Module):
    """The deployed score from the scoring network's columns (`columns`): the calibrated fused score
    where the calibration has one (calibration.CalibratedFusion), else the first column."""

    def __init__(self, columns: tuple[str, ...], fusion: dict | None) -> None:
        super().__init__()
        self.columns = list(columns)
        self.fusion = CalibratedFusion.from_calibration(fusion) if fusion else None
        self.picks = [self.columns.index(part) for part in fusion["parts"]] if fusion else [0]

    def forward(self, columns: Tensor) -> Tensor:
        chosen = columns[:, self.picks]
        return self.fusion(chosen) if self.fusion is not None else chosen[:, 0]


@dataclass
class ScoredFrame:
    """One frame's results; `scores` and `anomaly` are NaN for the first clip_length frames (no prediction yet)."""

    index: int
    prepared: np.ndarray           # the frame as the model sees it (H, W, C) uint8
    shape: tuple[int, ...]         # the decoded frame's shape
    scores: dict[str, float]
    anomaly: float
    rgb: np.ndarray | None = None  # the decoded frame, when asked for (annotated videos)
    error: np.ndarray | None = field(default=None, repr=False)  # |prediction - frame| (H, W) in [0, 1], when asked for


class Detector:
    """A run's model, calibration and threshold. `false_alarm_rate` picks another threshold from the
    calibration scores; `threshold` sets one in the score's own units (PSNR: dB) instead."""

    def __init__(self, run: str | Path, false_alarm_rate: float | None = None, threshold: float | None = None,
                 device: torch.device | None = None) -> None:
        self.run = Path(run)
        self.config, self.pipeline, self.iteration = load_trained(self.run, device)
        self.calibration = read_calibration(self.run, self.iteration)
        fusion = (self.calibration or {}).get("fusion")
        declared = self.pipeline.scores[0]
        self.score_name, self.score_label = (self.calibration["score"], self.calibration["label"]) if fusion else (declared.name, declared.label)
        deployed = self.pipeline.deployed_scores()
        unknown = [part for part in (fusion["parts"] if fusion else []) if part not in deployed]
        if unknown:
            raise PseudovadError(f"{RunDir(self.run).calibration}: it fuses {', '.join(unknown)}, which this run does not "
                                 f"score ({', '.join(deployed)}); run `pseudovad calibrate {self.run}` again")
        self.combiner = Combiner(deployed, fusion)
        declared_names = tuple(score.name for score in self.pipeline.scores)
        # every score a frame gets: the declared ones, and the calibrated fused score the alerts use
        self.score_names = declared_names + (() if self.score_name in declared_names else (self.score_name,))
        if self.calibration is None and threshold is None:
            raise PseudovadError(f"{self.run}: no calibration.json (the run was trained by an older version, or stopped "
                                 f"before its end); run `pseudovad calibrate {self.run}` (it needs the training data), "
                                 "or give a threshold with --threshold")
        if self.calibration is not None and self.calibration["score"] != self.score_name:
            raise PseudovadError(f"{self.run}: calibration.json is of the score '{self.calibration['score']}', not "
                                 f"'{self.score_name}'; run `pseudovad calibrate {self.run}` again")
        if threshold is not None:
            self.false_alarm_rate, self.threshold = None, float(threshold)
        else:
            self.false_alarm_rate = self.calibration["false_alarm_rate"] if false_alarm_rate is None else false_alarm_rate
            self.threshold = threshold_at(self.calibration["scores"], self.false_alarm_rate)
        statistics = (self.calibration or {}).get("statistics", {})
        self.normaliser = Normaliser(self.threshold, statistics.get("max", 1.0) - statistics.get("min", 0.0))

    @property
    def clip_length(self) -> int:
        return self.config.data.clip_length

    def describe_threshold(self) -> dict:
        """Where the threshold comes from, as segments.json states it."""
        described = {"score": self.score_name, "value": self.threshold,
                     "rule": f"a frame's anomaly is above {FLAG_LEVEL} when its {self.score_name} is below the threshold"}
        if self.false_alarm_rate is None:
            return {**described, "from": "--threshold", **self._given_threshold_warning()}
        problem = unmeasurable(self.false_alarm_rate, self.calibration["clips"])
        return {**described, "false_alarm_rate": self.false_alarm_rate,
                "from": f"calibration.json: the {self.false_alarm_rate:g} quantile of {self.calibration['clips']} "
                        f"calibration clips ({self.calibration['clips_from']})", **({"warning": problem} if problem else {})}

    def _given_threshold_warning(self) -> dict:
        """A --threshold that flags all of the calibration's normal clips, or lies a whole range below
        them, is almost surely in other units (dB for a calibrated fused score of about 0 to 1)."""
        if self.calibration is None:
            return {}
        scores = np.asarray(self.calibration["scores"], dtype=np.float64)
        low, high = scores.min(), scores.max()
        if low - (high - low) <= self.threshold <= high:
            return {}
        flags = "every one" if self.threshold > high else "none"
        return {"warning": f"--threshold {self.threshold:g} flags {flags} of the {len(scores)} calibration clips of "
                           f"normal footage, whose {self.score_name} runs from {low:.4g} to {high:.4g}; give it in that "
                           f"score's units ({self.score_label})"}

    def prepare(self, rgb: np.ndarray) -> np.ndarray:
        """A decoded RGB frame as the model sees it (resized, grey if the run is). Anything but an
        (H, W, 3) uint8 array is refused: a float frame in [0, 1] cast to uint8 would score as black."""
        rgb = np.asarray(rgb)
        if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
            raise PseudovadError(f"a frame must be an (H, W, 3) uint8 RGB array, got {rgb.dtype} of shape {rgb.shape}; "
                                 "convert it, e.g. (frame * 255).round().astype(np.uint8) for floats in [0, 1]")
        data = self.config.data
        return prepare_frame(np.ascontiguousarray(rgb), data.height, data.width, data.channels)

    def score(self, frames: Iterable[np.ndarray]) -> np.ndarray:
        """The anomaly of each frame in [0, 1] (0.5 = the threshold; NaN for the first clip_length frames)."""
        return np.array([scored.anomaly for scored in self.stream(frames)], dtype=np.float64)

    def score_clips(self, clips: np.ndarray) -> dict[str, np.ndarray]:
        """Every declared score and the anomaly of prepared clips (B, clip_length + 1, H, W, C) uint8."""
        tensor = to_model_range(clips).to(self.pipeline.device)
        scored = self.pipeline.score(tensor)
        scores = {name: values.float().cpu().numpy() for name, values in scored.items()}
        score = self.combiner(torch.stack([scored[name].float().cpu() for name in self.combiner.columns], dim=1))
        scores[self.score_name] = score.numpy()
        scores["anomaly"] = self.normaliser(score).numpy()
        return scores

    def stream(self, frames: Iterable[np.ndarray | Gap], batch_size: int | None = None, keep_frames: bool = False,
               errors: bool = False) -> Iterator[ScoredFrame]:
        """Score frames as they come, in order and at most one batch late; only a window of
        clip_length + 1 prepared frames and one batch are held, however long the stream. After a Gap
        (frames a live source dropped) the next clip_length frames go unscored, as at the start."""
        batch_size = batch_size or self.pipeline.eval_batch_size
        window: deque[np.ndarray] = deque(maxlen=self.clip_length + 1)
        pending: list[tuple[ScoredFrame, np.ndarray | None]] = []
        index = -1
        for rgb in frames:
            if isinstance(rgb, Gap):  # frames a live source dropped: they keep their numbers, and no clip spans them
                index += rgb.frames
                window.clear()
                continue
            index += 1
            prepared = self.prepare(rgb)
            window.append(prepared)
            clip = np.stack(window) if len(window) == window.maxlen else None
            empty = dict.fromkeys(self.score_names, np.nan)
            pending.append((ScoredFrame(index, prepared, rgb.shape, empty, np.nan, rgb if keep_frames else None), clip))
            if sum(clip is not None for _, clip in pending) == batch_size:
                yield from self._flush(pending, errors)
                pending = []
        yield from self._flush(pending, errors)

    def _flush(self, pending: list[tuple[ScoredFrame, np.ndarray | None]], errors: bool) -> Iterator[ScoredFrame]:
        ready = [(frame, clip) for frame, clip in pending if clip is not None]
        if ready:
            clips = np.stack([clip for _, clip in ready])
            scores = self.score_clips(clips)
            maps = prediction_errors(self.pipeline, clips) if errors else [None] * len(ready)
            for row, ((frame, _), error) in enumerate(zip(ready, maps)):
                frame.scores = {name: float(values[row]) for name, values in scores.items() if name != "anomaly"}
                frame.anomaly, frame.error = float(scores["anomaly"][row]), error
        for frame, _ in pending:
            yield frame


def prediction_errors(pipeline: Pipeline, clips: np.ndarray) -> np.ndarray:
    """|prediction - last frame| by the run's predictor, (B, H, W) in [0, 1], of prepared uint8 clips
    (B, clip_length + 1, H, W, C): what the heat maps of `score --video` and the report's gallery show."""
    tensor = to_model_range(clips).to(pipeline.device)
    return error_map(pipeline.predict(tensor), tensor[:, -1]).cpu().numpy()
