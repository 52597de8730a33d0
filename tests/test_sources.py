"""Frame sources for `live`: the bounded queue of a camera or stream, passwords kept out of messages,
and the errors for what cannot be opened (without a camera or a network: loopback and fakes only)."""

import functools
import threading
import time
import types
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import cv2

import numpy as np
import pytest

from pseudovad.data import sources
from pseudovad.data.sources import QUEUE_FRAMES, Gap, is_stream_or_camera, open_source, redact
from pseudovad.errors import DataError

from media import write_audio_only, write_video


def test_a_slow_consumer_drops_the_waiting_frames_together_and_marks_the_gap():
    """A camera giving 200 frames at once to a scorer that takes its time: at most QUEUE_FRAMES wait;
    when the queue is full they are dropped together and a Gap of their number takes their place, so
    between gaps the frames are consecutive; every frame is delivered or counted, the last arrives."""
    produced = (np.full((2, 2, 3), index % 256, np.uint8) for index in range(200))
    source = sources._queued("fake camera", 25.0, "camera", produced)
    items = [next(source.frames)]  # starts the reader
    time.sleep(0.5)  # which fills the queue meanwhile
    items += list(source.frames)
    numbers, expected = [], 0
    for item in items:
        if isinstance(item, Gap):
            expected += item.frames
            continue
        assert int(item[0, 0, 0]) == expected % 256  # consecutive up to a gap, and a gap's size is the hole
        numbers.append(expected)
        expected += 1
    assert source.dropped() > 0 and len(numbers) + source.dropped() == 200 == expected
    assert len(numbers) <= QUEUE_FRAMES + 1 and numbers[-1] == 199


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


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # no request lines among the test's output
        pass


def test_a_network_stream_is_decoded_to_rgb_at_its_own_rate(tmp_path):
    """The stream path end to end over loopback HTTP: PyAV's frames, in RGB order, at the stream's rate,
    read through the queue, with the password kept out of the source's name."""
    height, width = 32, 48
    writer = cv2.VideoWriter(str(tmp_path / "red.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 25, (width, height))
    for _ in range(8):
        writer.write(np.dstack([np.zeros((height, width), np.uint8)] * 2 + [np.full((height, width), 220, np.uint8)]))  # BGR red
    writer.release()
    write_audio_only(tmp_path / "memo.mp4")
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(tmp_path)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        source = open_source(f"http://viewer:pw@127.0.0.1:{server.server_port}/red.avi", 10.0, paced=False)
        frames = list(source.frames)
        with pytest.raises(DataError, match=r"^http://127\.0\.0\.1:\d+/memo\.mp4 holds no video stream$"):
            open_source(f"http://127.0.0.1:{server.server_port}/memo.mp4", 10.0, paced=False)
    finally:
        server.shutdown()
        server.server_close()
    assert (source.fps, source.fps_from, source.live) == (25.0, "stream", True)
    assert source.name == f"http://viewer:***@127.0.0.1:{server.server_port}/red.avi"
    assert len(frames) + source.dropped() == 8 and frames[0].shape == (height, width, 3)
    red, green, blue = frames[-1].reshape(-1, 3).mean(axis=0)
    assert red > 180 and green < 40 and blue < 40


class _FakeCapture:
    """cv2.VideoCapture of a camera giving three BGR-red frames at 12 fps, then nothing."""

    def __init__(self, index: int) -> None:
        self.left, self.released = 3, False

    def isOpened(self) -> bool:
        return True

    def get(self, prop: int) -> float:
        return 12.0 if prop == cv2.CAP_PROP_FPS else 0.0

    def read(self):
        self.left -= 1
        return (True, np.dstack([np.zeros((4, 6), np.uint8)] * 2 + [np.full((4, 6), 200, np.uint8)])) if self.left >= 0 else (False, None)

    def release(self) -> None:
        self.released = True


def test_a_camera_is_read_in_rgb_at_its_own_rate_and_released(monkeypatch):
    opened = []
    monkeypatch.setattr(sources, "sys", types.SimpleNamespace(platform="darwin"))  # no /dev/video3 needed
    monkeypatch.setattr(sources.cv2, "VideoCapture", lambda index: opened.append(_FakeCapture(index)) or opened[-1])
    source = open_source("3", 25.0, paced=True)
    frames = list(source.frames)
    assert (source.name, source.fps, source.fps_from, source.live) == ("camera 3", 12.0, "camera", True)
    assert len(frames) == 3 and all(frame[0, 0].tolist() == [200, 0, 0] for frame in frames)
    assert opened[0].released
