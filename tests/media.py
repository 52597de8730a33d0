"""Small image and video files written by the tests (frame folders, MJPG .avi files, an audio-only .mp4)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


def write_frames(folder: Path, num_frames: int, ext: str = ".jpg", first: int = 0, size: tuple[int, int] = (12, 16)) -> None:
    """Frames `first..first+num_frames-1` of `size` (height, width); frame i has gray level 10*i."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(first, first + num_frames):
        cv2.imwrite(str(folder / f"{i:03d}{ext}"), np.full(size, 10 * i % 256, dtype=np.uint8))


def write_video(path: Path, num_frames: int, size: tuple[int, int] = (32, 48)) -> None:
    """A small MJPG .avi of `size` (height, width) whose frame i has gray level 20*i."""
    path.parent.mkdir(parents=True, exist_ok=True)
    height, width = size
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25, (width, height))
    for i in range(num_frames):
        writer.write(np.full((height, width, 3), 20 * i % 256, dtype=np.uint8))
    writer.release()


def write_audio_only(path: Path) -> None:
    """A valid .mp4 with sound and no pictures, as a phone's voice memo."""
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=16000)
        stream.layout = "mono"
        for _ in range(4):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            frame.sample_rate = 16000
            container.mux(stream.encode(frame))
        container.mux(stream.encode())


def truncate(path: Path, keep: float = 0.8) -> None:
    """Cut a file to its first `keep` fraction, as an interrupted copy leaves it."""
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
