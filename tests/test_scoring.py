"""`pseudovad score` on a tiny trained run: CSV/JSON/plot outputs, the calibrated threshold, alerts where
the anomalies are, video files and folders, streaming, warnings, and Ctrl-C."""

import csv
import json
import shutil
import weakref

import av
import cv2
import numpy as np
import pytest

from pseudovad.alerts import AlertRules
from pseudovad.cli import main
from pseudovad.data.sources import Gap, Source
from pseudovad.detector import Detector
from pseudovad.scoring import watch

from helpers import TINY_SET as TINY

CLIP_LENGTH = 4
# The fused score (`combined`) min-max normalises each whole video, so a frame's value would depend on
# frames not seen yet: it is not a column (results.json has it); the others are, with their direction.
COLUMNS = ("frame", "time", "psnr", "classifier", "classifier_abnormal", "anomaly", "smoothed", "flagged")


@pytest.fixture(scope="module")
def run(tiny_data, tmp_path_factory):
    """Two-branch pipeline, 30 iterations at 32x32: enough for PSNR to drop on the larger anomalies."""
    run = tmp_path_factory.mktemp("runs") / "two_branch"
    assert main(["train", "synthetic_two_branch", "--data", str(tiny_data), "--out", str(run), "--iterations", "30", *TINY]) == 0
    return run


def read_csv(path):
    with path.open() as handle:
        return list(csv.DictReader(handle))


def flagged_frames(rows):
    return {int(row["frame"]) for row in rows if row["flagged"] == "1"}


def test_scores_csv_segments_and_plot_for_a_frame_folder(tiny_data, run, tmp_path, capsys):
    video = tiny_data / "testing" / "frames" / "02"
    assert main(["score", str(video), "--run", str(run), "--out", str(tmp_path / "out")]) == 0
    assert "1% of them" not in capsys.readouterr().err
    rows = read_csv(tmp_path / "out" / "scores.csv")
    assert tuple(rows[0]) == COLUMNS
    assert len(rows) == len(list(video.iterdir()))
    assert [int(row["frame"]) for row in rows] == list(range(len(rows)))
    assert float(rows[25]["time"]) == pytest.approx(1.0)  # frame folders: 25 fps by default
    for row in rows[:CLIP_LENGTH]:
        assert set(row.values()) - {row["frame"], row["time"]} == {""}
    for row in rows[CLIP_LENGTH:]:
        assert float(row["psnr"]) > 0 and 0 <= float(row["classifier"]) <= 1 and 0 <= float(row["anomaly"]) <= 1
        assert row["flagged"] == str(int(float(row["smoothed"]) > 0.5))
    summary = json.loads((tmp_path / "out" / "segments.json").read_text())
    calibration = json.loads((run / "calibration.json").read_text())
    threshold = summary["threshold"]
    assert (threshold["value"], threshold["false_alarm_rate"]) == (calibration["threshold"], 0.01)
    assert "calibration.json" in threshold["from"] and "training clips the model was trained on" in threshold["from"]
    assert set(summary["columns"]) == set(COLUMNS) and "high = normal" in summary["columns"]["psnr"]
    assert "high = anomalous" in summary["columns"]["anomaly"]
    assert summary["alerts"]["smoothing_frames"] == 5 and summary["alerts"]["min_duration_frames"] == 8
    low = {int(r["frame"]) for r in rows if r["psnr"] and float(r["psnr"]) < threshold["value"]}
    assert low == {int(r["frame"]) for r in rows if r["anomaly"] and float(r["anomaly"]) > 0.5}
    assert summary["flagged_frames"] == len(flagged_frames(rows))
    assert (tmp_path / "out" / "scores.png").stat().st_size > 10_000


