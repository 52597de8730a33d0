"""The frame cache: keyed on the content it depends on, rebuilt when that changes or the file is damaged."""

import os
from pathlib import Path

import cv2
import numpy as np

from media import write_frames
from pseudovad.data import cache
from pseudovad.data.cache import load_frames
from pseudovad.data.decode import frame_folder_video


def load(folder: Path, cache: Path) -> np.ndarray:
    return np.array(load_frames([frame_folder_video(folder)], 8, 8, 1, cache).frames)


def test_a_frame_rewritten_in_place_is_noticed(tmp_path: Path) -> None:
    """Same name, same size, folder untouched: only the file's own mtime_ns (and content) changes."""
    folder = tmp_path / "video"
    write_frames(folder, 3, ext=".bmp", size=(8, 8))
    first = load(folder, tmp_path / "cache")
    folder_times = os.stat(folder)
    frame = folder / "001.bmp"
    stat = frame.stat()
    cv2.imwrite(str(frame), np.full((8, 8), 200, dtype=np.uint8))
    assert frame.stat().st_size == stat.st_size
    os.utime(frame, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1000))
    os.utime(folder, ns=(folder_times.st_atime_ns, folder_times.st_mtime_ns))
    second = load(folder, tmp_path / "cache")
    assert first[1].max() == 10 and second[1].min() == 200
    assert np.array_equal(first[[0, 2]], second[[0, 2]])


def test_a_truncated_cache_file_is_rebuilt_with_a_note(tmp_path: Path, capsys) -> None:
    folder = tmp_path / "video"
    write_frames(folder, 3, ext=".bmp", size=(8, 8))
    expected = load(folder, tmp_path / "cache")
    (cached,) = (tmp_path / "cache").glob("*.npy")
    cached.write_bytes(cached.read_bytes()[:100])
    assert np.array_equal(load(folder, tmp_path / "cache"), expected)
    assert f"note: frame cache {cached} is unreadable" in capsys.readouterr().err


def test_a_valid_cache_is_used_without_decoding_again(tmp_path: Path, monkeypatch, capsys) -> None:
    """The second load reads the cached array: no frame is decoded and nothing is said."""
    folder = tmp_path / "video"
    write_frames(folder, 3, ext=".bmp", size=(8, 8))
    first = load(folder, tmp_path / "cache")
    capsys.readouterr()

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded again although the cache is valid")

    monkeypatch.setattr(cache, "iter_frames", no_decoding)
    assert np.array_equal(load(folder, tmp_path / "cache"), first)
    assert capsys.readouterr().err == ""
