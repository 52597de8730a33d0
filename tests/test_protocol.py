"""The evaluation protocol against hand-computed cases."""

import math

import numpy as np
import pytest
import torch

from pseudovad.evaluation.protocol import frame_auc, micro_auc_shortfall, minmax, operating_points, scored_labels, smooth
from pseudovad.metrics import psnr


def test_psnr_matches_hand_computation_on_unit_range():
    target = torch.full((1, 1, 2, 2), -1.0)  # black in [0, 1]
    prediction = torch.tensor([[[[-1.0, -1.0], [-1.0, 0.0]]]])  # one pixel at 0.5 in [0, 1]
    mse = 0.25 / 4
    assert psnr(prediction, target).item() == pytest.approx(10 * math.log10(1 / mse), rel=1e-6)


def test_psnr_is_per_frame_and_finite_for_perfect_prediction():
    frames = torch.rand(3, 1, 4, 4) * 2 - 1
    values = psnr(frames, frames)
    assert values.shape == (3,)
    assert torch.isfinite(values).all() and (values == 100).all()


def test_minmax_and_constant_scores():
    np.testing.assert_allclose(minmax(np.array([2.0, 4.0, 3.0])), [0.0, 1.0, 0.5])
    np.testing.assert_array_equal(minmax(np.array([5.0, 5.0])), [0.0, 0.0])


def test_scored_labels_drop_the_first_clip_length_frames():
    labels = np.array([1, 1, 0, 0, 1, 0])
    np.testing.assert_array_equal(scored_labels(labels, 4), [1, 0])


def test_micro_auc_normalises_per_video_and_raw_does_not():
    # Video A scores ~100 dB, video B ~10 dB: raw concatenation ranks all of B as anomalous.
    scores = [np.array([100.0, 101.0, 102.0]), np.array([10.0, 11.0, 12.0])]
    labels = [np.array([1, 0, 0]), np.array([1, 0, 0])]
    result = frame_auc(scores, labels)
    # Normalised: anomalous frames both score 0, normal frames 0.5 and 1 -> perfect separation.
    assert result["micro"] == pytest.approx(1.0)
    # Raw: normals {101, 102, 11, 12}, anomalies {100, 10}. Pairs (anomaly lower than normal):
    # 100 < 101, 102 but > 11, 12 -> 2 of 4; 10 below all 4 -> total 6 of 8.
    assert result["micro_raw"] == pytest.approx(6 / 8)
    assert result["macro"] == pytest.approx(1.0)
    assert result["videos_in_macro"] == 2


def test_macro_skips_one_class_videos():
    scores = [np.array([1.0, 2.0, 3.0]), np.array([3.0, 2.0, 1.0])]
    labels = [np.array([1, 0, 0]), np.array([0, 0, 0])]
    result = frame_auc(scores, labels)
    assert result["videos_in_macro"] == 1
    assert result["macro"] == pytest.approx(1.0)


def test_alignment_at_video_start_is_checked_not_shifted():
    # 6 frames, clip length 4: two scored frames; passing unsliced labels must fail loudly.
    labels = np.array([0, 0, 0, 0, 1, 0])
    with pytest.raises(ValueError, match="2 scores for 6 labels"):
        frame_auc([np.array([1.0, 2.0])], [labels])
    result = frame_auc([np.array([1.0, 2.0])], [scored_labels(labels, 4)])
    assert result["micro"] == pytest.approx(1.0)


def test_smoothing_changes_scores_within_a_video_only():
    values = np.array([0.0, 0.0, 10.0, 0.0, 0.0])
    smoothed = smooth(values, 1.0)
    assert smoothed[2] < 10 and smoothed[1] > 0
    np.testing.assert_array_equal(smooth(values, 0), values)
    # frame_auc smooths each video alone: a dip at the end of one video does not leak into the next.
    scores = [np.array([5.0, 1.0, 5.0, 4.0]), np.array([0.0, 5.0, 5.0, 5.0])]
    labels = [np.array([0, 1, 0, 0]), np.array([1, 0, 0, 1])]
    by_video = frame_auc(scores, labels, sigma=1.0)
    assert by_video == frame_auc([smooth(s, 1.0) for s in scores], labels)
    joined = smooth(np.concatenate(scores), 1.0)
    assert by_video["micro_raw"] != frame_auc([joined[:4], joined[4:]], labels)["micro_raw"]
    assert by_video["micro_raw"] != frame_auc(scores, labels)["micro_raw"]


def test_operating_points_by_hand_and_against_the_normal_model():
    """Scores high = normal. Perfectly separated: every anomaly found at no false alarm, EER 0; reversed:
    nothing found below 100 % false alarms, EER 1; one class only: None. Two unit normals d = 1 apart have
    EER = Phi(-1/2) = 0.3085 and TPR at 5 % FPR = Phi(1 - 1.645) = 0.2595."""
    labels = [np.array([0, 0, 1]), np.array([1, 0])]
    assert operating_points([np.array([3.0, 2.0, 0.0]), np.array([1.0, 4.0])], labels) == {
        "tpr_at_fpr_1": 1.0, "tpr_at_fpr_5": 1.0, "eer": 0.0}
    assert operating_points([np.array([0.0, 1.0, 3.0]), np.array([4.0, 2.0])], labels)["eer"] == 1.0
    assert operating_points([np.array([1.0, 2.0])], [np.array([0, 0])]) == {"tpr_at_fpr_1": None, "tpr_at_fpr_5": None, "eer": None}
    rng = np.random.default_rng(0)
    anomalous = rng.integers(0, 2, 200_000)
    points = operating_points([-(anomalous + rng.normal(size=anomalous.size))], [anomalous])
    assert points["eer"] == pytest.approx(0.3085, abs=0.005)
    assert points["tpr_at_fpr_5"] == pytest.approx(0.2595, abs=0.005)


def test_micro_auc_shortfall_by_hand():
    a = np.array([10.0, 0.0, 5.0]), np.array([0, 0, 1])  # normality after min-max 1, 0 (normal), 0.5 (anomalous)
    b = np.array([3.0, 1.0, 3.0]), np.array([1, 0, 1])   # normality 1 (anomalous), 0 (normal), 1 (anomalous)
    # Normal frames 1, 0, 0 against anomalous 0.5, 1, 1: 9 pairs. a's 0.5 looks more normal than two of
    # them; each of b's two 1s than two, and ties the third (half): 2 + 2.5 + 2.5 = 7 misranked pairs.
    shares = micro_auc_shortfall([a[0], b[0]], [a[1], b[1]])
    assert shares == pytest.approx([2 / 9, 5 / 9])
    assert frame_auc([a[0], b[0]], [a[1], b[1]])["micro"] == pytest.approx(2 / 9)


def test_micro_auc_shortfall_adds_up_to_what_the_micro_auc_loses():
    rng = np.random.default_rng(0)
    labels = [(rng.random(n) < p).astype(int) for n, p in ((50, 0.3), (40, 0.0), (30, 1.0), (60, 0.5))]
    scores = [rng.normal(size=len(l)) - 1.5 * l + rng.integers(0, 3, len(l)) for l in labels]  # with ties
    shares = micro_auc_shortfall(scores, labels)
    assert len(shares) == 4 and shares[1] == 0.0 and min(shares) >= 0
    assert sum(shares) == pytest.approx(1 - frame_auc(scores, labels)["micro"], abs=1e-12)
    with pytest.raises(ValueError, match="one class"):
        micro_auc_shortfall([np.zeros(3)], [np.zeros(3, int)])
