"""Decoded, resized frames cached as one uint8 memory-mapped array per split.

Decoding JPEGs (or video) at every training step makes a 2-core machine data-bound; decoding once
and memory-mapping the result makes training compute-bound. The cache key covers every source file
(path, size and modification time in nanoseconds: each frame image of a frame folder, not only the
folder, whose time does not change when a frame is rewritten in place) and the target size, so a
changed frame, dataset or size rebuilds it. A cache file that cannot be read whole (a full disk, a
copy cut short) is rebuilt, with a note.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from pseudovad.data.dataset import Video
from pseudovad.data.decode import iter_frames
from pseudovad.errors import DataError

CACHE_FORMAT = 2


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
    """A digest of what the cached frames depend on: the size asked for, and the source files (_add_sources)."""
    digest = hashlib.sha1(json.dumps({"format": CACHE_FORMAT, "size": [height, width, channels]}).encode())
    return _add_sources(digest, videos).hexdigest()[:20]


def sources_fingerprint(videos: list[Video]) -> str:
    """A digest that changes when any of the videos' files is replaced, resized or touched, for
    anything made from them that must not outlive them (the frame cache, a pseudo-validation set)."""
    return _add_sources(hashlib.sha1(), videos).hexdigest()[:20]


def _add_sources(digest: hashlib._Hash, videos: list[Video]) -> hashlib._Hash:
    """`digest` updated with each video's path and frame count and each source file's name, size and mtime_ns."""
    for video in videos:
        digest.update(f"{video.path.resolve()}\0{video.num_frames}\n".encode())
        for source in video.frames or (video.path,):
            stat = source.stat()
            digest.update(f"{source.name}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest


def _open_cached(path: Path, shape: tuple[int, ...]) -> np.ndarray | None:
    """The cached array, or None (with a note on stderr) if the file is cut short or of another shape."""
    try:
        array = np.load(path, mmap_mode="r")
    except (ValueError, OSError, EOFError) as error:
        reason = str(error)
    else:
        if array.shape == shape and array.dtype == np.uint8:
            return array
        reason = f"shape {array.shape}, expected {shape}"
    print(f"note: frame cache {path} is unreadable ({reason}); rebuilding it", file=sys.stderr)
    return None


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
    shape = (int(offsets[-1]), height, width, channels)
    array = _open_cached(array_path, shape) if array_path.exists() else None
    if array is None:
        _build(videos, offsets, array_path, height, width, channels, description)
        array = np.load(array_path, mmap_mode="r")
    return FrameArray(array, offsets, videos)


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
