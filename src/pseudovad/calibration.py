"""RUN/calibration.json: what "normal" scores look like, measured once when training ends, so that
scoring needs nothing but the run folder.

The run scores normal clips it has not trained on (the last `data.holdout` of each training video;
the training clips themselves when that is 0, as for the benchmarks, and then says so) and keeps
their scores. The threshold is the score that this fraction of them falls below: a target
false-alarm rate (1 % of normal frames by default) rather than a number in dB, and any other rate is
read off the same scores later without the training data. The file also keeps the training videos'
frame sizes and brightness, for the warning that new footage looks unlike them.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
from tqdm import tqdm

from pseudovad.data.cache import FrameArray
from pseudovad.data.decode import iter_frames
from pseudovad.errors import PseudovadError
from pseudovad.evaluation.evaluate import write_json
from pseudovad.runs import RunDir, load_trained
from pseudovad.training.loop import training_clips

DEFAULT_FALSE_ALARM_RATE = 0.01
MAX_CLIPS = 1000        # held-out clips scored at most, spread evenly over them: rates down to 0.1 %
MAX_BRIGHTNESS_FRAMES = 5000


def check_rate(rate: float) -> float:
    if not 0 < rate < 1:
        raise PseudovadError(f"--false-alarm-rate must be between 0 and 1 (a fraction of normal frames, e.g. 0.01), got {rate}")
    return rate


def calibrate_run(run_dir: Path, false_alarm_rate: float = DEFAULT_FALSE_ALARM_RATE, data_root: Path | None = None) -> dict:
    """Score the run's held-out normal clips and write RUN/calibration.json; returns its content."""
    check_rate(false_alarm_rate)
    config, pipeline, iteration = load_trained(run_dir)
    if data_root is not None:
        config.data.root = str(Path(data_root).expanduser().resolve())
    if not config.data.root or not Path(config.data.root).exists():
        raise PseudovadError(f"{run_dir}: its training data {config.data.root} is not there; pass --data ROOT where it is now")
    clips = training_clips(config, held_out=True)
    chosen = np.unique(np.linspace(0, len(clips) - 1, min(MAX_CLIPS, len(clips))).round().astype(int))
    declared = pipeline.scores[0]
    values = []
    for begin in tqdm(range(0, len(chosen), config.eval.batch_size), desc="calibrating", unit="batch", leave=False):
        batch = clips.batch(chosen[begin : begin + config.eval.batch_size]).to(pipeline.device)
        values.append(pipeline.score(batch)[declared.name].float().cpu().numpy())
    scores = np.sort(np.concatenate(values))
    if not np.isfinite(scores).all():
        raise PseudovadError(f"{run_dir}: the '{declared.name}' score is NaN or infinite on normal clips: the model has "
                             "diverged; retrain with a lower learning rate")
    held_out = config.data.holdout > 0
    calibration = {
        "score": declared.name,
        "label": declared.label,
        "direction": "high = normal; a frame is flagged when its score is below the threshold",
        "false_alarm_rate": false_alarm_rate,
        "threshold": threshold_at(scores, false_alarm_rate),
        "clips": len(scores),
        "clips_from": (f"the last {config.data.holdout:.0%} of each training video, held out of training" if held_out else
                       "training clips the model was trained on (data.holdout is 0): on new normal footage expect more "
                       "false alarms than the rate"),
        "smallest_rate_measurable": round(1 / len(scores), 6),
        "statistics": _statistics(scores),
        "scores": [round(float(value), 4) for value in scores],
        "frames": _frame_statistics(clips.frames),
        "normalisation": "anomaly = clip(0.5 + (threshold - score) / (max - min of the calibration scores), 0, 1): "
                         "0.5 at the threshold, above it flagged, high = anomalous",
        "iteration": iteration,
        "data": config.data.root,
    }
    write_json(calibration, RunDir(run_dir).calibration)
    return calibration


def threshold_at(scores: np.ndarray | list[float], false_alarm_rate: float) -> float:
    """The score below which `false_alarm_rate` of the calibration scores lie."""
    return round(float(np.quantile(np.asarray(scores, dtype=np.float64), check_rate(false_alarm_rate))), 4)


def read_calibration(run_dir: Path) -> dict | None:
    """RUN/calibration.json, or None if the run has none (trained before it existed, or stopped before its end)."""
    path = RunDir(run_dir).calibration
    if not path.is_file():
        return None
    try:
        calibration = json.loads(path.read_text())
        assert isinstance(calibration, dict) and calibration["scores"] and math.isfinite(calibration["threshold"])
    except (OSError, ValueError, KeyError, TypeError, AssertionError):
        raise PseudovadError(f"{path}: not a calibration pseudovad wrote; run `pseudovad calibrate {run_dir}` again") from None
    return calibration


def _statistics(values: np.ndarray) -> dict:
    return {"min": round(float(values.min()), 4), "p1": round(float(np.percentile(values, 1)), 4),
            "median": round(float(np.median(values)), 4), "p99": round(float(np.percentile(values, 99)), 4),
            "max": round(float(values.max()), 4), "mean": round(float(values.mean()), 4), "std": round(float(values.std()), 4)}


def _frame_statistics(frames: FrameArray) -> dict:
    """The training videos' frame sizes (as decoded) and the mean brightness of their frames (as the model sees them)."""
    sizes = set()
    for video in frames.videos:
        decoded = iter_frames(video)
        height, width = next(decoded).shape[:2]
        decoded.close()
        sizes.add((width, height))
    every = max(1, len(frames.frames) // MAX_BRIGHTNESS_FRAMES)
    brightness = np.array([frame.mean() for frame in frames.frames[::every]])
    return {"sizes": sorted([list(size) for size in sizes]), "brightness": _statistics(brightness)}
