"""Decoded, resized frames cached as one uint8 memory-mapped array per split.

Decoding JPEGs (or video) at every training step makes a 2-core machine data-bound; decoding once
and memory-mapping the result makes training compute-bound. The cache key covers the sources (path,
frame count, modification time) and the target size, so a changed dataset or size rebuilds it.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from pseudovad.data.dataset import Video
from pseudovad.data.decode import iter_frames
from pseudovad.errors import DataError

CACHE_FORMAT = 1


def default_cache_dir() -> Path:
    return Path(os.environ.get("PSEUDOVAD_CACHE", Path.home() / ".cache" / "pseudovad"))


@dataclass
class FrameArray:
    """All frames of a list of videos: `frames[offsets[i]:offsets[i+1]]` is video i, (N, H, W, C) uint8."""

    frames: np.ndarray
    offsets: np.ndarray
    videos: list[Video]

    def video(self, index: int) -> np.ndarray:
        return self.frames[self.offsets[index] : self.offsets[index + 1]]


def prepare_frame(rgb: np.ndarray, height: int, width: int, channels: int) -> np.ndarray:
    """Resize an RGB uint8 frame to (height, width) and keep 3 channels or convert to 1 (luminance)."""
    shrinking = rgb.shape[0] > height or rgb.shape[1] > width
    resized = cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
    if channels == 1:
        return cv2.cvtColor(resized, cv2.COLOR_RGB2GRAY)[..., None]
    return resized


def _cache_key(videos: list[Video], height: int, width: int, channels: int) -> str:
    sources = []
    for video in videos:
        stat = video.path.stat()
        sources.append([str(video.path.resolve()), video.num_frames, stat.st_mtime_ns, stat.st_size])
    text = json.dumps({"format": CACHE_FORMAT, "size": [height, width, channels], "sources": sources})
    return hashlib.sha1(text.encode()).hexdigest()[:20]


def load_frames(
    videos: list[Video],
    height: int,
    width: int,
    channels: int,
    cache_dir: Path | None = None,
    description: str = "frames",
) -> FrameArray:
    """Return the frames of `videos`, decoding and caching them on first use."""
    if not videos:
        raise DataError(f"no videos to load for {description}")
    cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
    cache_dir.mkdir(parents=True, exist_ok=True)
    key = _cache_key(videos, height, width, channels)
    array_path = cache_dir / f"{key}.npy"
    offsets = np.concatenate([[0], np.cumsum([v.num_frames for v in videos])]).astype(np.int64)
    if not array_path.exists():
        _build(videos, offsets, array_path, height, width, channels, description)
    return FrameArray(np.load(array_path, mmap_mode="r"), offsets, videos)


def _build(
    videos: list[Video], offsets: np.ndarray, path: Path, height: int, width: int, channels: int, description: str
) -> None:
    temporary = path.with_name(f"{path.stem}.{os.getpid()}.partial.npy")
    array = np.lib.format.open_memmap(temporary, mode="w+", dtype=np.uint8, shape=(int(offsets[-1]), height, width, channels))
    try:
        with tqdm(total=int(offsets[-1]), desc=f"caching {description}", unit="frame", leave=False) as bar:
            for index, video in enumerate(videos):
                count = 0
                for count, rgb in enumerate(iter_frames(video), start=1):
                    if count > video.num_frames:
                        raise DataError(f"{video.path}: more frames decoded than the {video.num_frames} counted")
                    array[offsets[index] + count - 1] = prepare_frame(rgb, height, width, channels)
                    bar.update()
                if count != video.num_frames:
                    raise DataError(f"{video.path}: decoded {count} frames, expected {video.num_frames}")
        array.flush()
        del array
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