def test_alerts_cover_the_true_event_of_the_clearest_test_video(tiny_data, run, tmp_path):
    """The vehicle (a large object moving fast) is the synthetic test set's clearest event; an alert
    may run on past it by one smoothing window, no more."""
    events = json.loads((tiny_data / "dataset.json").read_text())["events"]
    event = next(e for e in events if e["kind"] == "vehicle")
    out = tmp_path / "out"
    assert main(["score", str(tiny_data / "testing" / "frames" / event["video"]), "--run", str(run), "--out", str(out)]) == 0
    summary = json.loads((out / "segments.json").read_text())
    segments, window = summary["segments"], summary["alerts"]["smoothing_frames"]
    assert any(s["start_frame"] < event["end"] and s["end_frame"] >= event["start"] for s in segments), (segments, event)
    assert all(event["start"] - 2 <= s["start_frame"] and s["end_frame"] < event["end"] + window for s in segments), (segments, event)


def test_an_injected_anomaly_raises_one_alert_and_the_normal_frames_before_it_none(tiny_data, run, tmp_path):
    """A bright square jumping to a new place in every frame of a normal training video: no
    predictor trained on the scene can predict it, whatever its training went like."""
    video = tmp_path / "injected"
    shutil.copytree(tiny_data / "training" / "frames" / "02", video)
    frames = sorted(video.iterdir())
    injected = range(12, 18)
    rng = np.random.default_rng(0)
    for index in injected:
        image = cv2.imread(str(frames[index]))
        y, x = rng.integers(0, image.shape[0] - 16), rng.integers(0, image.shape[1] - 16)
        image[y : y + 16, x : x + 16] = 255
        cv2.imwrite(str(frames[index]), image)
    assert main(["score", str(video), "--run", str(run), "--out", str(tmp_path / "out")]) == 0
    rows = read_csv(tmp_path / "out" / "scores.csv")
    raw = {int(r["frame"]) for r in rows if r["anomaly"] and float(r["anomaly"]) > 0.5}
    assert set(injected) <= raw
    segments = json.loads((tmp_path / "out" / "segments.json").read_text())["segments"]
    assert len(segments) == 1 and segments[0]["start_frame"] <= injected[0] + 1 and segments[0]["end_frame"] >= injected[-1]


def write_avi(frame_folder, path, fps):
    images = [cv2.imread(str(p)) for p in sorted(frame_folder.iterdir())]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, images[0].shape[1::-1])
    for image in images:
        writer.write(image)
    writer.release()
    return len(images)


def test_a_folder_of_video_files_with_h264_annotated_videos(tiny_data, run, tmp_path):
    footage = tmp_path / "footage"
    footage.mkdir()
    counts = {name: write_avi(tiny_data / "testing" / "frames" / name, footage / f"cam_{name}.avi", 10) for name in ("01", "03")}
    out = tmp_path / "out"
    assert main(["score", str(footage), "--run", str(run), "--out", str(out), "--video", "--threshold", "18"]) == 0
    for name, count in counts.items():
        folder = out / f"cam_{name}"
        rows = read_csv(folder / "scores.csv")
        assert len(rows) == count
        assert float(rows[10]["time"]) == pytest.approx(1.0)  # the container's 10 fps
        summary = json.loads((folder / "segments.json").read_text())
        assert (summary["fps"], summary["fps_from"]) == (10.0, "video header")
        assert summary["threshold"]["value"] == 18.0 and summary["threshold"]["from"] == "--threshold"
        with av.open(str(folder / "annotated.mp4")) as container:
            stream = container.streams.video[0]
            assert stream.codec_context.name == "h264" and stream.codec_context.pix_fmt == "yuv420p"
            decoded = [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]
        assert len(decoded) == count and decoded[0].shape[1] >= 480  # small frames are enlarged so the text is readable


