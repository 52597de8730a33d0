"""`pseudovad score` on a tiny trained run: CSV/JSON/plot outputs, thresholds from the training tiny_data,
flagged segments where the anomalies are, video files and folders, streaming."""

import csv
import json
import shutil
import weakref

import cv2
import numpy as np
import pytest

from pseudovad.cli import main
from pseudovad.data.dataset import Video
from pseudovad.runs import load_trained
from pseudovad.scoring import score_video
from pseudovad.training.checkpoint import load_checkpoint, save_checkpoint

from helpers import TINY_SET as TINY

CLIP_LENGTH = 4
COLUMNS = ("frame", "time", "psnr", "classifier", "classifier_abnormal", "combined", "flagged")


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
    assert "percentile 1 of the training PSNRs" in capsys.readouterr().out
    rows = read_csv(tmp_path / "out" / "scores.csv")
    assert tuple(rows[0]) == COLUMNS
    assert len(rows) == len(list(video.iterdir()))
    assert [int(row["frame"]) for row in rows] == list(range(len(rows)))
    assert float(rows[25]["time"]) == pytest.approx(1.0)  # frame folders: 25 fps by default
    for row in rows[:CLIP_LENGTH]:
        assert (row["psnr"], row["classifier"], row["combined"], row["flagged"]) == ("", "", "", "0")
    for row in rows[CLIP_LENGTH:]:
        assert float(row["psnr"]) > 0 and 0 <= float(row["classifier"]) <= 1 and 0 <= float(row["combined"]) <= 1
    summary = json.loads((tmp_path / "out" / "segments.json").read_text())
    threshold = summary["threshold"]
    assert threshold["percentile"] == 1.0 and threshold["training_clips"] > 0
    assert threshold["training_psnr_db"]["min"] <= threshold["psnr_db"] <= threshold["training_psnr_db"]["max"]
    expected = {int(r["frame"]) for r in rows if r["psnr"] and float(r["psnr"]) < threshold["psnr_db"]}
    assert flagged_frames(rows) == expected
    assert sum(s["frames"] for s in summary["segments"]) == summary["flagged_frames"] == len(expected)
    assert (tmp_path / "out" / "scores.png").stat().st_size > 10_000


def test_flags_overlap_the_true_event_of_the_clearest_test_video(tiny_data, run, tmp_path):
    """The vehicle (a large object moving fast) is the synthetic test set's clearest event."""
    events = json.loads((tiny_data / "dataset.json").read_text())["events"]
    event = next(e for e in events if e["kind"] == "vehicle")
    out = tmp_path / "out"
    assert main(["score", str(tiny_data / "testing" / "frames" / event["video"]), "--run", str(run), "--out", str(out)]) == 0
    segments = json.loads((out / "segments.json").read_text())["segments"]
    assert any(s["start_frame"] < event["end"] and s["end_frame"] >= event["start"] for s in segments), (segments, event)
    flagged = flagged_frames(read_csv(out / "scores.csv"))
    assert len(flagged - set(range(event["start"], event["end"]))) <= 2, (flagged, event)


def test_an_injected_anomaly_is_flagged_and_the_normal_frames_before_it_are_not(tiny_data, run, tmp_path):
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
    flagged = flagged_frames(read_csv(tmp_path / "out" / "scores.csv"))
    assert set(injected) <= flagged
    assert len(flagged & set(range(CLIP_LENGTH, injected[0]))) <= 1, flagged
    segments = json.loads((tmp_path / "out" / "segments.json").read_text())["segments"]
    assert any(s["start_frame"] <= injected[0] and s["end_frame"] >= injected[-1] for s in segments)


def write_avi(frame_folder, path, fps):
    images = [cv2.imread(str(p)) for p in sorted(frame_folder.iterdir())]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, images[0].shape[1::-1])
    for image in images:
        writer.write(image)
    writer.release()
    return len(images)


def test_a_folder_of_video_files_with_annotated_videos(tiny_data, run, tmp_path):
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
        assert summary["threshold"]["psnr_db"] == 18.0 and summary["threshold"]["given_by"] == "--threshold"
        annotated = cv2.VideoCapture(str(folder / "annotated.mp4"))
        assert int(annotated.get(cv2.CAP_PROP_FRAME_COUNT)) == count
        ok, frame = annotated.read()
        annotated.release()
        assert ok and frame.shape[1] >= 480  # small frames are enlarged so the text is readable


def test_missing_training_data_is_an_error_unless_a_threshold_is_given(tiny_data, run, tmp_path, capsys):
    moved = tmp_path / "moved_run"
    state = load_checkpoint(run / "checkpoints" / "latest.pt")
    state["config"]["data"]["root"] = str(tmp_path / "gone")
    save_checkpoint(state, moved / "checkpoints" / "latest.pt")
    video = tiny_data / "testing" / "frames" / "01"
    assert main(["score", str(video), "--run", str(moved), "--out", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err
    assert "training data is unavailable" in error and "--threshold" in error
    assert main(["score", str(video), "--run", str(moved), "--out", str(tmp_path / "out"), "--threshold", "17.5"]) == 0


@pytest.mark.parametrize("annotate", [False, True])
def test_frames_are_streamed_not_held(run, tmp_path, monkeypatch, annotate):
    """However long the video, only a window of decoded frames (plus one batch when annotating) is alive."""
    config, pipeline, _ = load_trained(run)
    alive: list[weakref.ref] = []
    peak = 0

    def frames(video):
        nonlocal peak
        rng = np.random.default_rng(0)
        for _ in range(video.num_frames):
            frame = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
            alive.append(weakref.ref(frame))
            peak = max(peak, sum(ref() is not None for ref in alive))
            yield frame

    monkeypatch.setattr("pseudovad.scoring.iter_frames", frames)
    video = Video(name="long", path=tmp_path / "long.avi", num_frames=100)
    summary = score_video(video, config, pipeline, tmp_path / "out", {"psnr_db": 15.0}, 25.0, "--fps", annotate)
    assert summary["frames"] == 100 and len(read_csv(tmp_path / "out" / "scores.csv")) == 100
    bound = config.eval.batch_size + CLIP_LENGTH + 2 if annotate else 2
    assert peak <= bound


def test_bad_arguments_are_clear_errors(tiny_data, run, tmp_path, capsys):
    out = ["--run", str(run), "--out", str(tmp_path / "out")]
    assert main(["score", str(tmp_path / "nothing.mp4"), *out]) == 2
    assert "not found" in capsys.readouterr().err
    assert main(["score", str(tiny_data / "testing" / "frames" / "01"), *out, "--percentile", "0"]) == 2
    assert "--percentile" in capsys.readouterr().err
