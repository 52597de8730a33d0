"""Where frames come from when scoring: a video file or frame folder, a camera, or a network stream.

A file is read as fast as it decodes, or (live mode) at its own frame rate, as a camera would give it;
it never drops a frame, since a file can wait. A camera (an index, as OpenCV numbers them) or a
stream (rtsp://, http://, ... opened by PyAV, with timeouts) is read by a thread into a short queue:
when scoring falls behind, the frames waiting are dropped together and counted, so memory and latency
stay bounded however long it runs. A Gap then takes their place in the frames, so a predictor is never
given a clip with frames missing from its middle (a jump it would see as an anomaly). A URL is shown
without its password in every message and output.
"""

from __future__ import annotations

import math
import re
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from pseudovad.data.dataset import Video
from pseudovad.data.decode import frame_folder_video, is_image, is_video_file, iter_frames, video_file_video
from pseudovad.errors import DataError

STREAM_SCHEMES = ("rtsp", "rtsps", "rtmp", "http", "https", "udp", "tcp", "srt")
OPEN_TIMEOUT_S = 10.0
READ_TIMEOUT_S = 10.0
QUEUE_FRAMES = 32  # decoded frames a camera or stream may have waiting; older ones are dropped
_URL = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://")
_PASSWORD = re.compile(r"^(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^/@:]*:)[^/@]*@")


@dataclass(frozen=True)
class Gap:
    """Where a live source dropped `frames` consecutive frames: the clips restart after it."""

    frames: int


@dataclass
class Source:
    """Frames to score and what is known about them."""

    name: str                  # for messages and outputs (a URL without its password)
    fps: float
    fps_from: str              # "video header", "stream", "camera" or "--fps"
    live: bool                 # a camera or stream: it may drop frames, and its end is a failure
    frames: Iterator[np.ndarray | Gap]  # a Gap only from a live source
    dropped: Callable[[], int] = lambda: 0


def redact(url: str) -> str:
    """`url` with the password of `user:password@` replaced by ***."""
    return _PASSWORD.sub(r"\g<head>***@", url)


def is_stream_or_camera(spec: str) -> bool:
    return spec.isdigit() or _URL.match(spec) is not None


def video_fps(video: Video, default: float) -> tuple[float, str]:
    """Frames per second from the video file's header; frame folders (and broken headers) get `default`."""
    if not video.is_frame_folder:
        capture = cv2.VideoCapture(str(video.path))
        fps = capture.get(cv2.CAP_PROP_FPS)
        capture.release()
        if math.isfinite(fps) and fps > 0:
            return float(fps), "video header"
    return float(default), "--fps"


def file_video(path: Path) -> Video:
    """One video file or frame folder; a missing one is called what it is."""
    path = Path(path).expanduser()
    if not path.exists():
        raise DataError(f"Video not found: {path}")
    if path.is_dir() and any(is_image(p) for p in path.iterdir()):
        return frame_folder_video(path)
    if path.is_file() and is_video_file(path):
        return video_file_video(path)
    raise DataError(f"{path} is neither a video file nor a folder of frame images")


def open_source(spec: str, fps: float, paced: bool) -> Source:
    """A camera index, a stream URL or a file (`paced`: delivered at its own frame rate)."""
    if spec.isdigit():
        return _camera(int(spec), fps)
    match = _URL.match(spec)
    if match:
        return _stream(spec, match.group("scheme").lower(), fps)
    return video_source(file_video(Path(spec)), fps, paced)


def video_source(video: Video, fps: float, paced: bool = False) -> Source:
    """A video file or frame folder (`fps` for frame folders), as fast as it decodes or `paced` at its own rate."""
    rate, rate_from = video_fps(video, fps)
    frames = iter_frames(video)
    return Source(str(video.path), rate, rate_from, False, _paced(frames, rate) if paced else frames)


def _paced(frames: Iterator[np.ndarray], fps: float) -> Iterator[np.ndarray]:
    """Frame i no earlier than i / fps seconds after the first, as a camera would deliver it."""
    started = time.monotonic()
    for index, frame in enumerate(frames):
        delay = started + index / fps - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        yield frame