def test_the_run_folder_is_all_scoring_needs(tiny_data, run, tmp_path, monkeypatch, capsys):
    """Moved, with its training data gone, scored from another working directory: same scores. Without
    calibration.json (an older run) it asks for `pseudovad calibrate`, or takes --threshold."""
    video = tiny_data / "testing" / "frames" / "01"
    assert main(["score", str(video), "--run", str(run), "--out", str(tmp_path / "here")]) == 0
    moved = tmp_path / "archive" / "run"
    shutil.copytree(run, moved, ignore=shutil.ignore_patterns("tensorboard", "report"))
    state_config = (moved / "config.yaml").read_text()
    assert str(tiny_data) in state_config  # the data path is absolute ...
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.setattr("pseudovad.calibration.training_clips", lambda *_: pytest.fail("scoring read the training data"))
    assert main(["score", str(video), "--run", "../archive/run", "--out", "scored"]) == 0  # ... and never needed
    assert (elsewhere / "scored" / "scores.csv").read_text() == (tmp_path / "here" / "scores.csv").read_text()
    (moved / "calibration.json").unlink()
    capsys.readouterr()
    assert main(["score", str(video), "--run", "../archive/run", "--out", "scored"]) == 2
    assert "no calibration.json (the run was trained by an older version, or stopped before its end); run `pseudovad calibrate ../archive/run`" in capsys.readouterr().err
    assert main(["score", str(video), "--run", "../archive/run", "--out", "scored", "--threshold", "17.5"]) == 0
    capsys.readouterr()
    assert main(["export", "../archive/run"]) == 2  # an export holds the calibrated threshold: export has no --threshold
    assert capsys.readouterr().err == ("pseudovad export: error: ../archive/run: no calibration.json, whose threshold an "
                                       "export holds; run `pseudovad calibrate ../archive/run` (it needs the training data)\n")


def test_a_calibration_of_an_earlier_checkpoint_is_refused(run, tiny_data, tmp_path, capsys):
    """A run trained on after its calibration (resumed with more steps, --no-calibrate) must not be
    thresholded with the old model's scores."""
    stale = tmp_path / "run"
    shutil.copytree(run, stale, ignore=shutil.ignore_patterns("tensorboard", "report"))
    calibration = json.loads((stale / "calibration.json").read_text())
    (stale / "calibration.json").write_text(json.dumps({**calibration, "iteration": calibration["iteration"] - 1}))
    capsys.readouterr()
    video = str(tiny_data / "testing" / "frames" / "01")
    assert main(["score", video, "--run", str(stale), "--out", str(tmp_path / "scored")]) == 2
    error = capsys.readouterr().err
    assert f"made at iteration {calibration['iteration'] - 1}, but the checkpoint is at iteration {calibration['iteration']}" in error
    assert f"run `pseudovad calibrate {stale}` again" in error


def test_another_false_alarm_rate_is_read_off_the_calibration(tiny_data, run, tmp_path):
    video = str(tiny_data / "testing" / "frames" / "01")
    assert main(["score", video, "--run", str(run), "--out", str(tmp_path / "a"), "--false-alarm-rate", "0.2"]) == 0
    calibration = json.loads((run / "calibration.json").read_text())
    threshold = json.loads((tmp_path / "a" / "segments.json").read_text())["threshold"]
    assert threshold["false_alarm_rate"] == 0.2
    assert threshold["value"] == pytest.approx(np.quantile(calibration["scores"], 0.2), abs=1e-4)
    assert np.mean(np.array(calibration["scores"]) < threshold["value"]) == pytest.approx(0.2, abs=0.03)


def test_a_rate_under_one_calibration_clip_is_said_to_be_unmeasurable(tiny_data, run, tmp_path, capsys):
    """Asked for a rate under one clip in the calibration, the quantile is the lowest score: it flags none of
    them, and the rate on normal footage is unknown. The threshold says so, and so does stderr."""
    calibration = json.loads((run / "calibration.json").read_text())
    rate = 0.5 / calibration["clips"]
    capsys.readouterr()
    assert main(["score", str(tiny_data / "testing" / "frames" / "01"), "--run", str(run), "--out", str(tmp_path / "a"),
                 "--false-alarm-rate", f"{rate:.6f}"]) == 0
    threshold = json.loads((tmp_path / "a" / "segments.json").read_text())["threshold"]
    lowest = sorted(calibration["scores"])[:2]
    assert lowest[0] < threshold["value"] <= lowest[1]  # flags one calibration clip, not half of one
    assert f"under one of the {calibration['clips']} calibration clips" in threshold["warning"]
    assert capsys.readouterr().err.count("pseudovad score: warning: a false-alarm rate of") == 1
    assert main(["score", str(tiny_data / "testing" / "frames" / "01"), "--run", str(run), "--out", str(tmp_path / "b"),
                 "--false-alarm-rate", f"{2 / calibration['clips']:.6f}"]) == 0
    assert "warning" not in json.loads((tmp_path / "b" / "segments.json").read_text())["threshold"]


