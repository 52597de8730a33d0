"""`pseudovad score` and `pseudovad live`: a trained run over your own footage, with alerts.

Both stream frames through the run's Detector (detector.py) and the alert rules (alerts.py) in one
loop, `watch`: `score` reads video files as fast as they decode and writes a plot at the end; `live`
reads a camera, a stream or a file at its own frame rate and prints each event as one JSON line the
moment it opens or closes. Only a window of frames is held, so memory stays bounded however long the
footage. The threshold comes from the run's calibration.json (a target false-alarm rate), so the run
folder is all either command needs. Every output file is closed properly when the footage ends, when
it fails, and on Ctrl-C: what was written is complete up to the last frame scored.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable
from datetime import datetime, timezone
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from pseudovad.alerts import DEFAULT_FPS, FLAG_LEVEL, SEGMENT_CONVENTION, AlertRules, EventTracker, FootageCheck, segment
from pseudovad.data.dataset import Video
from pseudovad.data.decode import is_image, is_ignored
from pseudovad.data.layouts import list_videos
from pseudovad.data.sources import Source, file_video, is_stream_or_camera, open_source, video_source
from pseudovad.detector import Detector, ScoredFrame
from pseudovad.errors import DataError, Interrupted, PseudovadError, RuntimeFailure
from pseudovad.files import check_can_write, write_json
from pseudovad.interrupts import whole_unit
from pseudovad.reporting.plots import heat_map, plot_timeline
from pseudovad.training.trained import compile_if_it_pays

SCORES_CSV, SUMMARY_JSON, ANNOTATED_VIDEO, PLOT = "scores.csv", "segments.json", "annotated.mp4", "scores.png"
Emit = Callable[[dict], None]


def find_videos(source: str | Path) -> tuple[list[Video], bool]:
    """The videos at `source` (a video file, a frame folder, or a folder of either) and whether it
    is a folder of several, whose results go to one subfolder each."""
    if is_stream_or_camera(str(source)):
        raise DataError(f"{source} is a camera or a stream: watch it with `pseudovad live {source} --run RUN`")
    source = Path(source).expanduser()
    if source.is_dir() and not any(is_image(p) and not is_ignored(p) for p in source.iterdir()):
        return list_videos(source)[0], True
    return [file_video(source)], False


def score_source(source: str | Path, run_dir: Path, out_dir: Path, false_alarm_rate: float | None = None,
                 threshold: float | None = None, fps: float = DEFAULT_FPS, annotate: bool = False,
                 rules: AlertRules = AlertRules(), compile_setting: str | None = None) -> list[dict]:
    """Score every video at `source` into `out_dir` (one subfolder per video for a folder of several);
    returns each video's summary (what its segments.json holds). `compile_setting` overrides eval.compile."""
    _check_fps(fps)
    videos, several = find_videos(source)
    _check_out(Path(out_dir))
    detector = Detector(run_dir, false_alarm_rate, threshold)
    compile_if_it_pays(detector.pipeline, sum(video.num_frames for video in videos), compile_setting)
    summaries = []
    for video in videos:
        _check_long_enough(video.path, video.num_frames, detector)
        source = video_source(video, fps)
        source.frames = iter(tqdm(source.frames, total=video.num_frames, desc=f"scoring {video.name}", unit="frame"))
        summaries.append(watch(source, detector, Path(out_dir) / video.name if several else Path(out_dir), rules, annotate))
    return summaries


def watch_live(spec: str, run_dir: Path, out_dir: Path | None, emit: Emit, false_alarm_rate: float | None = None,
               threshold: float | None = None, fps: float = DEFAULT_FPS, annotate: bool = False,
               rules: AlertRules = AlertRules(), compile_setting: str | None = None) -> dict:
    """Watch a camera index, a stream URL or a file (at its own frame rate), emitting each event as it
    opens and closes; until the footage ends (a camera's or stream's end is a RuntimeFailure) or Ctrl-C.
    `compile_setting` overrides eval.compile (`auto` compiles: a stream has no end)."""
    _check_fps(fps)
    if annotate and out_dir is None:
        raise PseudovadError("--video needs --out DIR to write the annotated video into")
    if out_dir is not None:
        _check_out(out_dir)
    detector = Detector(run_dir, false_alarm_rate, threshold)
    compile_if_it_pays(detector.pipeline, math.inf, compile_setting)
    source = open_source(spec, fps, paced=True)
    emit({"event": "start", "source": source.name, "fps": round(source.fps, 3), "run": str(run_dir),
          "threshold": detector.describe_threshold(), "alerts": rules.describe(source.fps)})
    summary = watch(source, detector, out_dir, rules, annotate, emit)
    if source.live:
        where = f"; {out_dir} holds the results up to there" if out_dir else ""
        raise RuntimeFailure(f"{source.name} stopped sending frames after {summary['frames']}{where}")
    _check_long_enough(source.name, summary["frames"], detector)  # a file (its length known only at its end)
    return summary


