"""Frame sources for `live`: the bounded queue of a camera or stream, passwords kept out of messages,
and the errors for what cannot be opened (without a camera or a network: loopback and fakes only)."""

import threading
import time

import numpy as np
import pytest

from pseudovad.data import sources
from pseudovad.data.sources import QUEUE_FRAMES, is_stream_or_camera, open_source, redact
from pseudovad.errors import DataError

from media import write_video


def test_a_slow_consumer_drops_the_oldest_frames_and_counts_them():
    """A camera giving 200 frames at once to a scorer that takes its time: at most QUEUE_FRAMES wait, the
    oldest go first, every one is either delivered or counted as dropped, and the last ones arrive."""
    produced = (np.full((2, 2, 3), index % 256, np.uint8) for index in range(200))
    source = sources._queued("fake camera", 25.0, "camera", produced)
    first = next(source.frames)
    time.sleep(0.5)  # the reader fills the queue meanwhile
    rest = list(source.frames)
    delivered = [first, *rest]
    assert source.dropped() > 0 and len(delivered) + source.dropped() == 200
    assert len(rest) <= QUEUE_FRAMES
    assert delivered[-1][0, 0, 0] == 199 % 256
    values = [int(frame[0, 0, 0]) for frame in delivered]
    assert values == sorted(values)  # in order, the dropped ones missing


def test_stopping_early_stops_the_reader():
    produced = (np.zeros((2, 2, 3), np.uint8) for _ in range(10**9))
    source = sources._queued("endless camera", 25.0, "camera", produced)
    next(source.frames)
    source.frames.close()  # what Ctrl-C does through `watch`
    assert not any(thread.name == "read endless camera" for thread in threading.enumerate())


def test_passwords_never_shown_and_specs_recognised():
    assert redact("rtsp://admin:s3cr:et@10.0.0.2:554/live") == "rtsp://admin:***@10.0.0.2:554/live"
    assert redact("http://camera.local/mjpg") == "http://camera.local/mjpg"
    assert [is_stream_or_camera(spec) for spec in ("0", "12", "rtsp://x/y", "cam.mp4", "0.mp4")] == [True, True, True, False, False]


def test_sources_that_cannot_be_opened_are_named(tmp_path):
    with pytest.raises(DataError, match=r"^Video not found: .*gone\.mp4$"):
        open_source(str(tmp_path / "gone.mp4"), 25.0, paced=True)
    with pytest.raises(DataError, match=r"^ftp://user:\*\*\*@host/x: 'ftp://' is not a stream pseudovad reads"):
        open_source("ftp://user:pw@host/x", 25.0, paced=True)
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(DataError, match=r"notes\.txt is neither a video file nor a folder of frame images"):
        open_source(str(tmp_path / "notes.txt"), 25.0, paced=True)


def test_a_file_is_delivered_at_its_own_frame_rate(tmp_path):
    write_video(tmp_path / "clip.avi", 6)  # 25 fps
    source = open_source(str(tmp_path / "clip.avi"), 10.0, paced=True)
    started = time.monotonic()
    frames = list(source.frames)
    assert len(frames) == 6 and (source.fps, source.fps_from, source.live) == (25.0, "video header", False)
    assert time.monotonic() - started >= 5 / 25 - 0.01