def _camera(index: int, fps: float) -> Source:
    device = Path(f"/dev/video{index}")
    if sys.platform.startswith("linux") and not device.exists():
        found = ", ".join(sorted(str(p) for p in Path("/dev").glob("video[0-9]*"))) or "none"
        raise DataError(f"camera {index} not found: there is no {device} (cameras here: {found}); give the index of a "
                        "connected camera, a stream URL (rtsp://...) or a video file")
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    capture = cv2.VideoCapture(index)
    if not capture.isOpened():
        capture.release()
        raise DataError(f"camera {index} cannot be opened: it is missing, busy in another program, or not a video "
                        "capture device; give the index of a connected camera, a stream URL or a video file")
    rate = capture.get(cv2.CAP_PROP_FPS)
    rate, rate_from = (float(rate), "camera") if math.isfinite(rate) and rate > 0 else (float(fps), "--fps")

    def frames() -> Iterator[np.ndarray]:
        try:
            while True:
                ok, frame = capture.read()
                if not ok:
                    return
                yield cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
        finally:
            capture.release()

    return _queued(f"camera {index}", rate, rate_from, frames())


def _stream(url: str, scheme: str, fps: float) -> Source:
    """A network stream; `fps` where it reports no frame rate."""
    import av

    shown = redact(url)
    if scheme not in STREAM_SCHEMES:
        raise DataError(f"{shown}: '{scheme}://' is not a stream pseudovad reads; give {', '.join(s + '://' for s in STREAM_SCHEMES)}, "
                        "a camera index or a video file")
    options = {"rtsp_transport": "tcp"} if scheme.startswith("rtsp") else {}
    try:
        container = av.open(url, timeout=(OPEN_TIMEOUT_S, READ_TIMEOUT_S), options=options)
    except (av.FFmpegError, OSError) as error:
        reason = getattr(error, "strerror", None) or type(error).__name__
        raise DataError(f"cannot open the stream {shown}: {reason}; check the address and port, that the camera is on "
                        "and reachable from here, and its user name and password") from None
    if not container.streams.video:
        container.close()
        raise DataError(f"{shown} holds no video stream")
    stream = container.streams.video[0]
    rate = float(stream.average_rate or stream.guessed_rate or 0)

    def frames() -> Iterator[np.ndarray]:
        try:
            for frame in container.decode(stream):
                yield frame.to_ndarray(format="rgb24")
        except (av.FFmpegError, OSError):
            return  # the stream dropped: the caller reports its end
        finally:
            container.close()

    return _queued(shown, rate if rate > 0 else float(fps), "stream" if rate > 0 else "--fps", frames())


def _queued(name: str, fps: float, fps_from: str, frames: Iterator[np.ndarray]) -> Source:
    """A live source read by a thread into a queue of at most QUEUE_FRAMES. When it is full the frames
    waiting are dropped together, not one by one: clips of consecutive frames can then be made again
    straight after the Gap, where dropping the oldest frame each time would leave a hole in every clip."""
    queue: deque[np.ndarray] = deque()
    ready = threading.Condition()
    state = {"dropped": 0, "gap": 0, "ended": False, "stop": False}

    def read() -> None:
        try:
            for frame in frames:
                with ready:
                    if state["stop"]:
                        break
                    if len(queue) == QUEUE_FRAMES:
                        state["gap"] += len(queue)
                        state["dropped"] += len(queue)
                        queue.clear()
                    queue.append(frame)
                    ready.notify()
        finally:
            frames.close()
            with ready:
                state["ended"] = True
                ready.notify()

    def deliver() -> Iterator[np.ndarray | Gap]:
        reader = threading.Thread(target=read, name=f"read {name}", daemon=True)
        reader.start()
        try:
            while True:
                with ready:
                    ready.wait_for(lambda: queue or state["ended"])
                    if not queue:
                        return
                    gap, state["gap"] = state["gap"], 0
                    frame = queue.popleft()
                if gap:
                    yield Gap(gap)
                yield frame
        finally:
            with ready:
                state["stop"] = True
            reader.join(timeout=1.0)

    return Source(name, fps, fps_from, True, deliver(), dropped=lambda: state["dropped"])
