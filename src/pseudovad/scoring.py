"""`pseudovad score`: run a trained model over a user's own video and say where it looks anomalous.

A frame is flagged when its PSNR falls below a threshold taken from the TRAINING data's own scores
(the P-th percentile of the PSNRs of training clips): the test video has no labels, and the training
data is the one sample of "normal" the model knows. Frames are decoded, resized and scored as a
stream through a rolling window of clip_length + 1 frames, so only the per-frame scores grow with
the video's length and a video longer than memory can be scored.
"""

from __future__ import annotations

import csv
import json
import math
from collections import deque
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from pseudovad.config import Config
from pseudovad.data.cache import load_frames, prepare_frame
from pseudovad.data.clips import ClipDataset, to_model_range
from pseudovad.data.dataset import Video
from pseudovad.data.decode import frame_folder_video, is_ignored, is_image, iter_frames
from pseudovad.data.layouts import load_dataset
from pseudovad.errors import PseudovadError
from pseudovad.evaluation.protocol import fuse
from pseudovad.metrics import error_map
from pseudovad.runs import load_trained
from pseudovad.training.base import Pipeline
from pseudovad.reporting.plots import mask_runs, plot_timeline

# Prediction error (|prediction - frame| in [0, 1] intensity units) shown at full heat-map colour.
HEAT_FULL_SCALE = 0.25
SEGMENT_CONVENTION = (
    "frames are 0-based; start_frame and end_frame are both inclusive; start_time is when the first flagged "
    "frame starts and end_time when the last one ends, in seconds (frame / fps)"
)


def training_threshold(config: Config, pipeline, percentile: float, max_clips: int) -> dict:
    """The P-th percentile of the PSNRs of up to `max_clips` training clips, spread evenly over the
    training set; the clips come from the frame cache training built, resized the same way."""
    if not 0 < percentile < 100:
        raise PseudovadError(f"--percentile must be between 0 and 100 (exclusive), got {percentile}")
    if max_clips < 1:
        raise PseudovadError(f"--threshold-clips must be at least 1, got {max_clips}")
    hint = "pass --threshold DB to set the PSNR threshold yourself"
    if not config.data.root:
        raise PseudovadError(f"the run records no training data, so no threshold can be taken from it; {hint}")
    try:
        labels = Path(config.data.labels) if config.data.labels else None
        dataset = load_dataset(Path(config.data.root), config.data.layout, labels)
        if not dataset.train:
            raise PseudovadError(f"{dataset.root} holds no training videos")
        frames = load_frames(dataset.train, config.data.height, config.data.width, config.data.channels,
                             config.data.cache_dir, "training frames")
    except PseudovadError as error:
        raise PseudovadError(f"the run's training data is unavailable ({error}); {hint}") from None
    clips = ClipDataset(frames, config.data.clip_length)
    chosen = np.unique(np.linspace(0, len(clips) - 1, min(max_clips, len(clips))).round().astype(int))
    scores = []
    batch_size = config.eval.batch_size
    for begin in tqdm(range(0, len(chosen), batch_size), desc="scoring training clips", unit="batch", leave=False):
        batch = clips.batch(chosen[begin : begin + batch_size]).to(pipeline.device)
        scores.append(pipeline.score(batch)["psnr"].float().cpu().numpy())
    psnr = np.concatenate(scores)
    return {
        "psnr_db": round(float(np.percentile(psnr, percentile)), 4),
        "percentile": percentile,
        "training_clips": int(len(psnr)),
        "training_data": str(dataset.root),
        "training_psnr_db": {"min": round(float(psnr.min()), 4), "median": round(float(np.median(psnr)), 4),
                             "max": round(float(psnr.max()), 4)},
    }


def threshold_rule(threshold: dict) -> str:
    """Where the threshold came from, in words."""
    if "percentile" in threshold:
        return f"percentile {threshold['percentile']:g} of the training PSNRs"
    return "given with --threshold"


def find_videos(source: Path) -> tuple[list[Video], bool]:
    """The videos at `source` (a video file, a frame folder, or a folder of either) and whether it
    is a folder of several, whose results go to one subfolder each."""
    source = Path(source).expanduser()
    if source.is_dir() and any(is_image(p) and not is_ignored(p) for p in source.iterdir()):
        return [frame_folder_video(source)], False
    return load_dataset(source, "footage").test, source.is_dir()


def video_fps(video: Video, default: float) -> tuple[float, str]:
    """Frames per second from the video file's header; frame folders (and broken headers) get `default`."""
    if not video.is_frame_folder:
        capture = cv2.VideoCapture(str(video.path))
        fps = capture.get(cv2.CAP_PROP_FPS)
        capture.release()
        if math.isfinite(fps) and fps > 0:
            return float(fps), "video header"
    return float(default), "--fps"


