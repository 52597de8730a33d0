"""The alert rules on hand-made anomaly sequences: smoothing, minimum duration, gap merging, the
moment each event opens and closes, and the footage warnings."""

import math

import numpy as np
import pytest

from pseudovad.alerts import AlertRules, EventTracker, FootageCheck
from pseudovad.errors import PseudovadError

FPS = 10.0


def track(anomalies, rules: AlertRules) -> tuple[list[bool], list[tuple[int, dict]]]:
    """Feed the sequence frame by frame: (the flags, and each event with the frame that emitted it)."""
    tracker = EventTracker(rules, FPS, "psnr")
    flags, events = [], []
    for index, anomaly in enumerate(anomalies):
        _, flagged, emitted = tracker.push(index, anomaly, 30.0 - 10 * anomaly if not math.isnan(anomaly) else math.nan)
        flags.append(flagged)
        events += [(index, event) for event in emitted]
    events += [(len(anomalies), event) for event in tracker.finish()]
    return flags, events


def closed(events):
    return [(event["start_frame"], event["end_frame"]) for _, event in events if event["event"] == "close"]


def test_the_rules_in_frames_and_words():
    rules = AlertRules(smoothing_s=0.3, min_duration_s=0.4, merge_gap_s=0.5)
    assert rules.frames(FPS) == (3, 4, 5)
    assert AlertRules(0.0, 0.0, 0.0).frames(FPS) == (1, 1, 0)  # at least one frame of smoothing and of duration
    described = rules.describe(FPS)
    assert (described["smoothing_frames"], described["min_duration_frames"], described["merge_gap_frames"]) == (3, 4, 5)
    assert "the 2 frame(s) before it" in described["rule"] and "spans 4 frame(s)" in described["rule"]
    with pytest.raises(PseudovadError, match="--merge-gap must be a non-negative number of seconds"):
        AlertRules(merge_gap_s=float("nan"))


def test_a_short_blip_is_no_event_and_a_long_run_is_one():
    rules = AlertRules(smoothing_s=0.1, min_duration_s=0.4, merge_gap_s=0.0)
    anomalies = [0.2] * 5 + [0.9] * 3 + [0.2] * 5 + [0.9, 0.95, 0.8, 0.9, 0.85, 0.9] + [0.2] * 3  # its peak mid-event
    flags, events = track(anomalies, rules)
    assert [i for i, f in enumerate(flags) if f] == [5, 6, 7, *range(13, 19)]
    assert closed(events) == [(13, 18)]
    opened = [(at, event) for at, event in events if event["event"] == "open"]
    assert opened == [(16, {"event": "open", "start_frame": 13, "start_time": 1.3, "at_frame": 16})]  # once it spans 4 frames
    (at, close), = [(at, event) for at, event in events if event["event"] == "close"]
    assert at == 19 and close["frames"] == 6 and close["end_time"] == 1.9 and close["peak_anomaly"] == 0.95
    assert close["min_psnr"] == pytest.approx(20.5)


def test_gaps_up_to_the_merge_gap_join_events_and_longer_ones_split_them():
    anomalies = [0.9] * 4 + [0.1] * 3 + [0.9] * 4 + [0.1] * 4 + [0.9] * 4
    joined = AlertRules(smoothing_s=0.1, min_duration_s=0.4, merge_gap_s=0.3)
    assert closed(track(anomalies, joined)[1]) == [(0, 10), (15, 18)]  # a 3-frame gap joins, a 4-frame gap does not
    assert closed(track(anomalies, AlertRules(0.1, 0.4, 0.5))[1]) == [(0, 18)]


def test_smoothing_averages_a_frame_with_those_before_it():
    """A single frame at 1.0 among 0.3s: alone it flags; averaged over 3 frames (0.53, 0.53, 0.53) three
    frames flag, the last one frame after the spike... and unscored frames (NaN) never flag."""
    anomalies = [math.nan] * 2 + [0.3] * 3 + [1.0] + [0.3] * 4
    assert [i for i, f in enumerate(track(anomalies, AlertRules(0.1, 0.1, 0.0))[0]) if f] == [5]
    assert [i for i, f in enumerate(track(anomalies, AlertRules(0.3, 0.1, 0.0))[0]) if f] == [5, 6, 7]


def test_an_event_still_open_at_the_end_is_closed_by_finish():
    _, events = track([0.9] * 6, AlertRules(0.1, 0.2, 1.0))
    assert [(at, event["event"]) for at, event in events] == [(1, "open"), (6, "close")]
    assert closed(events) == [(0, 5)]


CALIBRATION = {"frames": {"sizes": [[64, 48]], "brightness": {"min": 100.0, "max": 120.0}}}


def check_with(frames: int, size=(48, 64, 3), level=110, flagged_every=0, final=True, rate=0.01) -> list[str]:
    check = FootageCheck(CALIBRATION, rate)
    for index in range(frames):
        check.add(size, np.full((8, 8, 1), level, np.uint8), True, bool(flagged_every) and index % flagged_every == 0)
    return check.judge(final)


def test_footage_check_warns_once_per_reason_and_only_when_judged_on_enough_frames():
    assert check_with(100) == []
    assert check_with(100, flagged_every=20) == []  # 5 %: within 10 times the rate and under a quarter
    size, brightness, rate = check_with(100, size=(480, 640, 3), level=200, flagged_every=2)
    assert size.startswith("the frames are 640x480 but the training videos were 64x48")
    assert brightness.startswith("100 of 100 frames have a mean brightness outside the training frames' range (100 to 120 of 255)")
    assert rate.startswith("50 of 100 scored frames (50%) are flagged where the calibration expects 1% of normal frames")
    assert check_with(20, level=200, flagged_every=1) == []  # too few frames to judge
    assert check_with(100, level=200, final=False) == []  # a live stream is judged after SETTLE_FRAMES
    check = FootageCheck(CALIBRATION, 0.01)
    check.add((480, 640, 3), np.zeros((8, 8, 1), np.uint8), False, False)
    assert len(check.judge(False)) == 1 and check.judge(True) == []  # the size at once, and never twice


def test_the_flagged_rate_warns_at_ten_times_a_calibrated_rate_above_the_floor():
    """At 5 % the factor, not the quarter-of-the-frames floor, sets the line: 50 %."""
    assert check_with(99, flagged_every=3, rate=0.05) == []  # 33 %: above the floor, under 10 x 5 %
    (warning,) = check_with(100, flagged_every=1, rate=0.05)
    assert warning.startswith("100 of 100 scored frames (100%) are flagged where the calibration expects 5% of normal frames")
    assert check_with(100, flagged_every=3, rate=0.01) != []  # the same 34 % warns at 1 %: the floor's 25 %
