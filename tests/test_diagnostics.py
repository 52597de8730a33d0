"""Held-out training videos and what a pipeline checks on them: kept out of training, split from
one cache, foreground found by background subtraction, and OGNet's checks in the run's summary."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from pseudovad.cli import main
from pseudovad.data.cache import FrameArray
from pseudovad.data.clips import ClipDataset
from pseudovad.data.dataset import Video
from pseudovad.data.foreground import FOREGROUND_LEVELS, foreground_masks
from pseudovad.training.ognet import BAD_KINDS, GOOD_KINDS

from test_ognet import TINY_RUN, tiny_ognet


def walking_square(videos: int = 2, length: int = 12, size: int = 40) -> FrameArray:
    """A textured still background per video with a bright 8x8 square crossing it, one step a frame."""
    rng = np.random.default_rng(0)
    array = np.empty((videos * length, size, size, 1), dtype=np.uint8)
    for v in range(videos):
        background = rng.integers(40, 120, (size, size, 1), dtype=np.uint8)
        for t in range(length):
            frame = background.copy()
            frame[10:18, 2 + 2 * t : 10 + 2 * t] = 250
            array[v * length + t] = frame
    listed = [Video(f"{v:02d}", Path(f"{v:02d}"), length) for v in range(videos)]
    return FrameArray(array, np.arange(videos + 1) * length, listed)


def test_foreground_is_what_differs_from_the_video_median():
    frames = walking_square()
    positions = np.array([3, 12 + 7])
    masks = foreground_masks(frames, positions)
    for mask, t in zip(masks, (3, 7)):
        expected = np.zeros((40, 40), dtype=bool)
        expected[10:18, 2 + 2 * t : 10 + 2 * t] = True
        np.testing.assert_array_equal(mask, expected)
    assert FOREGROUND_LEVELS < 250 - 120


def test_ognet_diagnostics_judge_the_kinds_and_the_foreground():
    model = tiny_ognet(size=40, patches=20)
    model.train_step({"frames": torch.rand(8, 1, 20, 20) * 2 - 1})
    held_out = ClipDataset(walking_square(), 4)
    diagnostics = model.training_diagnostics(held_out)
    assert diagnostics["frames"] == len(held_out) and diagnostics["patches_per_frame"] == 4
    pairs = [f"{good}_vs_{bad}" for good in GOOD_KINDS for bad in BAD_KINDS]
    assert set(diagnostics["kind_auc"]) == {*pairs, "good_vs_bad"}
    assert all(0.0 <= value <= 1.0 for value in diagnostics["kind_auc"].values())
    assert set(diagnostics["mean_logit"]) == {*GOOD_KINDS, *BAD_KINDS}
    foreground = diagnostics["foreground"]
    assert foreground["mean_area"] == pytest.approx(64 / 1600)  # the 8x8 square in every 40x40 frame
    assert foreground["spearman_frame"] is None  # every frame has the same area: nothing to correlate
    assert -1.0 <= foreground["spearman_patch"] <= 1.0


def test_ognet_diagnostics_compute_what_they_claim_from_known_logits(monkeypatch):
    """Logits made to order: the `new` score is each patch's share of square pixels (its foreground area),
    the other good kinds 1 and the bad kinds -1. So every good kind ranks above every bad one (AUC 1) and
    the patch score follows the foreground exactly (Spearman 1); a sign slip anywhere shows."""
    model = tiny_ognet(size=40, patches=20)

    def made_to_order(patches):
        area = (patches > 0.5).float().mean(dim=(1, 2, 3))  # the square is 250, the background at most 120
        ones = torch.ones(len(patches))
        return {**{kind: ones for kind in GOOD_KINDS}, **{kind: -ones for kind in BAD_KINDS}, "new": area}

    monkeypatch.setattr(model, "shuffled_kind_logits", made_to_order)
    diagnostics = model.training_diagnostics(ClipDataset(walking_square(), 4))
    assert all(value == 1.0 for value in diagnostics["kind_auc"].values()), diagnostics["kind_auc"]
    assert {kind: diagnostics["mean_logit"][kind] for kind in BAD_KINDS} == {kind: -1.0 for kind in BAD_KINDS}
    assert diagnostics["foreground"]["spearman_patch"] == pytest.approx(1.0)


def test_held_out_frames_are_not_trained_on_and_are_checked_in_the_summary(tiny_data, tmp_path):
    run = tmp_path / "run"
    assert main(["train", "synthetic_ognet", "--data", str(tiny_data), "--out", str(run), *TINY_RUN, "--iterations", "4",
                 "--set", "ognet.patches=24", "--set", "data.holdout=0.25", "--evaluate"]) == 0
    summary = json.loads((run / "train_summary.json").read_text())
    assert "data.holdout" in summary["diagnostics_on"]
    assert summary["training_clips"] == 2 * (18 - 4)  # each 24-frame video keeps its last 6 frames out; clips of 4 + 1
    assert summary["diagnostics"]["frames"] == 2 * (6 - 4)
    assert summary["diagnostics"]["patches_per_frame"] == 4
    assert 0 < summary["diagnostics_seconds"] < 600
    assert json.loads((run / "results.json").read_text())["auc"]["ognet"]["micro"] is not None


def test_without_held_out_frames_the_summary_has_no_diagnostics(tiny_data, tmp_path):
    run = tmp_path / "run"
    assert main(["train", "synthetic_ognet", "--data", str(tiny_data), "--out", str(run), *TINY_RUN,
                 "--iterations", "4", "--set", "ognet.patches=24"]) == 0
    assert "diagnostics" not in json.loads((run / "train_summary.json").read_text())
