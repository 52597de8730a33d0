"""From per-frame anomaly scores to alerts an operator can use, one frame at a time.

A detector that flags single frames cries wolf: one noisy frame is an alert, an event broken by two
calm frames is two alerts. Three rules, the same for a file and a live stream (so a file scored
offline and the same file watched live give the same events):

- smoothing: the anomaly of a frame is averaged with those of the frames just before it (causal, so a
  live stream needs no look-ahead; an event can therefore end up to one window after the anomaly);
- minimum duration: an event opens once its flagged frames span at least this long;
- gap merging: flagged runs closer than this are one event, so an event closes only after this long calm.

`FootageCheck` adds the warnings that the footage looks unlike the training data, so that a wall of
alerts on a new camera is read as "wrong model for this view", not as an emergency.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import asdict, dataclass

import numpy as np

from pseudovad.errors import PseudovadError

FLAG_LEVEL = 0.5  # the normalised anomaly of the calibrated threshold: above it a frame is flagged
DEFAULT_FPS = 25.0  # the frame rate of footage that does not tell its own (frame folders, some streams)
DEFAULT_FALSE_ALARM_RATE = 0.01  # the share of normal frames a calibrated threshold flags unless asked otherwise
SEGMENT_CONVENTION = (
    "frames are 0-based; start_frame and end_frame are both inclusive; start_time is when the first flagged "
    "frame starts and end_time when the last one ends, in seconds (frame / fps)"
)


@dataclass(frozen=True)
class AlertRules:
    """The alert rules, in seconds (converted to frames at the footage's frame rate, at least one frame)."""

    smoothing_s: float = 0.2
    min_duration_s: float = 0.3
    merge_gap_s: float = 0.5

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if not (math.isfinite(value) and value >= 0):
                raise PseudovadError(f"--{name.removesuffix('_s').replace('_', '-')} must be a non-negative number of seconds, got {value}")

    def frames(self, fps: float) -> tuple[int, int, int]:
        """(smoothing window, minimum event length, largest gap merged), in frames at `fps`."""
        return (max(1, round(self.smoothing_s * fps)), max(1, round(self.min_duration_s * fps)), round(self.merge_gap_s * fps))

    def describe(self, fps: float) -> dict:
        """What segments.json states about the rules, in seconds and in frames."""
        window, shortest, gap = self.frames(fps)
        return {
            "smoothing_s": self.smoothing_s, "smoothing_frames": window,
            "min_duration_s": self.min_duration_s, "min_duration_frames": shortest,
            "merge_gap_s": self.merge_gap_s, "merge_gap_frames": gap,
            "rule": (f"a frame is flagged when the mean anomaly of it and the {window - 1} frame(s) before it is above "
                     f"{FLAG_LEVEL}; flagged frames at most {gap} frame(s) apart form one event, reported once it spans "
                     f"{shortest} frame(s) or more"),
        }


class EventTracker:
    """Per-frame anomalies in, smoothed level and flag out, and the events that open and close.

    Memory is a smoothing window and the open event's bounds, however long the stream."""

    def __init__(self, rules: AlertRules, fps: float, score_name: str) -> None:
        self.fps, self.score_name = fps, score_name
        self.window, self.shortest, self.gap = rules.frames(fps)
        self.recent: deque[float] = deque(maxlen=self.window)
        self.start: int | None = None
        self.last = 0
        self.opened = False
        self.peak, self.lowest = 0.0, math.inf

    def push(self, index: int, anomaly: float, score: float) -> tuple[float, bool, list[dict]]:
        """Frame `index` (in order, from 0) with its anomaly (NaN: no score yet) and raw score:
        (smoothed anomaly, flagged, the events this frame opens or closes)."""
        if math.isnan(anomaly):
            return math.nan, False, self._calm(index)
        self.recent.append(anomaly)
        smoothed = float(np.mean(self.recent))
        if smoothed <= FLAG_LEVEL:
            return smoothed, False, self._calm(index)
        if self.start is None:
            self.start, self.peak, self.lowest = index, 0.0, math.inf
        self.last = index
        self.peak, self.lowest = max(self.peak, anomaly), min(self.lowest, score)
        if self.opened or index - self.start + 1 < self.shortest:
            return smoothed, True, []
        self.opened = True
        return smoothed, True, [{"event": "open", "start_frame": self.start, "start_time": self._time(self.start),
                                 "at_frame": index}]

    def finish(self) -> list[dict]:
        """The end of the stream: the open event, if any, closes at its last flagged frame."""
        return self._close()

    def _calm(self, index: int) -> list[dict]:
        return self._close() if self.start is not None and index - self.last > self.gap else []

    def _close(self) -> list[dict]:
        events = []
        if self.opened:
            events.append({
                "event": "close", "start_frame": self.start, "end_frame": self.last,
                "start_time": self._time(self.start), "end_time": self._time(self.last + 1),
                "frames": self.last - self.start + 1, "peak_anomaly": round(self.peak, 4),
                f"min_{self.score_name}": round(self.lowest, 4),
            })
        self.start, self.opened = None, False
        return events

    def _time(self, frame: int) -> float:
        return round(frame / self.fps, 3)


def segment(event: dict) -> dict:
    """A closed event as segments.json lists it."""
    return {key: value for key, value in event.items() if key != "event"}


class FootageCheck:
    """Warnings that the footage differs from what the model was trained on: another frame size, a
    brightness outside the training frames' range, or far more flagged frames than calibrated.

    Each warning is given once; `judge` looks at what has been seen so far (live: at every frame, once
    SETTLE_FRAMES are scored; a file: at its end). The size and brightness checks need the run's
    calibration.json; the rate check needs a calibrated false-alarm rate, so a threshold given by hand
    turns it off."""

    BRIGHTNESS_MARGIN = 10.0   # grey levels beyond the training frames' range
    SETTLE_FRAMES = 250        # a live stream is judged once it has shown this many frames
    FINAL_FRAMES = 25          # a file is judged at its end if it has this many scored frames
    RATE_FACTOR, RATE_FLOOR = 10.0, 0.25  # "far above": 10 times the calibrated rate and a quarter of the frames

    def __init__(self, calibration: dict | None, false_alarm_rate: float | None) -> None:
        frames = (calibration or {}).get("frames", {})
        self.sizes = [tuple(size) for size in frames.get("sizes", [])]
        brightness = frames.get("brightness")
        self.bright_range = (brightness["min"] - self.BRIGHTNESS_MARGIN, brightness["max"] + self.BRIGHTNESS_MARGIN) if brightness else None
        self.rate = false_alarm_rate
        self.frames = self.scored = self.flagged = self.outside = 0
        self.size: tuple[int, int] | None = None
        self.given: set[str] = set()

    def add(self, rgb_shape: tuple[int, ...], prepared: np.ndarray, scored: bool, flagged: bool) -> None:
        self.size = self.size or (int(rgb_shape[1]), int(rgb_shape[0]))
        self.frames += 1
        self.scored += scored
        self.flagged += flagged
        if self.bright_range is not None:
            level = float(prepared.mean())
            self.outside += not self.bright_range[0] <= level <= self.bright_range[1]

    def judge(self, final: bool) -> list[str]:
        """The warnings not given yet that what was seen so far supports."""
        warnings = {}
        if self.size and self.sizes and self.size not in self.sizes:
            trained = ", ".join(f"{w}x{h}" for w, h in self.sizes)
            warnings["size"] = (f"the frames are {self.size[0]}x{self.size[1]} but the training videos were {trained}: "
                                "another camera or view looks unlike the training data; retrain on footage from this camera")
        enough = self.scored >= (self.FINAL_FRAMES if final else self.SETTLE_FRAMES)
        if enough and self.bright_range and self.outside > self.frames / 2:
            low, high = self.bright_range
            warnings["brightness"] = (f"{self.outside} of {self.frames} frames have a mean brightness outside the training "
                                      f"frames' range ({low + self.BRIGHTNESS_MARGIN:.0f} to {high - self.BRIGHTNESS_MARGIN:.0f} "
                                      "of 255): other lighting (night, glare, a covered lens) looks unlike the training data")
        if enough and self.rate is not None and self.flagged > max(self.RATE_FACTOR * self.rate, self.RATE_FLOOR) * self.scored:
            warnings["rate"] = (f"{self.flagged} of {self.scored} scored frames ({100 * self.flagged / self.scored:.0f}%) are "
                                f"flagged where the calibration expects {100 * self.rate:g}% of normal frames: this footage may "
                                "look unlike the training data (another view, lighting or season); check the frames, or retrain "
                                "on footage like it")
        new = [text for key, text in warnings.items() if key not in self.given]
        self.given |= set(warnings)
        return new