def _check_long_enough(name: str | Path, frames: int, detector: Detector) -> None:
    """Footage shorter than one clip gets no score at all: an error, not an empty result."""
    if frames <= detector.clip_length:
        raise PseudovadError(f"{name}: {frames} frames; scoring needs at least {detector.clip_length + 1} (clip_length + 1)")


def _check_out(out_dir: Path) -> None:
    """Fail before the model loads, naming the folder, if the results could not be written there."""
    if out_dir.exists() and not out_dir.is_dir():
        raise PseudovadError(f"--out {out_dir} is a file, not a folder; choose a folder for the results")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise PseudovadError(f"cannot make --out {out_dir} ({error.strerror}); choose a folder you can write to") from None
    check_can_write(out_dir)


def _check_fps(fps: float) -> None:
    if not (math.isfinite(fps) and fps > 0):
        raise PseudovadError(f"--fps must be a positive number, got {fps}")


def watch(source: Source, detector: Detector, out_dir: Path | None, rules: AlertRules, annotate: bool,
          emit: Emit | None = None) -> dict:
    """The loop both commands run: score each frame, apply the alert rules, write the outputs, and
    finish every file whatever ends the loop (the footage, an error, Ctrl-C)."""
    tracker = EventTracker(rules, source.fps, detector.score_name)
    check = FootageCheck(detector.calibration, detector.false_alarm_rate)
    results = _Results(emit)
    outputs = _Outputs(out_dir, detector, source.fps, annotate, timeline=emit is None)
    frames = 0
    interrupted = False
    stream = detector.stream(source.frames, 1 if emit else None, keep_frames=annotate, errors=annotate)
    try:
        for scored in stream:
            with whole_unit():
                smoothed, flagged, events = tracker.push(scored.index, scored.anomaly, scored.scores[detector.score_name])
                check.add(scored.shape, scored.prepared, not math.isnan(scored.anomaly), bool(flagged))  # as counted in the summary
                outputs.add(scored, smoothed, flagged)
                results.note(events, check.judge(final=False) if emit else [])
                frames = scored.index + 1
    except KeyboardInterrupt:
        interrupted = True
    finally:
        stream.close()
        source.frames.close()
        outputs.close()
    results.note(tracker.finish(), check.judge(final=True))
    stopped = "interrupted" if interrupted else ("the stream ended" if source.live else "end of the video")
    summary = {
        "source": source.name,
        "frames": frames,
        "scored_frames": max(frames - detector.clip_length, 0),
        "unscored_first_frames": min(detector.clip_length, frames),
        "dropped_frames": source.dropped(),
        "fps": source.fps,
        "fps_from": source.fps_from,
        "stopped": stopped,
        "threshold": detector.describe_threshold(),
        "alerts": rules.describe(source.fps),
        "flagged_frames": outputs.flagged,
        "convention": SEGMENT_CONVENTION,
        "columns": column_meanings(detector),
        "segments": results.segments,
        "warnings": results.warnings,
        "run": str(detector.run),
        "iteration": detector.iteration,
    }
    results.emit_end(summary)
    outputs.finish(summary, Path(source.name).name)
    if interrupted:
        where = f"; {out_dir} holds the results up to there" if out_dir else ""
        raise Interrupted(f"stopped after {frames} frames{where}")
    return summary


