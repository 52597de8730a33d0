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
import torch
from torch import Tensor, nn
from tqdm import tqdm

from pseudovad.alerts import DEFAULT_FALSE_ALARM_RATE
from pseudovad.data.cache import FrameArray
from pseudovad.data.clips import ClipDataset
from pseudovad.data.decode import iter_frames
from pseudovad.errors import PseudovadError
from pseudovad.files import write_json
from pseudovad.runs import RunDir, check_writable
from pseudovad.training.base import Pipeline
from pseudovad.training.loop import training_clips
from pseudovad.training.trained import load_trained

MAX_CLIPS = 1000        # held-out clips scored at most, spread evenly over them: rates down to 0.1 %
MAX_BRIGHTNESS_FRAMES = 5000


def check_rate(rate: float) -> float:
    if not 0 < rate < 1:
        raise PseudovadError(f"--false-alarm-rate must be between 0 and 1 (a fraction of normal frames, e.g. 0.01), got {rate}")
    return rate


def calibrate_run(run_dir: Path, false_alarm_rate: float = DEFAULT_FALSE_ALARM_RATE, data_root: Path | None = None) -> dict:
    """Score the run's held-out normal clips and write RUN/calibration.json; returns its content."""
    check_rate(false_alarm_rate)
    check_writable(run_dir)
    config, pipeline, iteration = load_trained(run_dir)
    if data_root is not None:
        config.data.root = str(Path(data_root).expanduser().resolve())
    if not config.data.root or not Path(config.data.root).exists():
        raise PseudovadError(f"{run_dir}: its training data {config.data.root} is not there; pass --data ROOT where it is now")
    clips = training_clips(config, held_out=True)
    name, label, fusion, values = _deployed_score(pipeline, _score_normal_clips(pipeline, clips, run_dir))
    scores = np.sort(values.astype(np.float64)).round(4)  # as stored: the threshold here and every one read off the file agree
    held_out = config.data.holdout > 0
    calibration = {
        "score": name,
        "label": label,
        **({"fusion": fusion} if fusion else {}),
        "direction": "high = normal; a frame is flagged when its score is below the threshold",
        "false_alarm_rate": false_alarm_rate,
        "threshold": threshold_at(scores, false_alarm_rate),
        "clips": len(scores),
        "clips_from": (f"the last {config.data.holdout:.0%} of each training video, held out of training" if held_out else
                       "training clips the model was trained on (data.holdout is 0): on new normal footage expect more "
                       "false alarms than the rate"),
        "smallest_rate_measurable": round(1 / len(scores), 6),
        "statistics": _statistics(scores),
        "scores": [float(value) for value in scores],
        "frames": _frame_statistics(clips.frames),
        "normalisation": "anomaly = clip(0.5 + (threshold - score) / (max - min of the calibration scores), 0, 1): "
                         "0.5 at the threshold, above it flagged, high = anomalous",
        "iteration": iteration,
        "data": config.data.root,
    }
    write_json(calibration, RunDir(run_dir).calibration)
    return calibration


def _score_normal_clips(pipeline: Pipeline, clips: ClipDataset, run_dir: Path) -> dict[str, np.ndarray]:
    """Every deployed score of at most MAX_CLIPS held-out clips, spread evenly over them (a long
    camera recording need not be scored whole to place a 1 % threshold)."""
    chosen = np.unique(np.linspace(0, len(clips) - 1, min(MAX_CLIPS, len(clips))).round().astype(int))
    parts = {name: [] for name in pipeline.deployed_scores()}
    for begin in tqdm(range(0, len(chosen), pipeline.eval_batch_size), desc="calibrating", unit="batch", leave=False):
        scored = pipeline.score(clips.batch(chosen[begin : begin + pipeline.eval_batch_size]).to(pipeline.device))
        for name, values in parts.items():
            values.append(scored[name].float().cpu().numpy())
    parts = {name: np.concatenate(values) for name, values in parts.items()}
    for name, values in parts.items():
        if not np.isfinite(values).all():
            raise PseudovadError(f"{run_dir}: the '{name}' score is NaN or infinite on normal clips: the model has "
                                 "diverged; retrain with a lower learning rate")
    return parts


class CalibratedFusion(nn.Module):
    """The fused score a deployment can compute frame by frame: w a' + (1 - w) b', each part mapped to
    [0, 1] by the 1st and 99th percentiles of its calibration scores (fixed, not the video's own
    minimum and maximum, which only a finished video has). Columns in: the parts; high = normal."""

    def __init__(self, lows: list[float], highs: list[float], weight: float) -> None:
        super().__init__()
        self.register_buffer("low", torch.tensor(lows, dtype=torch.float32))
        spans = [high - low if high > low else 1.0 for low, high in zip(lows, highs)]
        self.register_buffer("span", torch.tensor(spans, dtype=torch.float32))
        self.register_buffer("weights", torch.tensor([weight, 1 - weight], dtype=torch.float32))

    @classmethod
    def from_calibration(cls, fusion: dict) -> CalibratedFusion:
        ranges = [fusion["ranges"][part] for part in fusion["parts"]]
        return cls([r["low"] for r in ranges], [r["high"] for r in ranges], fusion["weight"])

    def forward(self, columns: Tensor) -> Tensor:
        return (((columns - self.low) / self.span) * self.weights).sum(dim=-1)


