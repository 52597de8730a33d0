"""Reading frames off disk: frame folders and video files, with every problem reported as DataError.

Layout readers only list and count frames (cheap); `iter_frames` does the decoding and re-checks
what the listing promised, so a corrupt image or a truncated video never goes unnoticed.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

import cv2
import numpy as np

from pseudovad.data.dataset import Video
from pseudovad.errors import DataError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".m4v", ".webm", ".mpg", ".mpeg", ".wmv", ".flv")

# Files that operating systems drop into folders; never part of a dataset.
_SYSTEM_FILES = {"thumbs.db", "desktop.ini"}

_DIGITS = re.compile(r"(\d+)")

# OpenCV's FFmpeg prints its own lines ("moov atom not found") on stderr before the DataError below
# says the same thing with the file and the fix; quiet by default, a user debugging a codec sets it.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")


def natural_key(name: str) -> tuple:
    """Sort key that orders embedded numbers by value, so "2" comes before "10"."""
    parts = _DIGITS.split(name)
    # isdecimal, not isdigit: superscripts such as '²' are digits that int() refuses.
    return (tuple(int(p) if p.isdecimal() else p.lower() for p in parts), name)


def natural_sorted(paths: Iterable[Path]) -> list[Path]:
    """Paths sorted by natural order of their names."""
    return sorted(paths, key=lambda p: natural_key(p.name))


def is_ignored(path: Path) -> bool:
    """Hidden files and OS clutter (Thumbs.db) that every reader skips."""
    return path.name.startswith(".") or path.name.lower() in _SYSTEM_FILES


def is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS


def is_video_file(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_EXTENSIONS


def list_frames(folder: Path) -> tuple[Path, ...]:
    """The frame images of a frame folder in natural order.

    Anything else in the folder is an error rather than skipped, because a stray file usually
    means the folder is not what the user thinks it is.
    """
    if not folder.is_dir():
        raise DataError(f"Frame folder not found: {folder}")
    frames = []
    for entry in folder.iterdir():
        if is_ignored(entry):
            continue
        if entry.is_dir():
            raise DataError(
                f"Unexpected subfolder {entry} inside frame folder {folder}; a frame folder holds only "
                f"images ({', '.join(IMAGE_EXTENSIONS)})."
            )
        if not is_image(entry):
            raise DataError(
                f"Unexpected non-image file {entry} inside frame folder {folder}; expected only images "
                f"({', '.join(IMAGE_EXTENSIONS)}). Move it out of the folder."
            )
        frames.append(entry)
    if not frames:
        raise DataError(f"Frame folder {folder} contains no images.")
    return tuple(natural_sorted(frames))


def count_video_frames(path: Path) -> int:
    """Frame count from the container header; `iter_frames` verifies it while decoding."""
    if not path.is_file():
        raise DataError(f"Video file not found: {path}")
    if path.stat().st_size == 0:
        raise DataError(f"Video file {path} is empty (0 bytes).")
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise DataError(f"Cannot open video file {path}: {why_unreadable(path)}")
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    finally:
        cap.release()
    if count <= 0:
        raise DataError(f"Video file {path} reports {count} frames; it is empty or its header is broken.")
    return count


def why_unreadable(path: Path) -> str:
    """What FFmpeg (through PyAV) says of a file OpenCV could not open: not a container, no video
    stream (an audio-only .mp4), or a codec this build cannot decode; each has another fix."""
    import av

    try:
        with av.open(str(path)) as container:
            streams = [stream.type for stream in container.streams]
            video = container.streams.video
            codec = video[0].codec_context.name if video else None
    except (av.FFmpegError, OSError, ValueError) as error:
        return f"FFmpeg cannot read it as a video container ({error}); check that the file is a complete video."
    if codec is None:
        held = ", ".join(streams) or "no streams"
        return f"it holds no video stream ({held}); give a file with pictures."
    return (f"its video codec '{codec}' cannot be decoded here; re-encode it, e.g. "
            f"ffmpeg -i {path.name} -c:v libx264 -pix_fmt yuv420p out.mp4")


def frame_folder_video(folder: Path) -> Video:
    frames = list_frames(folder)
    return Video(name=folder.name, path=folder, num_frames=len(frames), frames=frames)


def video_file_video(path: Path) -> Video:
    return Video(name=path.stem, path=path, num_frames=count_video_frames(path))


def read_image(path: Path) -> np.ndarray:
    """One image as HxWx3 uint8 RGB, whatever its channels or bit depth on disk."""
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as exc:
        raise DataError(f"Cannot read image {path}: {exc}") from exc
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise DataError(f"Cannot decode image {path}: the file is corrupt or not an image.")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _check_size(frame: np.ndarray, first_shape: tuple[int, ...], where: str) -> None:
    if frame.shape != first_shape:
        h, w = frame.shape[:2]
        h0, w0 = first_shape[:2]
        raise DataError(
            f"Frame size changes within a video: {where} is {w}x{h} but the video's first frame is {w0}x{h0}."
        )


def _iter_folder(video: Video) -> Iterator[np.ndarray]:
    assert video.frames is not None
    first_shape = None
    for path in video.frames:
        frame = read_image(path)
        if first_shape is None:
            first_shape = frame.shape
        _check_size(frame, first_shape, str(path))
        yield frame


def _iter_video_file(video: Video) -> Iterator[np.ndarray]:
    if not video.path.is_file():
        raise DataError(f"Video file not found: {video.path}")
    cap = cv2.VideoCapture(str(video.path))
    try:
        if not cap.isOpened():
            raise DataError(f"Cannot open video file {video.path}: {why_unreadable(video.path)}")
        first_shape = None
        for index in range(video.num_frames):
            ok, frame = cap.read()
            if not ok:
                raise DataError(
                    f"Video file {video.path} is truncated or corrupt: its header reports "
                    f"{video.num_frames} frames but only {index} could be decoded."
                )
            if first_shape is None:
                first_shape = frame.shape
            _check_size(frame, first_shape, f"frame {index} of {video.path}")
            yield cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
        if cap.grab():
            raise DataError(
                f"Video file {video.path} has more frames than the {video.num_frames} its header reports; "
                f"frame labels would be misaligned. Re-encode the video."
            )
    finally:
        cap.release()


def iter_frames(video: Video) -> Iterator[np.ndarray]:
    """Yield every frame of `video` in order as HxWx3 uint8 RGB.

    Raises DataError naming the file on an unreadable frame, a size change, or a frame count that
    differs from `video.num_frames`, because labels are aligned frame by frame.
    """
    if video.is_frame_folder:
        return _iter_folder(video)
    return _iter_video_file(video)
