"""Your own camera, end to end, as a newcomer meets it (issue 16): a folder of normal videos, a tiny
training, scoring from another working directory with nothing but the run folder, an export that
scores the same, live mode on a file with JSON-lines events, the Python API, and Ctrl-C in live mode.

The commands that a user types run in their own process (a fresh interpreter, another folder), so
nothing of the test's process (imports, the working directory, the frame cache) helps them.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import shutil
import subprocess
import sys
import time
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
import torch

import pseudovad
from pseudovad.cli import main
from pseudovad.errors import PseudovadError
from pseudovad.export import EXPORT_TOLERANCE

from helpers import TINY_SET

REPO_ROOT = Path(__file__).resolve().parents[1]
# Held-out 30 % of the tiny scene's 24-frame videos: 8 frames, 4 clips each, to calibrate on.
TRAIN = [*TINY_SET, "--set", "data.holdout=0.3", "--iterations", "30"]


def write_avi(frame_paths: list[Path], path: Path, fps: float = 25, repeat: int = 1) -> int:
    images = [cv2.imread(str(p)) for p in frame_paths] * repeat
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, images[0].shape[1::-1])
    for image in images:
        writer.write(image)
    writer.release()
    return len(images)


def frames_of(folder: Path) -> list[Path]:
    return sorted(folder.iterdir())


def pseudovad_process(*arguments: str, cwd: Path, **options) -> subprocess.Popen:
    """`pseudovad ARGS` as a user runs it: a new process, in `cwd`, with this checkout's code."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([str(REPO_ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen([sys.executable, "-m", "pseudovad", *arguments], cwd=cwd, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **options)


def run_pseudovad(*arguments: str, cwd: Path) -> subprocess.CompletedProcess:
    process = pseudovad_process(*arguments, cwd=cwd)
    out, err = process.communicate(timeout=300)
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


@pytest.fixture(scope="module")
def home(tiny_data, tmp_path_factory) -> Path:
    """A newcomer's folder: my_camera/ with two normal videos, and test_video.avi holding an anomaly."""
    home = tmp_path_factory.mktemp("home")
    for name in ("01", "02"):
        write_avi(frames_of(tiny_data / "training" / "frames" / name), home / "my_camera" / f"{name}.avi")
    write_avi(frames_of(tiny_data / "testing" / "frames" / "02"), home / "test_video.avi")  # a vehicle drives through
    return home


@pytest.fixture(scope="module")
def trained(home) -> Path:
    assert main(["train", "camera_ffp", "--data", str(home / "my_camera"), "--out", str(home / "runs" / "camera"), *TRAIN]) == 0
    return home / "runs" / "camera"


def decoded(video: Path) -> list[np.ndarray]:
    """The RGB frames of a video file, as a user's own code would decode them."""
    capture = cv2.VideoCapture(str(video))
    frames = []
    while (read := capture.read())[0]:
        frames.append(cv2.cvtColor(read[1], cv2.COLOR_BGR2RGB))
    return frames


def prepared_clips(detector, video: Path) -> np.ndarray:  # noqa: ANN001 - a pseudovad Detector
    """Every clip of the video as an export takes it: 5 prepared frames, (N, 5, H, W, C) uint8."""
    prepared = [detector.prepare(rgb) for rgb in decoded(video)]
    return np.stack([np.stack(prepared[end - 4 : end + 1]) for end in range(4, len(prepared))])


def read_csv(path: Path) -> list[dict]:
    with path.open() as handle:
        return list(csv.DictReader(handle))