def score_source(
    source: Path,
    run_dir: Path,
    out_dir: Path,
    percentile: float = 1.0,
    threshold_clips: int = 500,
    threshold_db: float | None = None,
    fps: float = 25.0,
    annotate: bool = False,
) -> list[dict]:
    """Score every video at `source` with the run's model into `out_dir` (one subfolder per video
    for a folder of several); returns each video's summary (what segments.json holds)."""
    if fps <= 0:
        raise PseudovadError(f"--fps must be positive, got {fps}")
    videos, several = find_videos(source)
    config, pipeline, iteration = load_trained(Path(run_dir))
    if "psnr" not in score_columns(pipeline):
        raise PseudovadError(f"{run_dir}: the {config.pipeline} pipeline has no PSNR score, and `score` flags frames by PSNR")
    if threshold_db is None:
        threshold = training_threshold(config, pipeline, percentile, threshold_clips)
    else:
        threshold = {"psnr_db": float(threshold_db), "given_by": "--threshold"}
    summaries = []
    for video in videos:
        target = Path(out_dir) / video.name if several else Path(out_dir)
        summary = score_video(video, config, pipeline, target, threshold, *video_fps(video, fps), annotate)
        summary.update({"run": str(run_dir), "iteration": iteration})
        (target / "segments.json").write_text(json.dumps(summary, indent=1) + "\n")
        summaries.append(summary)
    return summaries


def stream_clips(video: Video, config: Config, keep_frames: bool) -> Iterator[tuple[list[int], np.ndarray | None, list[tuple[int, np.ndarray]]]]:
    """Decode `video` once and yield its clips in batches: (the index of each clip's last frame,
    the clips (n, t+1, H, W, C) uint8 resized as in training, or None, and, with `keep_frames`, the
    decoded RGB frames since the previous batch). Only a rolling window of clip_length + 1 resized
    frames is kept otherwise."""
    t, size = config.data.clip_length, (config.data.height, config.data.width, config.data.channels)
    window: deque[np.ndarray] = deque(maxlen=t + 1)
    ends: list[int] = []
    clips: list[np.ndarray] = []
    decoded: list[tuple[int, np.ndarray]] = []
    for index, rgb in enumerate(tqdm(iter_frames(video), total=video.num_frames, desc=f"scoring {video.name}", unit="frame")):
        window.append(prepare_frame(rgb, *size))
        if keep_frames:
            decoded.append((index, rgb))
        if len(window) == t + 1:
            ends.append(index)
            clips.append(np.stack(window))
        if len(clips) == config.eval.batch_size:
            yield ends, np.stack(clips), decoded
            ends, clips = [], []
            decoded.clear()  # in place: the caller's reference to the batch's frames lets go of them too
    if ends or decoded:
        yield ends, np.stack(clips) if clips else None, decoded


def score_columns(pipeline: Pipeline) -> list[str]:
    """The score columns of scores.csv: the pipeline's declared scores, then its fused score."""
    fusion = pipeline.fused()
    return [score.name for score in pipeline.scores] + ([fusion.name] if fusion else [])


def score_video(
    video: Video, config: Config, pipeline: Pipeline, out_dir: Path, threshold: dict, fps: float, fps_from: str, annotate: bool
) -> dict:
    """Stream one video through the model; write scores.csv, scores.png (and annotated.mp4)."""
    t = config.data.clip_length
    if video.num_frames <= t:
        raise PseudovadError(f"{video.path}: {video.num_frames} frames; scoring needs at least {t + 1} (clip_length + 1)")
    out_dir.mkdir(parents=True, exist_ok=True)
    scores = {score.name: np.full(video.num_frames, np.nan) for score in pipeline.scores}
    limit = threshold["psnr_db"]
    writer = _AnnotatedVideo(out_dir / "annotated.mp4", fps, limit) if annotate else None
    try:
        for ends, clips, decoded in stream_clips(video, config, keep_frames=writer is not None):
            errors = {}
            if clips is not None:
                tensor = to_model_range(clips).to(pipeline.device)
                for name, values in pipeline.score(tensor).items():
                    scores[name][ends] = values.float().cpu().numpy()
                if writer is not None:
                    errors = dict(zip(ends, error_map(pipeline.predict(tensor), tensor[:, -1]).cpu().numpy()))
            for index, rgb in decoded:
                writer.write(rgb, index / fps, scores["psnr"][index], errors.get(index))
    finally:
        if writer is not None:
            writer.close()
    fusion = pipeline.fused()
    if fusion is not None:
        scores[fusion.name] = np.full(video.num_frames, np.nan)
        scores[fusion.name][t:] = fuse(*(scores[part][t:] for part in fusion.parts), fusion.weight)
    return _write_outputs(video, out_dir, fps, fps_from, t, scores, threshold)