def test_footage_unlike_the_training_data_is_warned_about(run, tmp_path, capsys):
    """Frames of another size, far brighter, flagged throughout: each reason is said once, in
    segments.json and on stderr."""
    path = tmp_path / "other_camera.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25, (96, 72))
    rng = np.random.default_rng(0)
    for _ in range(60):
        writer.write(rng.integers(200, 256, (72, 96, 3), dtype=np.uint8))
    writer.release()
    assert main(["score", str(path), "--run", str(run), "--out", str(tmp_path / "out")]) == 0
    warnings = json.loads((tmp_path / "out" / "segments.json").read_text())["warnings"]
    assert [w.split(" ")[:3] for w in warnings] == [["the", "frames", "are"], ["60", "of", "60"], ["56", "of", "56"]]
    assert "96x72 but the training videos were 64x48" in warnings[0]
    assert "where the calibration expects 1% of normal frames" in warnings[2]
    err = capsys.readouterr().err
    assert err.count(f"pseudovad score: warning: {path}: ") == 3
    assert err.count("pseudovad score: warning: a false-alarm rate of 0.01 is under one of the") == 1  # 1% of 40 clips


def test_footage_like_the_training_data_gets_no_warning(tiny_data, run, tmp_path):
    assert main(["score", str(tiny_data / "training" / "frames" / "01"), "--run", str(run), "--out", str(tmp_path / "out")]) == 0
    assert json.loads((tmp_path / "out" / "segments.json").read_text())["warnings"] == []


@pytest.mark.parametrize("annotate", [False, True])
def test_frames_are_streamed_not_held(run, tmp_path, annotate):
    """However long the video, only a window of decoded frames (plus one batch when annotating) is alive."""
    detector = Detector(run)
    alive: list[weakref.ref] = []
    peak = 0

    def frames():
        nonlocal peak
        rng = np.random.default_rng(0)
        for _ in range(100):
            frame = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
            alive.append(weakref.ref(frame))
            peak = max(peak, sum(ref() is not None for ref in alive))
            yield frame

    summary = watch(Source("long", 25.0, "--fps", False, frames()), detector, tmp_path / "out", AlertRules(), annotate)
    assert summary["frames"] == 100 and len(read_csv(tmp_path / "out" / "scores.csv")) == 100
    bound = detector.pipeline.eval_batch_size + CLIP_LENGTH + 2 if annotate else 2
    assert peak <= bound


def test_frames_a_live_source_dropped_keep_their_numbers_and_no_clip_spans_them(run, tmp_path):
    """A Gap of 3 after frame 9: frames 10-12 are absent, 13 onwards keep their capture numbers (and
    times), the clip_length frames after the gap are unscored as at the start, and every later frame
    scores exactly as in the whole footage (its clip holds no hole)."""
    detector = Detector(run)
    rng = np.random.default_rng(1)
    frames = [rng.integers(0, 256, (48, 64, 3), dtype=np.uint8) for _ in range(30)]
    whole = {scored.index: scored.anomaly for scored in detector.stream(frames)}
    holed = {scored.index: scored.anomaly for scored in detector.stream([*frames[:10], Gap(3), *frames[13:]])}
    assert sorted(holed) == [*range(10), *range(13, 30)]
    assert all(np.isnan(holed[index]) for index in [*range(CLIP_LENGTH), *range(13, 13 + CLIP_LENGTH)])
    for index in [*range(CLIP_LENGTH, 10), *range(13 + CLIP_LENGTH, 30)]:
        assert holed[index] == pytest.approx(whole[index], abs=1e-6), index
    summary = watch(Source("camera", 25.0, "camera", True, (item for item in [*frames[:10], Gap(3), *frames[13:]])),
                    detector, tmp_path / "out", AlertRules(), False)
    rows = read_csv(tmp_path / "out" / "scores.csv")
    assert [int(row["frame"]) for row in rows] == sorted(holed) and float(rows[10]["time"]) == pytest.approx(13 / 25)
    assert summary["frames"] == 30


