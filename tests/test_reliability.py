"""The reliability campaign: bad input, divergence, untrusted files, a full disk, unreachable cameras,
each through the command line as a user meets it. Every case must end with one clear message (checked
exactly, up to the temporary paths), its exit status (2: the input is wrong; 1: a runtime failure), and
every file that existed before the command unchanged.

`docs/RELIABILITY.md` holds the table of these cases; `test_reliability_doc_lists_every_case` keeps
the two in step. The kill-and-resume test is in test_interruption.py.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import pickle
import re
import shutil
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch

from helpers import TEST_LENGTHS, make_dataset
from media import truncate, write_audio_only, write_frames, write_video
from pseudovad import checkpoint as checkpoint_module
from pseudovad.cli import main

REPO_ROOT = Path(__file__).resolve().parents[1]
FFMPEG_LOG_LINE = re.compile(r"^\[[\w,]+ @ 0x[0-9a-f]+\]", re.MULTILINE)  # e.g. "[mov,mp4,m4a @ 0x55f5] moov atom not found"
TINY = [
    "--set", "data.height=32", "--set", "data.width=32",
    "--set", "generator.width=4", "--set", "generator.levels=2",
    "--set", "discriminator.width=4", "--set", "flow.iterations=2", "--set", "flow.levels=1",
    "--set", "train.checkpoint_every=1", "--set", "train.sample_every=100",
    "--set", "train.precision=fp32", "--set", "train.channels_last=false",
    "--set", "loss.flow=2",  # all four of FFP's losses: synthetic_ffp itself drops the flow term
]
def train(data: Path, out: Path, *extra: str) -> list[str]:
    return ["train", "synthetic_ffp", "--data", str(data), "--out", str(out), "--iterations", "2", *TINY, *extra]


# --- the cases: each builds its files under `tmp` and returns the command line ------------------


def missing_path(tmp: Path) -> list[str]:
    return ["inspect", str(tmp / "nowhere")]


def empty_folder(tmp: Path) -> list[str]:
    (tmp / "empty").mkdir()
    return ["inspect", str(tmp / "empty")]


def non_image_file(tmp: Path) -> list[str]:
    data = make_dataset(tmp / "data")
    (data / "training" / "frames" / "01" / "notes.txt").write_text("copied by mistake")
    return ["inspect", str(data)]


def corrupt_jpeg(tmp: Path) -> list[str]:
    data = make_dataset(tmp / "data")
    (data / "training" / "frames" / "02" / "003.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    return train(data, tmp / "run")


def truncated_avi(tmp: Path, run: Path) -> list[str]:
    write_video(tmp / "camera.avi", 10)
    truncate(tmp / "camera.avi")
    return ["score", str(tmp / "camera.avi"), "--run", str(run), "--out", str(tmp / "scored")]


def zero_length_video(tmp: Path, run: Path) -> list[str]:
    (tmp / "camera.mp4").write_bytes(b"")
    return ["score", str(tmp / "camera.mp4"), "--run", str(run), "--out", str(tmp / "scored")]


def text_file_named_mp4(tmp: Path, run: Path) -> list[str]:
    (tmp / "camera.mp4").write_text("not a video")
    return ["score", str(tmp / "camera.mp4"), "--run", str(run), "--out", str(tmp / "scored")]


def audio_only_mp4(tmp: Path, run: Path) -> list[str]:
    write_audio_only(tmp / "camera.mp4")
    return ["score", str(tmp / "camera.mp4"), "--run", str(run), "--out", str(tmp / "scored")]


def mixed_frame_sizes(tmp: Path) -> list[str]:
    data = make_dataset(tmp / "data")
    write_frames(data / "training" / "frames" / "02", 1, first=5, size=(20, 16))
    return train(data, tmp / "run")


def video_shorter_than_clip(tmp: Path) -> list[str]:
    data = make_dataset(tmp / "data")
    for frame in sorted((data / "training" / "frames" / "02").iterdir())[3:]:
        frame.unlink()
    return train(data, tmp / "run")


def labels_longer_than_frames(tmp: Path) -> list[str]:
    data = make_dataset(tmp / "data")
    np.save(data / "frame_labels_tiny.npy", np.zeros(sum(TEST_LENGTHS) + 3, dtype=np.uint8))
    return ["inspect", str(data)]


def labels_shorter_than_frames(tmp: Path) -> list[str]:
    data = make_dataset(tmp / "data")
    np.save(data / "frame_labels_tiny.npy", np.zeros(sum(TEST_LENGTHS) - 1, dtype=np.uint8))
    return ["inspect", str(data)]


def label_file_of_wrong_format(tmp: Path) -> list[str]:
    data = make_dataset(tmp / "data")
    (tmp / "labels.csv").write_text("frame,label\n0,1\n")
    return ["inspect", str(data), "--labels", str(tmp / "labels.csv")]


def mat_without_expected_key(tmp: Path) -> list[str]:
    data = make_dataset(tmp / "data")
    scipy.io.savemat(tmp / "labels.mat", {"ground_truth": np.ones((1, 3))})
    return ["inspect", str(data), "--labels", str(tmp / "labels.mat")]


def unknown_config_key(tmp: Path) -> list[str]:
    return train(make_dataset(tmp / "data"), tmp / "run", "--set", "train.iteratons=5")


def value_of_wrong_type(tmp: Path) -> list[str]:
    return train(make_dataset(tmp / "data"), tmp / "run", "--set", "train.batch_size=four")


def missing_config_file(tmp: Path) -> list[str]:
    return ["train", str(tmp / "my_config.yaml"), "--data", str(make_dataset(tmp / "data")), "--out", str(tmp / "run")]


def overwrite_finished_run(tmp: Path) -> list[str]:
    data = make_dataset(tmp / "data")
    assert main(train(data, tmp / "run")) == 0
    return train(data, tmp / "run")


def resume_without_checkpoint(tmp: Path) -> list[str]:
    return train(make_dataset(tmp / "data"), tmp / "run", "--resume")


def disk_full_while_checkpointing(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The first checkpoint is written; the second fails as a full disk fails (ENOSPC mid-write)."""
    data = make_dataset(tmp / "data")
    assert main(train(data, tmp / "run")) == 0
    real_save = torch.save

    def save_then_fail(state, handle, *args, **kwargs):
        real_save(state, handle, *args, **kwargs)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint_module.torch, "save", save_then_fail)
    return train(data, tmp / "run", "--iterations", "4", "--resume")