def column_meanings(detector: Detector) -> dict[str, str]:
    """What each column of scores.csv holds, and which way it points (segments.json states it)."""
    declared = {score.name: score for score in detector.pipeline.scores}

    def meaning(name: str) -> str:
        score = declared.get(name)
        if score is None:  # the calibrated fused score, which no pipeline declares
            return f"{detector.score_label}, high = normal (what the alerts use)"
        return f"{score.label}, high = normal" + (" (a probability)" if score.probability else "")

    scores = {name: meaning(name) for name in detector.score_names}
    return {
        "frame": "0-based frame index",
        "time": "seconds from the first frame (frame / fps)",
        **scores,
        "anomaly": f"{detector.score_name} normalised by the calibration: 0 to 1, high = anomalous, {FLAG_LEVEL} at the threshold",
        "smoothed": "anomaly averaged over the smoothing window (this frame and those just before it)",
        "flagged": f"1 when smoothed is above {FLAG_LEVEL}, else 0; empty cells: the first frames, which have no score",
    }


class _Results:
    """The events and warnings of one watch: kept for segments.json, and emitted as they happen (live)."""

    def __init__(self, emit: Emit | None) -> None:
        self.emit = emit
        self.segments: list[dict] = []
        self.warnings: list[str] = []

    def note(self, events: list[dict], warnings: list[str]) -> None:
        for event in events:
            if event["event"] == "close":
                self.segments.append(segment(event))
            self._emit(event)
        for text in warnings:
            self.warnings.append(text)
            self._emit({"event": "warning", "message": text})

    def emit_end(self, summary: dict) -> None:
        self._emit({"event": "end", "reason": summary["stopped"], "frames": summary["frames"],
                    "dropped_frames": summary["dropped_frames"], "events": len(self.segments)})

    def _emit(self, event: dict) -> None:
        if self.emit is not None:
            self.emit({**event, "wall_time": datetime.now(timezone.utc).isoformat(timespec="milliseconds")})


class _Outputs:
    """scores.csv (a row per frame, written as it comes), annotated.mp4, and at the end segments.json and
    (for files) scores.png; nothing at all without an output folder."""

    def __init__(self, out_dir: Path | None, detector: Detector, fps: float, annotate: bool, timeline: bool) -> None:
        self.out_dir, self.detector, self.fps = out_dir, detector, fps
        self.flagged = 0
        self.timeline: list[float] | None = [] if timeline and out_dir else None
        self.table = self.video = None
        if out_dir is None:
            return
        out_dir.mkdir(parents=True, exist_ok=True)
        for stale in (out_dir / name for name in (SCORES_CSV, SUMMARY_JSON, ANNOTATED_VIDEO, PLOT)):
            if stale.is_symlink() or stale.is_file():  # an earlier scoring's must not sit beside this one's,
                stale.unlink()                         # and a link is removed, never written through
        self.table = ScoreTable(out_dir / SCORES_CSV, list(detector.score_names))
        self.video = AnnotatedVideo(out_dir / ANNOTATED_VIDEO, fps, detector.score_label) if annotate else None

    def add(self, scored: ScoredFrame, smoothed: float, flagged: bool) -> None:
        self.flagged += flagged
        seconds = scored.index / self.fps
        if self.table is not None:
            self.table.row(scored.index, seconds, scored.scores, scored.anomaly, smoothed, flagged)
        if self.video is not None:
            self.video.write(scored.rgb, seconds, scored.scores[self.detector.score_name], smoothed, flagged, scored.error)
        if self.timeline is not None:
            self.timeline.append(scored.scores[self.detector.score_name])

    def close(self) -> None:
        for output in (self.table, self.video):
            if output is not None:
                output.close()

    def finish(self, summary: dict, name: str) -> None:
        if self.out_dir is None:
            return
        write_json(summary, self.out_dir / SUMMARY_JSON)
        if self.timeline:
            scores = np.array(self.timeline)
            alerted = np.zeros(len(scores), bool)
            for event in summary["segments"]:
                alerted[event["start_frame"] : event["end_frame"] + 1] = True
            detector = self.detector
            plot_timeline(self.out_dir / PLOT, f"{name}: {len(summary['segments'])} alert(s), threshold {detector.threshold:.2f} "
                          f"({_threshold_words(detector)})", np.arange(len(scores)) / self.fps, scores, detector.threshold,
                          alerted, detector.score_label)


def _threshold_words(detector: Detector) -> str:
    if detector.false_alarm_rate is None:
        return "given with --threshold"
    return f"{100 * detector.false_alarm_rate:g}% false alarms on normal frames"