def test_ctrl_c_finishes_every_file(tiny_data, run, tmp_path, monkeypatch, capsys):
    """Interrupted after 20 frames: exit 130, no traceback, an annotated video that plays those frames,
    whole CSV rows, and segments.json saying where it stopped."""
    from pseudovad.data import decode

    real = decode.iter_frames

    def interrupted(video):
        for index, frame in enumerate(real(video)):
            if index == 20:
                raise KeyboardInterrupt
            yield frame

    monkeypatch.setattr("pseudovad.data.sources.iter_frames", interrupted)
    out = tmp_path / "out"
    assert main(["score", str(tiny_data / "testing" / "frames" / "01"), "--run", str(run), "--out", str(out), "--video"]) == 130
    assert capsys.readouterr().err.endswith(f"pseudovad score: interrupted: stopped after 20 frames; {out} holds the results up to there\n")
    summary = json.loads((out / "segments.json").read_text())
    assert (summary["frames"], summary["stopped"]) == (20, "interrupted")
    assert len(read_csv(out / "scores.csv")) == 20
    with av.open(str(out / "annotated.mp4")) as container:
        assert sum(1 for _ in container.decode(video=0)) == 20


def test_bad_arguments_are_clear_errors(tiny_data, run, tmp_path, capsys):
    out = ["--run", str(run), "--out", str(tmp_path / "out")]
    assert main(["score", str(tmp_path / "nothing.mp4"), *out]) == 2
    assert capsys.readouterr().err == f"pseudovad score: error: Video not found: {tmp_path / 'nothing.mp4'}\n"
    assert main(["score", "rtsp://camera.local/stream", *out]) == 2
    assert "is a camera or a stream: watch it with `pseudovad live rtsp://camera.local/stream --run RUN`" in capsys.readouterr().err
    assert main(["score", str(tiny_data / "testing" / "frames" / "01"), *out, "--false-alarm-rate", "0"]) == 2
    assert "--false-alarm-rate must be between 0 and 1" in capsys.readouterr().err
    assert main(["score", str(tiny_data / "testing" / "frames" / "01"), *out, "--min-duration", "-1"]) == 2
    assert "--min-duration must be a non-negative number of seconds, got -1" in capsys.readouterr().err


def test_the_out_folder_gets_this_scoring_only(tiny_data, run, tmp_path, capsys):
    """An earlier scoring's files do not sit beside this one's, a link at an output's name is removed
    rather than written through, and an --out that is a file is refused before the model loads."""
    video = tiny_data / "testing" / "frames" / "02"
    (tmp_path / "notes.txt").write_text("mine")
    assert main(["score", str(video), "--run", str(run), "--out", str(tmp_path / "notes.txt")]) == 2
    assert capsys.readouterr().err == (f"pseudovad score: error: --out {tmp_path / 'notes.txt'} is a file, not a folder; "
                                       "choose a folder for the results\n")
    out = tmp_path / "out"
    out.mkdir()
    (out / "annotated.mp4").write_text("an earlier scoring's video")
    (out / "scores.csv").symlink_to(tmp_path / "notes.txt")
    assert main(["score", str(video), "--run", str(run), "--out", str(out)]) == 0
    assert (tmp_path / "notes.txt").read_text() == "mine" and not (out / "scores.csv").is_symlink()
    assert sorted(path.name for path in out.iterdir()) == ["scores.csv", "scores.png", "segments.json"]


def test_a_threshold_in_other_units_is_warned_about(tiny_data, run, tmp_path, capsys):
    """--threshold is in the units of the score the run alerts by; one above every calibration score
    flags all normal footage (as 25 dB would on a fused score of 0 to 1), and is said to."""
    calibration = json.loads((run / "calibration.json").read_text())
    video = str(tiny_data / "testing" / "frames" / "02")
    inside = (calibration["statistics"]["min"] + calibration["statistics"]["max"]) / 2
    for threshold, warned in ((inside, False), (calibration["statistics"]["max"] + 1, True)):
        assert main(["score", video, "--run", str(run), "--out", str(tmp_path / "out"), "--threshold", str(threshold)]) == 0
        err = capsys.readouterr().err
        assert ("flags every one of the" in err and "give it in that score's units (PSNR)" in err) == warned, err
