"""Property-based tests (hypothesis) of the label parsers and the AUC / normalisation code: random
lengths and ranges, constant scores, one-class videos, NaN scores."""

from __future__ import annotations

from pathlib import Path
from tempfile import TemporaryDirectory

import numpy as np
import pytest
import scipy.io
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.metrics import roc_auc_score

from pseudovad.data.labels import ranges_to_labels, read_ffp_ranges, read_ucsd_m_ranges, split_flat
from pseudovad.errors import DataError
from pseudovad.evaluation.protocol import frame_auc, fuse, minmax

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def videos_with_ranges(draw) -> tuple[list[int], list[list[tuple[int, int]]]]:
    """Per-video lengths and 1-based inclusive anomalous ranges that fit inside each video."""
    lengths = draw(st.lists(st.integers(1, 60), min_size=1, max_size=6))
    ranges = []
    for length in lengths:
        count = draw(st.integers(0, 3))
        video = []
        for _ in range(count):
            start = draw(st.integers(1, length))
            video.append((start, draw(st.integers(start, length))))
        ranges.append(video)
    return lengths, ranges


def expected_labels(lengths: list[int], ranges: list[list[tuple[int, int]]]) -> list[np.ndarray]:
    out = []
    for length, video in zip(lengths, ranges):
        frames = set()
        for start, end in video:
            frames.update(range(start, end + 1))
        out.append(np.array([1 if i + 1 in frames else 0 for i in range(length)], dtype=np.uint8))
    return out


@SETTINGS
@given(videos_with_ranges())
def test_ranges_become_exactly_the_frames_they_cover(case) -> None:
    lengths, ranges = case
    for got, want in zip(ranges_to_labels(ranges, lengths, Path("x.mat")), expected_labels(lengths, ranges)):
        np.testing.assert_array_equal(got, want)


@SETTINGS
@given(videos_with_ranges(), st.integers(1, 5))
def test_a_range_past_the_end_is_an_error(case, overshoot) -> None:
    lengths, ranges = case
    ranges[0] = [*ranges[0], (1, lengths[0] + overshoot)]
    with pytest.raises(DataError, match="ends past the video"):
        ranges_to_labels(ranges, lengths, Path("x.mat"))


@SETTINGS
@given(videos_with_ranges(), st.sampled_from([", ", ",", " ", "  "]))
def test_ucsd_m_file_round_trip(case, separator) -> None:
    _, ranges = case
    lines = ["TestVideoFile = {};"]
    for video in ranges:
        items = [f"{s}" if s == e else f"{s}:{e}" for s, e in video]
        lines.append(f"TestVideoFile{{end+1}}.gt_frame = [{separator.join(items)}];  % video")
    with TemporaryDirectory() as folder:
        path = Path(folder) / "UCSDped2.m"
        path.write_text("\n".join(lines) + "\n")
        assert read_ucsd_m_ranges(path) == [list(video) for video in ranges]


@SETTINGS
@given(videos_with_ranges())
def test_ffp_mat_round_trip(case) -> None:
    _, ranges = case
    cell = np.empty((1, len(ranges)), dtype=object)
    for i, video in enumerate(ranges):
        cell[0, i] = np.array(video, dtype=np.float64).reshape(-1, 2).T
    with TemporaryDirectory() as folder:
        path = Path(folder) / "gt.mat"
        scipy.io.savemat(path, {"gt": cell})
        assert read_ffp_ranges(path) == [list(video) for video in ranges]


@SETTINGS
@given(st.lists(st.integers(1, 40), min_size=1, max_size=8), st.integers(-3, 3), st.randoms())
def test_flat_labels_split_only_when_the_total_matches(lengths, extra, rng) -> None:
    flat = np.array([rng.randint(0, 1) for _ in range(max(sum(lengths) + extra, 0))], dtype=np.uint8)
    if extra != 0:
        with pytest.raises(DataError, match="frame labels but the"):
            split_flat(flat, lengths, Path("labels.npy"))
        return
    pieces = split_flat(flat, lengths, Path("labels.npy"))
    assert [len(p) for p in pieces] == lengths
    np.testing.assert_array_equal(np.concatenate(pieces), flat)


finite = st.floats(-1e6, 1e6, allow_nan=False)


@SETTINGS
@given(st.lists(finite, min_size=1, max_size=50))
def test_minmax_is_in_unit_range_order_preserving_and_zero_when_constant(values) -> None:
    scores = np.array(values)
    scaled = minmax(scores)
    assert scaled.shape == scores.shape and np.all((scaled >= 0) & (scaled <= 1))
    if scores.max() == scores.min():
        assert np.all(scaled == 0)
    else:
        assert scaled.min() == 0 and scaled.max() == 1
        order = np.argsort(scores, kind="stable")
        assert np.all(np.diff(scaled[order]) >= 0)


@st.composite
def scored_videos(draw) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Videos with random scores (sometimes constant) and labels (sometimes one class)."""
    scores, labels = [], []
    for _ in range(draw(st.integers(1, 5))):
        length = draw(st.integers(1, 30))
        if draw(st.booleans()):
            values = [draw(finite)] * length
        else:
            values = draw(st.lists(finite, min_size=length, max_size=length))
        scores.append(np.array(values))
        labels.append(np.array(draw(st.lists(st.integers(0, 1), min_size=length, max_size=length))))
    return scores, labels


@SETTINGS
@given(scored_videos())
def test_frame_auc_matches_its_definition(case) -> None:
    scores, labels = case
    result = frame_auc(scores, labels)
    all_labels = np.concatenate(labels)
    both = 0 < all_labels.sum() < len(all_labels)
    if not both:
        assert result["micro"] is None and result["micro_raw"] is None
    else:
        normalised = np.concatenate([minmax(s) for s in scores])
        assert result["micro"] == pytest.approx(roc_auc_score(all_labels, -normalised))
        assert result["micro_raw"] == pytest.approx(roc_auc_score(all_labels, -np.concatenate(scores)))
    two_class = [(s, lab) for s, lab in zip(scores, labels) if 0 < lab.sum() < len(lab)]
    assert result["videos_in_macro"] == len(two_class)
    if two_class:
        assert result["macro"] == pytest.approx(np.mean([roc_auc_score(lab, -s) for s, lab in two_class]))
        if all(s.min() == s.max() for s, _ in two_class):
            assert result["macro"] == pytest.approx(0.5)
    else:
        assert result["macro"] is None


@SETTINGS
@given(scored_videos(), st.data())
def test_nan_or_infinite_scores_are_refused_naming_the_video(case, data) -> None:
    scores, labels = case
    video = data.draw(st.integers(0, len(scores) - 1))
    frame = data.draw(st.integers(0, len(scores[video]) - 1))
    scores[video][frame] = data.draw(st.sampled_from([np.nan, np.inf, -np.inf]))
    with pytest.raises(ValueError, match=f"video {video}: 1 scores are NaN or infinite"):
        frame_auc(scores, labels)


@SETTINGS
@given(st.lists(finite, min_size=2, max_size=40), st.integers(0, 2**32 - 1))
def test_fused_score_is_in_unit_range_and_follows_agreeing_inputs(values, seed) -> None:
    psnr = np.array(values)
    classifier = np.random.default_rng(seed).random(len(values))
    fused = fuse(psnr, classifier)
    assert np.all((fused >= 0) & (fused <= 1))
    same = fuse(psnr, minmax(psnr))  # two agreeing scores fuse to the same ordering
    np.testing.assert_allclose(same, minmax(psnr), atol=1e-12)