def test_a_folder_of_normal_videos_trains_and_calibrates_on_held_out_frames(home, trained, capsys):
    assert main(["inspect", str(home / "my_camera"), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["layout"], summary["train"]["videos"], summary["train"]["frames"], summary["test"]["videos"]) == ("footage", 2, 48, 0)
    calibration = json.loads((trained / "calibration.json").read_text())
    assert calibration["clips"] == 8 and calibration["clips_from"].startswith("the last 30% of each training video")
    assert calibration["frames"]["sizes"] == [[64, 48]]
    assert json.loads((trained / "train_summary.json").read_text())["training_clips"] == 2 * (16 - 4)


@pytest.mark.slow
def test_the_newcomer_path_from_another_folder_with_only_the_run(home, trained, tmp_path):
    """score -> export -> the export scores the same -> live on the file gives the same events as JSON lines."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    run = os.path.relpath(trained, elsewhere)
    video = os.path.relpath(home / "test_video.avi", elsewhere)
    scored = run_pseudovad("score", video, "--run", run, "--out", "scored", cwd=elsewhere)
    assert scored.returncode == 0, scored.stderr
    assert "Traceback" not in scored.stderr
    summary = json.loads((elsewhere / "scored" / "segments.json").read_text())
    rows = read_csv(elsewhere / "scored" / "scores.csv")
    assert summary["frames"] == len(rows) == 30 and summary["segments"], summary

    exported = run_pseudovad("export", run, cwd=elsewhere)
    assert exported.returncode == 0, exported.stderr
    inside = {"pseudovad.json": ""}
    scorer = torch.export.load(str(trained / "export" / "scorer.pt2"), extra_files=inside).module()
    detector = pseudovad.load(trained)
    clips = prepared_clips(detector, home / "test_video.avi")
    with torch.no_grad():
        anomaly, flagged, score = (value.numpy() for value in scorer(torch.from_numpy(clips)))
    csv_score = np.array([float(row["psnr"]) for row in rows[4:]])
    csv_anomaly = np.array([float(row["anomaly"]) for row in rows[4:]])
    np.testing.assert_allclose(score, csv_score, rtol=0, atol=EXPORT_TOLERANCE)  # the CSV keeps 5 decimals
    np.testing.assert_allclose(anomaly, csv_anomaly, rtol=0, atol=EXPORT_TOLERANCE)
    np.testing.assert_array_equal(flagged, score < summary["threshold"]["value"])
    description = json.loads((trained / "export" / "scorer.pt2.json").read_text())
    assert description["run"] == trained.name  # the folder's name, not where it lies here
    assert description["input"]["shape"] == ["batch", 5, 32, 32, 1] and description["threshold"] == summary["threshold"]
    assert {key: description["alerts"][key] for key in summary["alerts"]} == summary["alerts"]  # the rule score applied at 25 fps
    assert json.loads(inside["pseudovad.json"]) == {key: value for key, value in description.items() if key != "file"}

    live = run_pseudovad("live", video, "--run", run, cwd=elsewhere)
    assert live.returncode == 0, live.stderr
    events = [json.loads(line) for line in live.stdout.splitlines()]
    assert events[0]["event"] == "start" and events[0]["fps"] == 25.0
    assert events[-1]["event"] == "end" and (events[-1]["reason"], events[-1]["frames"], events[-1]["dropped_frames"]) == ("end of the video", 30, 0)
    opens = [e for e in events if e["event"] == "open"]
    closes = [e for e in events if e["event"] == "close"]
    assert [(e["start_frame"], e["end_frame"]) for e in closes] == [(s["start_frame"], s["end_frame"]) for s in summary["segments"]]
    assert [e["start_frame"] for e in opens] == [e["start_frame"] for e in closes]
    minimum = summary["alerts"]["min_duration_frames"]
    assert all(e["at_frame"] - e["start_frame"] + 1 == minimum for e in opens)
    order = [e["event"] for e in events if e["event"] in ("open", "close")]
    assert order == ["open", "close"] * len(closes)
    assert all("wall_time" in e for e in events[1:])


def test_the_python_api_scores_frames_in_memory(home, trained, tmp_path):
    assert main(["score", str(home / "test_video.avi"), "--run", str(trained), "--out", str(tmp_path / "scored")]) == 0
    anomaly = pseudovad.load(trained).score(np.stack(decoded(home / "test_video.avi")))
    assert anomaly.shape == (30,) and np.isnan(anomaly[:4]).all()
    expected = [float(row["anomaly"]) for row in read_csv(tmp_path / "scored" / "scores.csv")[4:]]
    np.testing.assert_allclose(anomaly[4:], expected, atol=1e-5)
    assert ((anomaly[4:] >= 0) & (anomaly[4:] <= 1)).all()
    detector = pseudovad.load(trained)
    for wrong in (np.zeros((32, 32, 3), np.float32), np.zeros((32, 32), np.uint8), np.zeros((32, 32, 4), np.uint8)):
        with pytest.raises(PseudovadError, match=r"must be an \(H, W, 3\) uint8 RGB array, got"):
            detector.score([wrong] * 6)


def test_resume_needs_only_the_run_folder(home, trained, tmp_path):
    copy = tmp_path / "runs" / "camera"
    shutil.copytree(trained, copy, ignore=shutil.ignore_patterns(".lock"))
    resumed = run_pseudovad("train", "--out", "runs/camera", "--resume", "--iterations", "32", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert "trained ffp for 32 iterations" in resumed.stdout and "calibrated on 8 normal clips" in resumed.stdout
    assert json.loads((copy / "calibration.json").read_text())["iteration"] == 32


def _ignore_and_block_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})


@pytest.mark.parametrize("parent", ["default", "ignoring"])
def test_live_mode_stops_cleanly_on_ctrl_c(tiny_data, trained, tmp_path, parent):
    """SIGINT while a 10 s file plays at its own rate: exit 130, no traceback, the last line says why it
    ended, and every file is complete: the annotated video plays the frames scored, one CSV row each.
    Also when started by a parent that ignores and blocks SIGINT (a shell's background job, some
    supervisors), which the process would otherwise inherit and so never see the signal."""
    video = tmp_path / "long.avi"
    write_avi(frames_of(tiny_data / "testing" / "frames" / "04"), video, repeat=9)
    out_dir = tmp_path / "live"
    process = pseudovad_process("live", str(video), "--run", str(trained), "--out", str(out_dir), "--video", cwd=tmp_path,
                                preexec_fn=_ignore_and_block_sigint if parent == "ignoring" else None)
    first = process.stdout.readline()
    assert first and json.loads(first)["event"] == "start", first + process.stderr.read()
    while not (out_dir / "scores.csv").is_file() or len(read_csv(out_dir / "scores.csv")) < 20:
        assert process.poll() is None, process.stderr.read()
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    last = json.loads(out.splitlines()[-1])
    assert last["event"] == "end" and last["reason"] == "interrupted" and 20 <= last["frames"] < 270
    assert "Traceback" not in err
    assert err.endswith(f"pseudovad live: interrupted: stopped after {last['frames']} frames; {out_dir} holds the results up to there\n")
    summary = json.loads((out_dir / "segments.json").read_text())
    assert (summary["stopped"], summary["frames"]) == ("interrupted", last["frames"])
    assert len(read_csv(out_dir / "scores.csv")) == last["frames"]
    with av.open(str(out_dir / "annotated.mp4")) as container:
        assert sum(1 for _ in container.decode(video=0)) == last["frames"]


def test_score_stopped_by_sigterm_finishes_every_file(tiny_data, trained, tmp_path):
    """SIGTERM (a scheduler, `timeout`) while `score` writes an annotated video: exit 130, no traceback,
    segments.json says it was interrupted, one CSV row per frame scored, and the video plays them."""
    video = tmp_path / "long.avi"
    write_avi(frames_of(tiny_data / "testing" / "frames" / "04"), video, repeat=30)
    out_dir = tmp_path / "scored"
    process = pseudovad_process("score", str(video), "--run", str(trained), "--out", str(out_dir), "--video", cwd=tmp_path)
    while not (out_dir / "scores.csv").is_file() or len(read_csv(out_dir / "scores.csv")) < 20:
        assert process.poll() is None, process.stderr.read()
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130 and "Traceback" not in err, err
    summary = json.loads((out_dir / "segments.json").read_text())
    assert summary["stopped"] == "interrupted" and 20 <= summary["frames"] < 900
    assert len(read_csv(out_dir / "scores.csv")) == summary["frames"]
    with av.open(str(out_dir / "annotated.mp4")) as container:
        assert sum(1 for _ in container.decode(video=0)) == summary["frames"]


def test_live_in_process_puts_the_signal_state_back(tmp_path, capsys):
    """`live` takes SIGINT and SIGTERM for itself while it runs; a caller of main() in its own process
    (a test suite, a notebook) gets its handlers and signal mask back, even when live fails."""
    before = signal.signal(signal.SIGINT, signal.SIG_IGN), signal.getsignal(signal.SIGTERM)
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    try:
        assert main(["live", "99", "--run", str(tmp_path / "no_run")]) == 2
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN and signal.getsignal(signal.SIGTERM) == before[1]
        assert signal.SIGTERM in signal.pthread_sigmask(signal.SIG_BLOCK, [])
    finally:
        signal.signal(signal.SIGINT, before[0])
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
    assert "pseudovad live: error:" in capsys.readouterr().err


def test_the_onnx_export_scores_as_the_run_does(home, trained, tmp_path, capsys):
    """`export --format onnx` (opset 18): onnxruntime's scores equal the run's within the tolerance, at
    another batch size than the one exported with, and the description travels inside the file."""
    onnxruntime = pytest.importorskip("onnxruntime")
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxscript")
    copy = tmp_path / "run"
    shutil.copytree(trained, copy, ignore=shutil.ignore_patterns(".lock", "export"))
    assert main(["export", str(copy), "--format", "onnx"]) == 0
    path = copy / "export" / "scorer.onnx"
    assert capsys.readouterr().out == f"exported: {path}\n"
    detector = pseudovad.load(copy)
    clips = prepared_clips(detector, home / "test_video.avi")
    anomaly, flagged, score = onnxruntime.InferenceSession(str(path)).run(None, {"clips": clips})
    expected = detector.score_clips(clips)
    np.testing.assert_allclose(score, expected["psnr"], rtol=0, atol=EXPORT_TOLERANCE)
    np.testing.assert_allclose(anomaly, expected["anomaly"], rtol=0, atol=EXPORT_TOLERANCE)
    np.testing.assert_array_equal(flagged, expected["psnr"] < detector.threshold)
    properties = {prop.key: prop.value for prop in onnx.load(str(path)).metadata_props}
    assert json.loads(properties["pseudovad.json"])["threshold"]["value"] == detector.threshold


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")  # torch 2.13; still the loader of TorchScript
def test_a_run_with_a_critic_deploys_its_fused_score_calibrated(home, tmp_path):
    """learn_not_to_predict with a critic declares PSNR fused with the critic: the calibration maps each
    part by its own percentiles (a frame-by-frame fusion), and the Python API and the export flag by it
    (here the TorchScript export, kept for LibTorch: the other tests cover pt2 and ONNX)."""
    run = home / "runs" / "critic"
    objective = "objective={name: learn_not_to_predict, probability: 0.5, sources: [{name: patch}], critic: {enabled: true, width: 4, fusion_weight: 0.7}}"
    assert main(["train", "camera_ffp", "--data", str(home / "my_camera"), "--out", str(run), *TRAIN, "--set", objective]) == 0
    calibration = json.loads((run / "calibration.json").read_text())
    assert calibration["score"] == "combined" and calibration["fusion"]["parts"] == ["psnr", "classifier"]
    assert calibration["fusion"]["weight"] == 0.7
    ranges = calibration["fusion"]["ranges"]
    assert ranges["psnr"]["low"] < ranges["psnr"]["high"] and 0 <= ranges["classifier"]["low"] <= ranges["classifier"]["high"] <= 1
    detector = pseudovad.load(run)
    assert detector.score_name == "combined"
    frames = [cv2.cvtColor(frame, cv2.COLOR_BGR2RGB) for frame in _decode(home / "test_video.avi")][:12]
    prepared = np.stack([detector.prepare(frame) for frame in frames])
    clips = np.stack([prepared[i : i + 5] for i in range(6)])
    scores = detector.score_clips(clips)
    mapped = {part: (scores[part] - ranges[part]["low"]) / (ranges[part]["high"] - ranges[part]["low"])
              for part in ("psnr", "classifier")}  # each part by its own percentiles, written out from calibration.json
    np.testing.assert_allclose(scores["combined"], 0.7 * mapped["psnr"] + 0.3 * mapped["classifier"], rtol=1e-5, atol=1e-6)
    assert main(["export", str(run), "--format", "torchscript"]) == 0
    exported = torch.jit.load(str(run / "export" / "scorer.torchscript.pt"))(torch.from_numpy(clips))
    np.testing.assert_allclose(exported[2].detach().numpy(), scores["combined"], atol=EXPORT_TOLERANCE)
    clear = np.abs(scores["combined"] - detector.threshold) > EXPORT_TOLERANCE  # frames the tolerance cannot flip
    flags = exported[1].detach().numpy().astype(bool)
    np.testing.assert_array_equal(flags[clear], (scores["combined"] < detector.threshold)[clear])
    # `score` alerts on the same fused score, and writes it beside its parts
    assert main(["score", str(home / "test_video.avi"), "--run", str(run), "--out", str(tmp_path / "scored")]) == 0
    with open(tmp_path / "scored" / "scores.csv") as table:
        rows = list(csv.DictReader(table))
    assert {"psnr", "classifier", "combined", "anomaly"} <= set(rows[0])
    assert rows[0]["combined"] == "" and rows[4]["combined"] != ""  # no prediction for the first clip_length frames
    np.testing.assert_allclose([float(row["combined"]) for row in rows[4:10]], scores["combined"], atol=1e-4)
    columns = json.loads((tmp_path / "scored" / "segments.json").read_text())["columns"]
    assert list(columns)[2:6] == ["psnr", "classifier", "combined", "anomaly"] and "alerts use" in columns["combined"]


def _decode(path: Path) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            return frames
        frames.append(frame)


def test_a_stream_that_reports_no_frame_rate_takes_fps_from_the_command(monkeypatch):
    """A network stream whose container gives no frame rate is timed by --fps (it was always 25)."""
    from pseudovad.data import sources

    class Stream:
        average_rate = guessed_rate = None

    class Container:
        streams = type("Streams", (), {"video": [Stream()]})()

        def decode(self, stream):
            return iter([])

        def close(self):
            pass

    monkeypatch.setattr(av, "open", lambda *args, **kwargs: Container())
    source = sources.open_source("rtsp://127.0.0.1:9/camera", 12.5, paced=False)
    assert (source.fps, source.fps_from) == (12.5, "--fps")