class ScoreTable:
    """scores.csv, one row per frame, flushed as written, so a stopped run leaves whole rows only."""

    def __init__(self, path: Path, score_names: list[str]) -> None:
        self.names = score_names
        self.handle = path.open("w", newline="")
        self.rows = csv.writer(self.handle)
        self.rows.writerow(["frame", "time", *score_names, "anomaly", "smoothed", "flagged"])

    def row(self, index: int, seconds: float, scores: dict[str, float], anomaly: float, smoothed: float, flagged: bool) -> None:
        def cell(value: float) -> str:
            return "" if math.isnan(value) else f"{value:.5f}"

        unscored = math.isnan(anomaly)
        self.rows.writerow([index, f"{seconds:.3f}", *(cell(scores[name]) for name in self.names), cell(anomaly),
                            cell(smoothed), "" if unscored else int(flagged)])
        self.handle.flush()

    def close(self) -> None:
        self.handle.close()


class AnnotatedVideo:
    """The input frames with the prediction error as a heat map blended over them and the flagged state
    drawn, encoded as H.264 (yuv420p, moov atom first) in an .mp4 by PyAV: it plays in browsers and
    players alike, and closing it, even after Ctrl-C, leaves a complete file. Frames narrower than
    MIN_VIDEO_WIDTH are enlarged by a whole factor so the drawn text stays readable."""

    MIN_VIDEO_WIDTH = 480
    _FONT = cv2.FONT_HERSHEY_SIMPLEX

    def __init__(self, path: Path, fps: float, label: str) -> None:
        self.path, self.fps, self.label = path, fps, label
        self.container = self.stream = None

    def _open(self, height: int, width: int) -> None:
        import av

        self.factor = max(1, math.ceil(self.MIN_VIDEO_WIDTH / width))
        self.size = (2 * math.ceil(width * self.factor / 2), 2 * math.ceil(height * self.factor / 2))  # yuv420p: even
        widest = cv2.getTextSize(f"00000.00 s  {self.label} 00.00  anomaly 0.00", self._FONT, 1.0, 2)[0][0]
        self.font_scale = min(self.size[1] / 400, 0.95 * self.size[0] / widest)
        self.thickness = max(round(self.font_scale * 2), 1)
        try:
            self.container = av.open(str(self.path), "w", options={"movflags": "+faststart"})
            self.stream = self.container.add_stream("libx264", rate=Fraction(self.fps).limit_denominator(1001))
        except (av.FFmpegError, OSError) as error:
            raise RuntimeFailure(f"cannot write {self.path}: {error}") from None
        self.stream.width, self.stream.height, self.stream.pix_fmt = *self.size, "yuv420p"
        self.stream.options = {"crf": "23", "preset": "veryfast"}

    def write(self, rgb: np.ndarray, seconds: float, score: float, smoothed: float, flagged: bool, error: np.ndarray | None) -> None:
        import av

        if self.container is None:
            self._open(*rgb.shape[:2])
        width, height = self.size
        frame = cv2.resize(np.ascontiguousarray(rgb), self.size, interpolation=cv2.INTER_NEAREST)
        if error is not None:
            heat, strength = heat_map(error, self.size)
            alpha = 0.6 * strength[..., None]
            frame = (frame * (1 - alpha) + heat * alpha).astype(np.uint8)
        text = f"{seconds:.2f} s  " + ("no score yet" if math.isnan(score) else f"{self.label} {score:.2f}  anomaly {smoothed:.2f}")
        line = round(30 * self.font_scale)
        cv2.putText(frame, text, (8, line + 4), self._FONT, self.font_scale, (0, 0, 0), self.thickness + 2, cv2.LINE_AA)
        cv2.putText(frame, text, (8, line + 4), self._FONT, self.font_scale, (255, 255, 255), self.thickness, cv2.LINE_AA)
        if flagged:
            border = max(round(min(height, width) / 40), 2)
            cv2.rectangle(frame, (0, 0), (width - 1, height - 1), (255, 0, 0), border)
            cv2.putText(frame, "ANOMALY", (8 + border, height - 8 - border), self._FONT, self.font_scale * 1.3,
                        (255, 0, 0), self.thickness + 1, cv2.LINE_AA)
        for packet in self.stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
            self.container.mux(packet)

    def close(self) -> None:
        """Flush the encoder and write the container's index; safe to call twice."""
        if self.container is None:
            return
        container, self.container = self.container, None
        for packet in self.stream.encode(None):
            container.mux(packet)
        container.close()