def nan_loss(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The intensity loss turns NaN at the third step, after two good checkpoints."""
    data = make_dataset(tmp / "data")
    assert main(train(data, tmp / "run")) == 0
    monkeypatch.setattr("pseudovad.training.ffp.intensity_loss", lambda *_: torch.tensor(float("nan")))
    return train(data, tmp / "run", "--iterations", "4", "--resume")


def pickled_checkpoint(tmp: Path) -> list[str]:
    """A checkpoint that would run code when unpickled (the payload only creates a file)."""
    data = make_dataset(tmp / "data")
    assert main(train(data, tmp / "run")) == 0

    class Payload:
        def __reduce__(self):
            return (Path.touch, (tmp / "payload_ran",))

    with open(tmp / "run" / "checkpoints" / "latest.pt", "wb") as handle:
        pickle.dump({"iteration": 2, "networks": Payload()}, handle)
    return ["evaluate", str(tmp / "run")]


def truncated_checkpoint(tmp: Path) -> list[str]:
    data = make_dataset(tmp / "data")
    assert main(train(data, tmp / "run")) == 0
    truncate(tmp / "run" / "checkpoints" / "latest.pt", 0.5)
    return ["evaluate", str(tmp / "run")]


def diverged_model(tmp: Path) -> list[str]:
    """A checkpoint whose generator weights went NaN (saved by a run with train.on_nonfinite=skip)."""
    data = make_dataset(tmp / "data")
    assert main(train(data, tmp / "run")) == 0
    path = tmp / "run" / "checkpoints" / "latest.pt"
    state = checkpoint_module.load_checkpoint(path)
    next(iter(state["networks"]["generator"].values())).fill_(float("nan"))
    checkpoint_module.save_checkpoint(state, path)
    return ["evaluate", str(tmp / "run")]


def unreachable_url(tmp: Path, run: Path) -> list[str]:
    """Nothing listens on port 9 of this machine (loopback only: no traffic leaves it)."""
    return ["live", "rtsp://admin:secret@127.0.0.1:9/camera", "--run", str(run), "--out", str(tmp / "live")]


def missing_camera(tmp: Path, run: Path) -> list[str]:
    return ["live", "99", "--run", str(run)]


def export_without_checkpoint(tmp: Path) -> list[str]:
    data = make_dataset(tmp / "data")
    assert main(train(data, tmp / "run")) == 0
    (tmp / "run" / "checkpoints" / "latest.pt").unlink()
    return ["export", str(tmp / "run")]


def force_on_the_dataset(tmp: Path) -> list[str]:
    data = make_dataset(tmp / "data")
    return train(data, data, "--force")


def force_on_a_folder_above_the_dataset(tmp: Path) -> list[str]:
    data = make_dataset(tmp / "data")
    return train(data, tmp, "--force")


def force_on_a_folder_pseudovad_did_not_make(tmp: Path) -> list[str]:
    (tmp / "photos").mkdir()
    (tmp / "photos" / "holiday.jpg").write_bytes(b"not ours")
    return train(make_dataset(tmp / "data"), tmp / "photos", "--force")


def force_on_a_run_holding_foreign_files(tmp: Path) -> list[str]:
    data = make_dataset(tmp / "data")
    assert main(train(data, tmp / "run")) == 0
    (tmp / "run" / "notes.txt").write_text("my notes on this run")
    return train(data, tmp / "run", "--force")


def force_on_a_run_in_use(tmp: Path, hold_lock: Callable[[Path], None]) -> list[str]:
    """Another process (here: an open file description of this one) holds the run's lock."""
    data = make_dataset(tmp / "data")
    assert main(train(data, tmp / "run")) == 0
    hold_lock(tmp / "run" / ".lock")
    return train(data, tmp / "run", "--force")


def alias_bomb_in_a_config(tmp: Path) -> list[str]:
    """Nine lines that would expand to 10^9 list items (and a message as long) if aliases were read."""
    lines = ["base: synthetic_ffp", "a0: &a0 [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]
    lines += ["train:", "  gallery_at: *a8"]
    (tmp / "bomb.yaml").write_text("\n".join(lines) + "\n")
    return ["train", str(tmp / "bomb.yaml"), "--data", str(make_dataset(tmp / "data")), "--out", str(tmp / "run")]


def yaml_tag_in_set(tmp: Path) -> list[str]:
    return train(make_dataset(tmp / "data"), tmp / "run", "--set", "train.seed=!!python/object/apply:os.system [ls]")


def number_written_as_text(tmp: Path) -> list[str]:
    return train(make_dataset(tmp / "data"), tmp / "run", "--set", "train.lr_generator=1e-3")


def batch_size_zero(tmp: Path) -> list[str]:
    return train(make_dataset(tmp / "data"), tmp / "run", "--set", "train.batch_size=0")


def negative_seed(tmp: Path) -> list[str]:
    return train(make_dataset(tmp / "data"), tmp / "run", "--seed", "-1")


def learning_rate_not_a_number(tmp: Path) -> list[str]:
    return train(make_dataset(tmp / "data"), tmp / "run", "--set", "train.lr_generator=.nan")


def dropout_above_one(tmp: Path) -> list[str]:
    return train(make_dataset(tmp / "data"), tmp / "run", "--set", "generator.dropout=1.5")


def frame_size_the_unet_cannot_take(tmp: Path) -> list[str]:
    return train(make_dataset(tmp / "data"), tmp / "run", "--set", "data.height=35")


def unknown_device(tmp: Path) -> list[str]:
    return train(make_dataset(tmp / "data"), tmp / "run", "--set", "train.device=gpu0")


def out_is_a_file(tmp: Path) -> list[str]:
    (tmp / "notes.txt").write_text("not a folder")
    return train(make_dataset(tmp / "data"), tmp / "notes.txt")


def checkpoint_of_another_shape(tmp: Path) -> list[str]:
    """A checkpoint whose generator weights were trained at another width."""
    data = make_dataset(tmp / "data")
    assert main(train(data, tmp / "run")) == 0
    assert main(train(data, tmp / "wide", "--set", "generator.width=8")) == 0
    path = tmp / "run" / "checkpoints" / "latest.pt"
    state = checkpoint_module.load_checkpoint(path)
    state["networks"]["generator"] = checkpoint_module.load_checkpoint(tmp / "wide" / "checkpoints" / "latest.pt")["networks"]["generator"]
    checkpoint_module.save_checkpoint(state, path)
    return ["evaluate", str(tmp / "run")]


def checkpoint_without_a_network(tmp: Path) -> list[str]:
    data = make_dataset(tmp / "data")
    assert main(train(data, tmp / "run")) == 0
    path = tmp / "run" / "checkpoints" / "latest.pt"
    state = checkpoint_module.load_checkpoint(path)
    del state["networks"]["discriminator"]
    checkpoint_module.save_checkpoint(state, path)
    return ["evaluate", str(tmp / "run")]


def checkpoint_holding_a_bare_tensor(tmp: Path) -> list[str]:
    data = make_dataset(tmp / "data")
    assert main(train(data, tmp / "run")) == 0
    torch.save(torch.zeros(3), tmp / "run" / "checkpoints" / "latest.pt")
    return ["evaluate", str(tmp / "run")]


def malformed_results_keep_the_old_report(tmp: Path) -> list[str]:
    data = make_dataset(tmp / "data")
    assert main([*train(data, tmp / "run"), "--evaluate"]) == 0
    assert main(["report", str(tmp / "run")]) == 0
    (tmp / "run" / "results.json").write_text('{"auc": {}, "iteration": "<script>alert(1)</script>"}')
    return ["report", str(tmp / "run")]


def malformed_dataset_description(tmp: Path) -> list[str]:
    data = make_dataset(tmp / "data")
    assert main(train(data, tmp / "run")) == 0
    (data / "dataset.json").write_text('{"events": [{"kind": "running", "video": "99"}]}')
    return ["evaluate", str(tmp / "run")]


def fps_not_finite(tmp: Path, run: Path) -> list[str]:
    write_video(tmp / "camera.avi", 10)
    return ["score", str(tmp / "camera.avi"), "--run", str(run), "--out", str(tmp / "scored"), "--fps", "inf", "--video"]


def threshold_not_a_number(tmp: Path, run: Path) -> list[str]:
    write_video(tmp / "camera.avi", 10)
    return ["score", str(tmp / "camera.avi"), "--run", str(run), "--out", str(tmp / "scored"), "--threshold", "nan"]


def experiment_without_workers(tmp: Path) -> list[str]:
    return ["experiment", "ffp_ablation", "--data", str(make_dataset(tmp / "data")), "--out", str(tmp / "exp"), "--jobs", "0"]


def export_through_a_planted_link(tmp: Path) -> list[str]:
    """A downloaded run whose export/ holds a link, named as export's temporary file, to a file of the user's."""
    data = make_dataset(tmp / "data")
    assert main(train(data, tmp / "run")) == 0
    (tmp / "notes.txt").write_text("mine")
    (tmp / "run" / "export").mkdir()
    (tmp / "run" / "export" / ".tmp.scorer.pt2").symlink_to(tmp / "notes.txt")
    return ["export", str(tmp / "run")]


def resume_through_a_planted_lock_link(tmp: Path) -> list[str]:
    """The lock file (opened for writing by every training) a link to a file of the user's."""
    data = make_dataset(tmp / "data")
    assert main(train(data, tmp / "run")) == 0
    (tmp / "notes.txt").write_text("mine")
    (tmp / "run" / ".lock").unlink()
    (tmp / "run" / ".lock").symlink_to(tmp / "notes.txt")
    return train(data, tmp / "run", "--resume", "--iterations", "3")


def report_copying_a_linked_gallery_image(tmp: Path) -> list[str]:
    """A gallery image that is a link to a private file: copying it would put the file in a page to share."""
    data = make_dataset(tmp / "data")
    assert main([*train(data, tmp / "run"), "--evaluate"]) == 0
    (tmp / "secret.txt").write_text("key")
    (tmp / "run" / "gallery").mkdir(exist_ok=True)
    (tmp / "run" / "gallery" / "step_000001.png").symlink_to(tmp / "secret.txt")
    return ["report", str(tmp / "run")]


def synth_force_on_a_real_dataset(tmp: Path) -> list[str]:
    """--force, as the 'not empty' message offers it, on a folder holding a real dataset's training/ and testing/."""
    make_dataset(tmp / "ped2")
    return ["synth", str(tmp / "ped2"), "--preset", "tiny", "--force"]


def calibration_fusing_unknown_scores(tmp: Path, run: Path) -> list[str]:
    """A calibration.json (edited, or from another version) whose fusion block names scores the run has not."""
    copy = tmp / "run"
    shutil.copytree(run, copy)
    calibration = json.loads((copy / "calibration.json").read_text())
    calibration["fusion"] = {"parts": ["psnr", "nope"], "weight": 0.5,
                             "ranges": {"psnr": {"low": 20.0, "high": 30.0}, "nope": {"low": 0.0, "high": 1.0}}}
    calibration["score"] = "combined"
    (copy / "calibration.json").write_text(json.dumps(calibration))
    write_video(tmp / "camera.avi", 10)
    return ["score", str(tmp / "camera.avi"), "--run", str(copy), "--out", str(tmp / "scored")]


def calibration_missing_a_field(tmp: Path, run: Path) -> list[str]:
    """A calibration.json from elsewhere that lacks a field scoring reads only once footage comes."""
    copy = tmp / "run"
    shutil.copytree(run, copy)
    calibration = json.loads((copy / "calibration.json").read_text())
    del calibration["clips_from"]
    (copy / "calibration.json").write_text(json.dumps(calibration))
    write_video(tmp / "camera.avi", 10)
    return ["score", str(tmp / "camera.avi"), "--run", str(copy), "--out", str(tmp / "scored")]


def flat_folder_of_frames(tmp: Path) -> list[str]:
    write_frames(tmp / "stills", 6)
    return ["inspect", str(tmp / "stills")]


def live_on_a_file_shorter_than_a_clip(tmp: Path, run: Path) -> list[str]:
    write_video(tmp / "two.avi", 2)
    return ["live", str(tmp / "two.avi"), "--run", str(run), "--compile", "off"]


@dataclass(frozen=True)
class Case:
    make: Callable[..., list[str]]
    message: str  # the error as printed, from its start ({tmp}: the test's folder); a full line ends in \\n
    may_change: tuple[str, ...] = ()  # files the command may rewrite (a resumed run records its new budget)
    status: int = 2  # 2: input or usage error; 1: runtime failure


CASES = [
    Case(missing_path, "pseudovad inspect: error: Dataset path not found: {tmp}/nowhere\n"),
    Case(empty_folder, "pseudovad inspect: error: {tmp}/empty is an empty folder; point at a dataset folder.\n"),
    Case(non_image_file, "pseudovad inspect: error: Unexpected non-image file {tmp}/data/training/frames/01/notes.txt inside frame folder {tmp}/data/training/frames/01; expected only images (.jpg, .jpeg, .png, .bmp, .tif, .tiff). Move it out of the folder.\n"),
    Case(corrupt_jpeg, "pseudovad train: error: Cannot decode image {tmp}/data/training/frames/02/003.jpg: the file is corrupt or not an image.\n"),
    Case(truncated_avi, "pseudovad score: error: Video file {tmp}/camera.avi is truncated or corrupt: its header reports 10 frames but only 3 could be decoded.\n"),
    Case(zero_length_video, "pseudovad score: error: Video file {tmp}/camera.mp4 is empty (0 bytes).\n"),
    Case(text_file_named_mp4, "pseudovad score: error: Cannot open video file {tmp}/camera.mp4: FFmpeg cannot read it as a video container ("),
    Case(audio_only_mp4, "pseudovad score: error: Cannot open video file {tmp}/camera.mp4: it holds no video stream (audio); give a file with pictures.\n"),
    Case(mixed_frame_sizes, "pseudovad train: error: Frame size changes within a video: {tmp}/data/training/frames/02/005.jpg is 16x20 but the video's first frame is 16x16.\n"),
    Case(video_shorter_than_clip, "pseudovad train: error: {tmp}/data/training/frames/02: 3 frames is too short for a clip of 4 inputs + 1 target; remove the video or lower data.clip_length\n"),
    Case(labels_longer_than_frames, "pseudovad inspect: error: {tmp}/data: found label files, but none matches the test videos:\n  {tmp}/data/frame_labels_tiny.npy: has 18 frame labels but the 2 test videos have 15 frames.\nFix the labels or choose a file with --labels FILE.\n"),
    Case(labels_shorter_than_frames, "pseudovad inspect: error: {tmp}/data: found label files, but none matches the test videos:\n  {tmp}/data/frame_labels_tiny.npy: has 14 frame labels but the 2 test videos have 15 frames.\nFix the labels or choose a file with --labels FILE.\n"),
    Case(label_file_of_wrong_format, "pseudovad inspect: error: {tmp}/labels.csv: not a supported label file. Supported: an FFP .mat with 'gt', a 0/1 .npy over all test frames (MNAD), a UCSD .m with gt_frame lines, an Avenue testing_label_mask folder, a folder of per-video .npy masks, or a UCSD Test folder with TestNNN_gt mask folders.\n"),
    Case(mat_without_expected_key, "pseudovad inspect: error: {tmp}/labels.mat: not a supported label file. Supported: an FFP .mat with 'gt'"),
    Case(unknown_config_key, "pseudovad train: error: --set: unknown config key 'train.iteratons'; did you mean 'train.iterations'?\n"),
    Case(value_of_wrong_type, "pseudovad train: error: --set: 'train.batch_size' must be int, got str 'four'\n"),
    Case(missing_config_file, "pseudovad train: error: config file {tmp}/my_config.yaml not found; give a YAML path, a named config (camera_ffp, ped2_ffp,"),
    Case(overwrite_finished_run, "pseudovad train: error: {tmp}/run already holds a run; use --resume to continue it, --force to start over, or choose another --out\n"),
    Case(resume_without_checkpoint, "pseudovad train: error: --resume: no checkpoint at {tmp}/run/checkpoints/latest.pt; start without --resume\n"),
    Case(disk_full_while_checkpointing, "pseudovad train: error: could not write checkpoint {tmp}/run/checkpoints/latest.pt: [Errno 28] No space left on device; the previous checkpoint is kept\n", ("run/config.yaml",), 1),

    Case(nan_loss, "pseudovad train: error: training stopped at iteration 2: loss 'intensity' is nan. The last good checkpoint ({tmp}/run/checkpoints/latest.pt) is kept; lower the learning rate, or set train.on_nonfinite=skip\n", ("run/config.yaml",), 1),

    Case(diverged_model, "pseudovad evaluate: error: the 'psnr' score is NaN or infinite on test videos 01, 02: the model has diverged; retrain with a lower learning rate (and train.on_nonfinite=stop, the default)\n"),
    Case(pickled_checkpoint, "pseudovad evaluate: error: {tmp}/run/checkpoints/latest.pt: refused to load: it holds objects other than tensors and plain containers (possibly code). Only load checkpoints written by pseudovad.\n"),
    Case(force_on_the_dataset, "pseudovad train: error: --force refused: {tmp}/data holds or lies above the dataset {tmp}/data (or inside it); choose an --out folder of its own\n"),
    Case(force_on_a_folder_above_the_dataset, "pseudovad train: error: --force refused: {tmp} holds or lies above the dataset {tmp}/data (or inside it); choose an --out folder of its own\n"),
    Case(force_on_a_folder_pseudovad_did_not_make, "pseudovad train: error: --force refused: {tmp}/photos has no .pseudovad-run marker, so it is not a run folder pseudovad made (or one from a version before 0.2); delete it yourself if it holds nothing you need, or choose another --out\n"),
    Case(force_on_a_run_holding_foreign_files, "pseudovad train: error: --force refused: {tmp}/run holds files that are not part of a run (notes.txt); move them out first\n"),
    Case(alias_bomb_in_a_config, "pseudovad train: error: {tmp}/bomb.yaml: not valid YAML: YAML aliases (*name) are not accepted here (line 3, column 10)\n"),
    Case(yaml_tag_in_set, "pseudovad train: error: --set 'train.seed': not valid YAML: could not determine a constructor for the tag 'tag:yaml.org,2002:python/object/apply:os.system'"),
    Case(number_written_as_text, "pseudovad train: error: --set: 'train.lr_generator' must be float, got str '1e-3' (YAML reads 1e-3 as text: write it with a decimal point, e.g. 1.0e-3)\n"),
    Case(batch_size_zero, "pseudovad train: error: --set: 'train.batch_size' must be at least 1 and at most 4096, got 0\n"),
    Case(negative_seed, "pseudovad train: error: --set: 'train.seed' must be at least 0 and at most 4294967295, got -1\n"),
    Case(learning_rate_not_a_number, "pseudovad train: error: --set: 'train.lr_generator' must be a finite number, got nan\n"),
    Case(dropout_above_one, "pseudovad train: error: --set: 'generator.dropout' must be at least 0 and below 1, got 1.5\n"),
    Case(frame_size_the_unet_cannot_take, "pseudovad train: error: --set: the U-Net generator with 2 levels needs data.height and data.width divisible by 2 (set by generator.levels), got 35x32\n"),
    Case(unknown_device, "pseudovad train: error: --set: 'train.device' is 'gpu0'; it must match auto|cpu|mps|cuda(:\\d+)?\n"),
    Case(out_is_a_file, "pseudovad train: error: --out {tmp}/notes.txt is a file, not a folder; choose a folder for the run\n"),
    Case(checkpoint_of_another_shape, "pseudovad evaluate: error: the checkpoint's 'generator' weights do not fit this config's network: Error(s) in loading state_dict for UNet:\n"),
    Case(checkpoint_without_a_network, "pseudovad evaluate: error: the checkpoint has no weights for discriminator: it was written by another pipeline or version\n"),
    Case(checkpoint_holding_a_bare_tensor, "pseudovad evaluate: error: {tmp}/run/checkpoints/latest.pt: not a pseudovad checkpoint (no iteration, config and networks in it); only load checkpoints written by pseudovad\n"),
    Case(malformed_results_keep_the_old_report, "pseudovad report: error: {tmp}/run/results.json: not a results file pseudovad wrote (ValueError: 'videos missing'); run `pseudovad evaluate` again\n"),
    Case(malformed_dataset_description, "pseudovad evaluate: error: {tmp}/data/dataset.json: not the event list `pseudovad synth` writes (ValueError); fix it, or move it out of the dataset folder (it only adds AUCs per anomaly kind)\n"),
    Case(fps_not_finite, "pseudovad score: error: --fps must be a finite number, got inf\n"),
    Case(threshold_not_a_number, "pseudovad score: error: --threshold must be a finite number, got nan\n"),
    Case(experiment_without_workers, "pseudovad experiment: error: --jobs must be at least 1, got 0\n"),
    Case(force_on_a_run_in_use, "pseudovad train: error: {tmp}/run is in use by another pseudovad process (pid 4242); wait for it to finish or stop it\n", status=1),
    Case(unreachable_url, "pseudovad live: error: cannot open the stream rtsp://admin:***@127.0.0.1:9/camera: Connection refused; check the address and port, that the camera is on and reachable from here, and its user name and password\n"),
    Case(missing_camera, "pseudovad live: error: camera 99 not found: there is no /dev/video99 (cameras here: "),
    Case(export_without_checkpoint, "pseudovad export: error: {tmp}/run: no checkpoint at {tmp}/run/checkpoints/latest.pt; point at a run folder written by `pseudovad train` (one that reached its first checkpoint)\n"),
    Case(export_through_a_planted_link, "pseudovad export: error: {tmp}/run: refused to write into a run folder that holds symbolic links ({tmp}/run/export/.tmp.scorer.pt2); pseudovad makes none, and writing through one would change the file it points at. Replace each link by a copy of what it points at (cp -L), or remove it\n"),
    Case(resume_through_a_planted_lock_link, "pseudovad train: error: {tmp}/run: refused to write into a run folder that holds symbolic links ({tmp}/run/.lock);"),
    Case(report_copying_a_linked_gallery_image, "pseudovad report: error: {tmp}/run: refused to write into a run folder that holds symbolic links ({tmp}/run/gallery/step_000001.png);"),
    Case(synth_force_on_a_real_dataset, "pseudovad synth: error: --force refused: {tmp}/ped2 holds no synthetic dataset that pseudovad wrote (no .pseudovad-synthetic, and no dataset.json of `pseudovad synth`); it may be a real dataset. Choose an empty folder\n"),
    Case(calibration_fusing_unknown_scores, "pseudovad score: error: {tmp}/run/calibration.json: it fuses nope, which this run does not score (psnr); run `pseudovad calibrate {tmp}/run` again\n"),
    Case(calibration_missing_a_field, "pseudovad score: error: {tmp}/run/calibration.json: not a calibration pseudovad wrote (clips_from missing or malformed); run `pseudovad calibrate {tmp}/run` again\n"),
    Case(flat_folder_of_frames, "pseudovad inspect: error: {tmp}/stills holds images directly, as the frames of one video: a dataset holds each video's frames in a folder of its own; move them into {tmp}/stills/<video>/ (e.g. {tmp}/stills/video01/)\n"),
    Case(live_on_a_file_shorter_than_a_clip, "pseudovad live: error: {tmp}/two.avi: 2 frames; scoring needs at least 5 (clip_length + 1)\n"),
    Case(truncated_checkpoint, "pseudovad evaluate: error: {tmp}/run/checkpoints/latest.pt: not a readable checkpoint (PytorchStreamReader failed reading zip archive"),
]


def fingerprint(root: Path) -> dict[str, str]:
    """Every file under `root` and a hash of its bytes."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in root.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def scoring_run(tmp_path_factory) -> Path:
    """A finished tiny run, for the cases that score a user's video."""
    tmp = tmp_path_factory.mktemp("scoring_run")
    assert main([*train(make_dataset(tmp / "data"), tmp / "run"), "--set", "pipeline=ffp"]) == 0
    return tmp / "run"


@pytest.fixture
def hold_lock():
    """Lock a file as another process would (flock on a separate open file), with pid 4242 in it."""
    handles = []

    def hold(path: Path) -> None:
        handle = open(path, "r+")
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        handle.truncate()
        handle.write("4242\n")
        handle.flush()
        handles.append(handle)

    yield hold
    for handle in handles:
        handle.close()


@pytest.mark.parametrize("case", CASES, ids=[case.make.__name__ for case in CASES])
def test_case(case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd, scoring_run: Path, hold_lock) -> None:
    parameters = case.make.__code__.co_varnames[: case.make.__code__.co_argcount]
    extra = {"run": scoring_run, "monkeypatch": monkeypatch, "hold_lock": hold_lock}
    argv = case.make(tmp_path, *(extra[name] for name in parameters[1:]))
    before = fingerprint(tmp_path)
    capfd.readouterr()
    assert main(argv) == case.status
    captured = capfd.readouterr()  # by file descriptor: what FFmpeg's C code prints shows too
    prefix = f"pseudovad {argv[0]}: error: "
    assert captured.err.count(prefix) == 1, captured.err
    assert not FFMPEG_LOG_LINE.search(captured.err), f"FFmpeg's own lines precede the error:\n{captured.err}"
    message = captured.err[captured.err.index(prefix):]
    assert captured.err == message or captured.err[-len(message) - 1] in "\r\n", "the error shares a line with other output"
    expected = case.message.format(tmp=tmp_path)
    assert message.startswith(expected), f"\n got: {message}\nwant: {expected}"
    after = fingerprint(tmp_path)
    changed = [name for name, digest in before.items() if after.get(name) != digest and name not in case.may_change]
    assert not changed, f"files lost or changed: {changed}"
    assert not (tmp_path / "payload_ran").exists()


def test_reliability_doc_lists_every_case() -> None:
    """docs/RELIABILITY.md names each case's test, and every test it names is a case."""
    doc = (REPO_ROOT / "docs" / "RELIABILITY.md").read_text()
    named = set(re.findall(r"`test_reliability\.py::test_case\[(\w+)\]`", doc))
    assert named == {case.make.__name__ for case in CASES}


class Payload:
    """Creates a file when unpickled: stands in for the code an attacker ships."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (Path.touch, (self.path,))


def test_force_clears_the_temporary_a_killed_writer_left_but_not_a_foreign_one(tmp_path: Path, capsys) -> None:
    """A write killed mid-way leaves `.results.json.PID.tmp` in the run folder (files.write_text): it is the
    run's own, so --force starts over; a dotted file of the user's that merely ends in .tmp is still refused."""
    data = make_dataset(tmp_path / "data")
    run = tmp_path / "run"
    assert main(train(data, run)) == 0
    (run / ".results.json.4242.tmp").write_text("{")
    assert main(train(data, run, "--force")) == 0
    assert not (run / ".results.json.4242.tmp").exists()
    (run / ".notes.txt.4242.tmp").write_text("mine")
    capsys.readouterr()
    assert main(train(data, run, "--force")) == 2
    assert "holds files that are not part of a run (.notes.txt.4242.tmp)" in capsys.readouterr().err
    assert (run / ".notes.txt.4242.tmp").read_text() == "mine"


def test_a_downloaded_run_naming_crafted_files_runs_no_code(tmp_path: Path, capsys) -> None:
    """A run whose checkpoint passes the weights-only check but whose config names a crafted .pt2 and
    a crafted .pth beside it: evaluating and scoring it never open them, resuming it is refused."""
    data = make_dataset(tmp_path / "data")
    run = tmp_path / "run"
    assert main(train(data, run)) == 0
    with zipfile.ZipFile(run / "flow.pt2", "w") as handle:
        handle.writestr("flow/data/weights/weight_0", pickle.dumps(Payload(tmp_path / "payload_ran")))
    torch.save({"weight": Payload(tmp_path / "payload_ran")}, run / "vgg.pth")
    path = run / "checkpoints" / "latest.pt"
    state = checkpoint_module.load_checkpoint(path)
    state["config"]["flow"].update(estimator="spynet", weights=str(run / "flow.pt2"))
    state["config"]["pseudo"]["objective"] = {"name": "kl", "weight": 0.1, "perceptual": 1.0, "perceptual_weights": str(run / "vgg.pth")}
    checkpoint_module.save_checkpoint(state, path)
    write_video(tmp_path / "camera.avi", 12, size=(16, 16))

    assert main(["evaluate", str(run)]) == 0
    assert main(["score", str(tmp_path / "camera.avi"), "--run", str(run), "--out", str(tmp_path / "scored")]) == 0
    capsys.readouterr()
    assert main(train(data, run, "--iterations", "3", "--resume")) == 2
    assert "the config differs from the saved run" in capsys.readouterr().err
    assert not (tmp_path / "payload_ran").exists()


def test_a_run_does_not_choose_where_its_loading_writes_and_may_move_its_cache(tmp_path: Path, monkeypatch) -> None:
    """A downloaded run naming data.cache_dir: evaluating, scoring or resuming it writes no cache there
    ($PSEUDOVAD_CACHE is used); a resume may name a cache folder of its own."""
    monkeypatch.setenv("PSEUDOVAD_CACHE", str(tmp_path / "cache"))
    data = make_dataset(tmp_path / "data")
    run = tmp_path / "run"
    assert main(train(data, run)) == 0
    path = run / "checkpoints" / "latest.pt"
    state = checkpoint_module.load_checkpoint(path)
    state["config"]["data"]["cache_dir"] = str(tmp_path / "chosen" / "by" / "run")
    checkpoint_module.save_checkpoint(state, path)
    write_video(tmp_path / "camera.avi", 12, size=(16, 16))

    assert main(["evaluate", str(run)]) == 0
    assert main(["score", str(tmp_path / "camera.avi"), "--run", str(run), "--out", str(tmp_path / "scored")]) == 0
    assert main(train(data, run, "--iterations", "3", "--resume")) == 0
    assert not (tmp_path / "chosen").exists() and any((tmp_path / "cache").iterdir())
    assert main(train(data, run, "--iterations", "4", "--resume", "--set", f"data.cache_dir={tmp_path / 'mine'}")) == 0
    assert any((tmp_path / "mine").iterdir())


def test_a_start_that_failed_before_its_first_checkpoint_does_not_block_the_next(tmp_path: Path, capsys) -> None:
    """Training on a missing folder fails after the run folder is made; the same command on the right
    data then starts, with neither --force nor --resume (which has no checkpoint to continue)."""
    run = tmp_path / "run"
    assert main(train(tmp_path / "nowhere", run)) == 2
    assert (run / ".pseudovad-run").is_file() and not (run / "checkpoints").exists()
    assert main(train(make_dataset(tmp_path / "data"), run)) == 0
    assert (run / "checkpoints" / "latest.pt").is_file()
    (run / "notes.txt").write_text("mine")
    (run / "checkpoints" / "latest.pt").unlink()
    capsys.readouterr()
    assert main(train(tmp_path / "data", run)) == 2  # not a failed start: it holds a file of the user's
    assert "already holds a run" in capsys.readouterr().err and (run / "notes.txt").read_text() == "mine"
    (run / "notes.txt").unlink()  # now a finished run whose checkpoint was deleted to save space, nothing else
    produced = sorted(path.name for path in run.iterdir())
    assert "train_summary.json" in produced and "calibration.json" in produced
    assert main(train(tmp_path / "data", run)) == 2
    assert "already holds a run" in capsys.readouterr().err and sorted(path.name for path in run.iterdir()) == produced
