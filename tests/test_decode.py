"""Decoding frames: RGB conversion, and a DataError naming the file for every kind of bad input."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from pseudovad.data.dataset import Video
from pseudovad.data.decode import (
    count_video_frames,
    frame_folder_video,
    iter_frames,
    list_frames,
    natural_sorted,
    video_file_video,
)
from pseudovad.errors import DataError

from media import truncate, write_video


def test_natural_order() -> None:
    names = [Path(n) for n in ("10.jpg", "2.jpg", "1.jpg", "img_10.png", "img_9.png")]
    assert [p.name for p in natural_sorted(names)] == ["1.jpg", "2.jpg", "10.jpg", "img_9.png", "img_10.png"]


def test_gray_tif_bmp_and_color_become_rgb(tmp_path: Path) -> None:
    gray = np.arange(6 * 8, dtype=np.uint8).reshape(6, 8)
    cv2.imwrite(str(tmp_path / "1.tif"), gray)
    cv2.imwrite(str(tmp_path / "2.bmp"), gray)
    red_bgr = np.zeros((6, 8, 3), dtype=np.uint8)
    red_bgr[..., 2] = 255
    cv2.imwrite(str(tmp_path / "10.png"), red_bgr)
    video = frame_folder_video(tmp_path)
    assert [p.name for p in video.frames] == ["1.tif", "2.bmp", "10.png"]
    frames = list(iter_frames(video))
    assert all(f.shape == (6, 8, 3) and f.dtype == np.uint8 for f in frames)
    np.testing.assert_array_equal(frames[0][..., 0], gray)
    np.testing.assert_array_equal(frames[0][..., 1], gray)
    assert tuple(frames[2][0, 0]) == (255, 0, 0)


def test_corrupt_jpeg_names_the_file(tmp_path: Path) -> None:
    cv2.imwrite(str(tmp_path / "000.jpg"), np.zeros((6, 8, 3), dtype=np.uint8))
    (tmp_path / "001.jpg").write_bytes(b"this is not a jpeg" * 10)
    frames = iter_frames(frame_folder_video(tmp_path))
    next(frames)
    with pytest.raises(DataError, match=r"Cannot decode image .*001\.jpg"):
        next(frames)


def test_frame_size_change_names_file_and_sizes(tmp_path: Path) -> None:
    cv2.imwrite(str(tmp_path / "0.png"), np.zeros((6, 8), dtype=np.uint8))
    cv2.imwrite(str(tmp_path / "1.png"), np.zeros((6, 10), dtype=np.uint8))
    with pytest.raises(DataError, match=r"1\.png is 10x6 but the video's first frame is 8x6"):
        list(iter_frames(frame_folder_video(tmp_path)))


def test_frame_folder_contents(tmp_path: Path) -> None:
    cv2.imwrite(str(tmp_path / "0.png"), np.zeros((6, 8), dtype=np.uint8))
    (tmp_path / ".DS_Store").write_bytes(b"x")
    (tmp_path / "Thumbs.db").write_bytes(b"x")
    assert [p.name for p in list_frames(tmp_path)] == ["0.png"]
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(DataError, match=r"non-image file .*notes\.txt"):
        list_frames(tmp_path)


def test_empty_or_missing_frame_folder(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"contains no images"):
        list_frames(tmp_path)
    with pytest.raises(DataError, match=r"not found: .*missing"):
        list_frames(tmp_path / "missing")


def test_video_file_decodes_in_order(tmp_path: Path) -> None:
    path = tmp_path / "clip.avi"
    write_video(path, 5)
    video = video_file_video(path)
    assert video.name == "clip" and video.num_frames == 5 and not video.is_frame_folder
    frames = list(iter_frames(video))
    assert len(frames) == 5 and frames[0].shape == (32, 48, 3) and frames[0].dtype == np.uint8
    levels = [f.mean() for f in frames]
    np.testing.assert_allclose(levels, [0, 20, 40, 60, 80], atol=3)  # each frame once, in order


def test_a_colour_video_decodes_to_rgb(tmp_path: Path) -> None:
    """OpenCV decodes BGR; the frames come out RGB, as frame folders do (pure red stays red)."""
    path = tmp_path / "red.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25, (48, 32))
    for _ in range(3):
        writer.write(np.full((32, 48, 3), (0, 0, 255), dtype=np.uint8))  # BGR red
    writer.release()
    frame = next(iter(iter_frames(video_file_video(path))))
    assert frame[..., 0].mean() > 200 and frame[..., 2].mean() < 50


def test_truncated_video_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "cut.avi"
    write_video(path, 10)
    truncate(path)
    video = video_file_video(path)
    assert video.num_frames == 10  # the header still promises all frames
    with pytest.raises(DataError, match=r"cut\.avi is truncated or corrupt: its header reports 10 frames but only \d"):
        list(iter_frames(video))


def test_frame_count_must_match_exactly(tmp_path: Path) -> None:
    path = tmp_path / "clip.avi"
    write_video(path, 4)
    with pytest.raises(DataError, match=r"header reports 6 frames but only 4"):
        list(iter_frames(Video(name="clip", path=path, num_frames=6)))
    with pytest.raises(DataError, match=r"more frames than the 3"):
        list(iter_frames(Video(name="clip", path=path, num_frames=3)))


def test_empty_and_zero_frame_videos(tmp_path: Path) -> None:
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(DataError, match=r"empty\.mp4 is empty \(0 bytes\)"):
        count_video_frames(tmp_path / "empty.mp4")
    write_video(tmp_path / "zero.avi", 0)
    with pytest.raises(DataError, match=r"zero\.avi reports 0 frames"):
        count_video_frames(tmp_path / "zero.avi")
    (tmp_path / "junk.avi").write_bytes(b"x" * 100)
    with pytest.raises(DataError, match=r"Cannot open video file .*junk\.avi"):
        count_video_frames(tmp_path / "junk.avi")
    with pytest.raises(DataError, match=r"not found: .*gone\.avi"):
        count_video_frames(tmp_path / "gone.avi")


def test_frames_numbered_with_other_scripts_sort_and_superscripts_do_not_crash() -> None:
    names = [Path(n) for n in ("٣.jpg", "١٠.jpg", "٢.jpg", "²a.jpg", "²")]
    assert [p.name for p in natural_sorted(names)][:3] == ["٢.jpg", "٣.jpg", "١٠.jpg"]


class _ClosedCapture:
    """A cv2.VideoCapture that could not open its file, as OpenCV's own FFmpeg build does with a
    codec it lacks (this one, MJPEG, it has; PyAV's FFmpeg then still finds the stream)."""

    def __init__(self, *_: object) -> None:
        pass

    def isOpened(self) -> bool:  # noqa: N802 (OpenCV's name)
        return False

    def release(self) -> None:
        pass


def test_a_codec_opencv_cannot_decode_is_named_with_a_re_encode_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "lobby.avi"
    write_video(path, 3)
    monkeypatch.setattr(cv2, "VideoCapture", _ClosedCapture)
    with pytest.raises(DataError) as error:
        count_video_frames(path)
    assert str(error.value) == (
        f"Cannot open video file {path}: its video codec 'mjpeg' cannot be decoded here; re-encode it, "
        "e.g. ffmpeg -i lobby.avi -c:v libx264 -pix_fmt yuv420p out.mp4"
    )