def _write_outputs(video: Video, out_dir: Path, fps: float, fps_from: str, t: int, scores: dict[str, np.ndarray],
                   threshold: dict) -> dict:
    """scores.csv, scores.png and the summary (segments.json's content) of one scored video."""
    psnr, limit = scores["psnr"], threshold["psnr_db"]
    flagged = psnr < limit  # NaN (unscored) compares False
    _write_csv(out_dir / "scores.csv", fps, scores, flagged)
    segments = [_segment(start, end - 1, fps, psnr) for start, end in mask_runs(flagged)]
    times = np.arange(video.num_frames) / fps
    others = {name: values for name, values in scores.items() if name != "psnr"}
    plot_timeline(
        out_dir / "scores.png",
        f"{video.name}: {len(segments)} flagged segment(s), PSNR below {limit:.2f} dB ({threshold_rule(threshold)})",
        times, psnr, limit, flagged, others,
    )
    return {
        "source": str(video.path),
        "frames": video.num_frames,
        "scored_frames": video.num_frames - t,
        "unscored_first_frames": t,
        "fps": fps,
        "fps_from": fps_from,
        "threshold": {**threshold, "rule": "a frame is flagged when the PSNR of its prediction is below psnr_db"},
        "flagged_frames": int(flagged.sum()),
        "convention": SEGMENT_CONVENTION,
        "segments": segments,
    }


def _segment(start: int, end: int, fps: float, psnr: np.ndarray) -> dict:
    return {
        "start_frame": start,
        "end_frame": end,
        "start_time": round(start / fps, 3),
        "end_time": round((end + 1) / fps, 3),
        "frames": end - start + 1,
        "min_psnr_db": round(float(psnr[start : end + 1].min()), 4),
    }


def _write_csv(path: Path, fps: float, scores: dict[str, np.ndarray], flagged: np.ndarray) -> None:
    """One row per frame: frame, time, each score (high = normal; unscored frames are empty cells),
    flagged (1 or 0)."""
    def cell(value: float) -> str:
        return "" if math.isnan(value) else f"{value:.5f}"

    with path.open("w", newline="") as handle:
        rows = csv.writer(handle)
        rows.writerow(["frame", "time", *scores, "flagged"])
        for index in range(len(flagged)):
            rows.writerow([index, f"{index / fps:.3f}", *(cell(values[index]) for values in scores.values()), int(flagged[index])])


class _AnnotatedVideo:
    """The input frames with the prediction error as a heat map blended over them and the flagged
    state drawn, written one frame at a time (MPEG-4 Part 2 in an .mp4). Frames narrower than
    MIN_VIDEO_WIDTH are enlarged by a whole factor so the drawn text stays readable."""

    MIN_VIDEO_WIDTH = 480
    _FONT = cv2.FONT_HERSHEY_SIMPLEX

    def __init__(self, path: Path, fps: float, threshold: float) -> None:
        self.path, self.fps, self.threshold = path, fps, threshold
        self.writer: cv2.VideoWriter | None = None

    def _open(self, height: int, width: int) -> None:
        self.factor = max(1, math.ceil(self.MIN_VIDEO_WIDTH / width))
        self.size = (width * self.factor, height * self.factor)
        widest = cv2.getTextSize("00000.00 s  PSNR 00.00 dB", self._FONT, 1.0, 2)[0][0]
        self.font_scale = min(self.size[1] / 400, 0.9 * self.size[0] / widest)
        self.thickness = max(round(self.font_scale * 2), 1)
        self.writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*"mp4v"), self.fps, self.size)
        if not self.writer.isOpened():
            raise PseudovadError(f"cannot write {self.path}: OpenCV has no MPEG-4 encoder here")

    def write(self, rgb: np.ndarray, seconds: float, psnr: float, error: np.ndarray | None) -> None:
        if self.writer is None:
            self._open(*rgb.shape[:2])
        width, height = self.size
        frame = cv2.resize(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), self.size, interpolation=cv2.INTER_NEAREST)
        if error is not None:
            strength = np.clip(cv2.resize(error, self.size, interpolation=cv2.INTER_LINEAR) / HEAT_FULL_SCALE, 0, 1)
            heat = cv2.applyColorMap((strength * 255).astype(np.uint8), cv2.COLORMAP_JET)
            alpha = 0.6 * strength[..., None]
            frame = (frame * (1 - alpha) + heat * alpha).astype(np.uint8)
        text = f"{seconds:.2f} s  " + ("no score yet" if math.isnan(psnr) else f"PSNR {psnr:.2f} dB")
        line = round(30 * self.font_scale)
        cv2.putText(frame, text, (8, line + 4), self._FONT, self.font_scale, (0, 0, 0), self.thickness + 2, cv2.LINE_AA)
        cv2.putText(frame, text, (8, line + 4), self._FONT, self.font_scale, (255, 255, 255), self.thickness, cv2.LINE_AA)
        if not math.isnan(psnr) and psnr < self.threshold:
            border = max(round(min(height, width) / 40), 2)
            cv2.rectangle(frame, (0, 0), (width - 1, height - 1), (0, 0, 255), border)
            cv2.putText(frame, "ANOMALY", (8 + border, height - 8 - border), self._FONT, self.font_scale * 1.3,
                        (0, 0, 255), self.thickness + 1, cv2.LINE_AA)
        self.writer.write(frame)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.release()