def _deployed_score(pipeline: Pipeline, parts: dict[str, np.ndarray]) -> tuple[str, str, dict | None, np.ndarray]:
    """The score deployments flag by: the pipeline's fused score, calibrated, where every part of it is
    deployed (a patch critic beside PSNR); else its first score. Returns (name, label, fusion, values)."""
    fused = pipeline.fused()
    if fused is None or not set(fused.parts) <= set(parts):
        declared = pipeline.scores[0]
        return declared.name, declared.label, None, parts[declared.name]
    ranges = {part: {"low": round(float(np.percentile(parts[part], 1)), 6), "high": round(float(np.percentile(parts[part], 99)), 6)}
              for part in fused.parts}
    fusion = {"parts": list(fused.parts), "columns": list(parts), "weight": fused.weight, "ranges": ranges,
              "rule": "w (a - low_a) / (high_a - low_a) + (1 - w) (b - low_b) / (high_b - low_b), low and high the 1st "
                      "and 99th percentiles of the calibration scores"}
    columns = torch.from_numpy(np.stack([parts[part] for part in fused.parts], axis=1).astype(np.float32))
    values = CalibratedFusion.from_calibration(fusion)(columns).numpy()
    return fused.name, f"{fused.label}, calibrated", fusion, values


def unmeasurable(false_alarm_rate: float, clips: int) -> str | None:
    """Why `false_alarm_rate` cannot be set on `clips` calibration scores (it is under one of them: the
    threshold then falls between their two lowest and flags one of them whatever the rate), or None."""
    if false_alarm_rate * clips >= 1:
        return None
    needed = math.ceil(1 / false_alarm_rate)
    more = (f"calibrate on {needed} or more normal clips (more normal footage, or a larger data.holdout)" if needed <= MAX_CLIPS
            else f"calibration scores at most {MAX_CLIPS} clips, so choose a rate of {1 / MAX_CLIPS:g} or more")
    return (f"a false-alarm rate of {false_alarm_rate:g} is under one of the {clips} calibration clips: the threshold falls "
            f"between their two lowest scores and flags one of them (1 in {clips}), so what it flags on normal footage is "
            f"not known; {more}")


def threshold_at(scores: np.ndarray | list[float], false_alarm_rate: float) -> float:
    """The score below which `false_alarm_rate` of the calibration scores lie."""
    return round(float(np.quantile(np.asarray(scores, dtype=np.float64), check_rate(false_alarm_rate))), 4)


def read_calibration(run_dir: Path, iteration: int) -> dict | None:
    """RUN/calibration.json, or None if the run has none (trained before it existed, or stopped before its end).

    It must be of the model at `iteration` (the checkpoint's): a run trained on afterwards (`--resume`
    with more iterations and `--no-calibrate`) would otherwise be thresholded with its old model's scores."""
    path = RunDir(run_dir).calibration
    if not path.is_file():
        return None
    try:
        calibration = json.loads(path.read_text())
        _check_fields(calibration)
    except (OSError, ValueError) as error:
        raise PseudovadError(f"{path}: not a calibration pseudovad wrote ({error}); run `pseudovad calibrate {run_dir}` again") from None
    if calibration.get("iteration") != iteration:
        raise PseudovadError(f"{path}: made at iteration {calibration.get('iteration')}, but the checkpoint is at "
                             f"iteration {iteration} (the run trained on since); run `pseudovad calibrate {run_dir}` again")
    return calibration


def _check_fields(calibration: object) -> None:
    """Every field that scoring, the footage check and an export read, of the right kind, else a
    ValueError naming it: a file edited or from another version fails when read, not mid-stream with a
    traceback. Plain checks, not asserts, which `python -O` removes."""
    def need(ok: object, field: str) -> None:
        if not ok:
            raise ValueError(f"{field} missing or malformed")

    need(isinstance(calibration, dict), "the top level")
    scores = calibration.get("scores")
    need(isinstance(scores, list) and scores and all(map(_is_number, scores)), "scores")
    need(_is_number(calibration.get("threshold")), "threshold")
    need(_is_number(calibration.get("false_alarm_rate")) and 0 < calibration["false_alarm_rate"] < 1, "false_alarm_rate")
    need(isinstance(calibration.get("clips"), int) and calibration["clips"] > 0, "clips")
    for field in ("score", "label", "clips_from"):
        need(isinstance(calibration.get(field), str), field)
    statistics = calibration.get("statistics", {})
    need(isinstance(statistics, dict) and all(map(_is_number, statistics.values())), "statistics")
    frames = calibration.get("frames", {})
    brightness = frames.get("brightness") if isinstance(frames, dict) else None
    need(isinstance(frames, dict) and all(isinstance(size, list) and len(size) == 2 and all(map(_is_number, size))
                                          for size in frames.get("sizes", [])), "frames.sizes")
    need(brightness is None or (isinstance(brightness, dict) and _is_number(brightness.get("min"))
                                and _is_number(brightness.get("max"))), "frames.brightness")
    fusion = calibration.get("fusion")
    if fusion is not None:
        parts = fusion.get("parts") if isinstance(fusion, dict) else None
        need(isinstance(parts, list) and len(parts) == 2 and all(isinstance(part, str) for part in parts), "fusion.parts")
        need(_is_number(fusion.get("weight")), "fusion.weight")
        ranges = fusion.get("ranges")
        need(isinstance(ranges, dict) and all(isinstance(ranges.get(part), dict) and _is_number(ranges[part].get("low"))
                                              and _is_number(ranges[part].get("high")) for part in parts), "fusion.ranges")


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


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
