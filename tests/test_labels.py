"""Label parsers on the real benchmark label files, plus the failure modes of each format."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.io

from pseudovad.data.dataset import Video
from pseudovad.data.labels import (
    AVENUE_MASKS,
    choose_labels,
    load_label_file,
    match_labels,
    parse_avenue_masks,
    parse_ffp_mat,
    parse_flat_npy,
    parse_ucsd_m,
    parse_ucsd_mask_folder,
    read_ucsd_m_ranges,
    sniff_label_format,
    split_flat,
)
from pseudovad.data.layouts import load_dataset
from pseudovad.errors import DataError

# Frame counts of the 21 Avenue test clips, in clip order.
AVENUE_LENGTHS = [1439, 1211, 923, 947, 1007, 1283, 605, 36, 1175, 841, 472,
                  1271, 549, 507, 1001, 740, 426, 294, 248, 273, 76]


def fake_videos(lengths: list[int]) -> list[Video]:
    names = [f"{i:02d}" for i in range(1, len(lengths) + 1)]
    return [Video(name=name, path=Path("/videos") / name, num_frames=n) for name, n in zip(names, lengths)]


def save_vol_label(path: Path, masks: list[np.ndarray]) -> None:
    """Write an Avenue label file the way the official ones are stored: a 1xN cell of uint8 masks."""
    cell = np.empty((1, len(masks)), dtype=object)
    for i, mask in enumerate(masks):
        cell[0, i] = mask.astype(np.uint8)
    scipy.io.savemat(path, {"volLabel": cell})


@pytest.fixture(scope="module")
def ped2_test(shared_data: Path) -> list[Video]:
    return load_dataset(shared_data / "ped2", labels=shared_data / "ped2" / "ped2.mat").test


@pytest.fixture(scope="module")
def avenue_masks(shared_data: Path) -> list[np.ndarray]:
    return parse_avenue_masks(shared_data / "avenue_ground_truth" / "testing_label_mask")


def test_ped2_label_formats_agree_frame_for_frame(shared_data: Path, ped2_test: list[Video]) -> None:
    lengths = [v.num_frames for v in ped2_test]
    from_mat = parse_ffp_mat(shared_data / "ped2" / "ped2.mat", lengths)
    from_npy = split_flat(parse_flat_npy(shared_data / "ped2" / "frame_labels_ped2.npy"), lengths, Path("npy"))
    from_m = parse_ucsd_m(shared_data / "ucsd_ground_truth" / "UCSDped2" / "Test" / "UCSDped2.m", lengths)
    assert sum(int(x.sum()) for x in from_m) == 1648
    assert len(from_mat) == len(from_npy) == len(from_m) == 12  # Ped2's 12 test videos, none dropped
    for a, b, c in zip(from_mat, from_npy, from_m, strict=True):
        assert a.dtype == np.uint8
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)
    for i, clip in enumerate(("Test001_gt", "Test002_gt")):
        masks = parse_ucsd_mask_folder(shared_data / "ucsd_ground_truth" / "UCSDped2" / "Test" / clip)
        np.testing.assert_array_equal(masks, from_m[i])


def test_ucsd_ped1_m_multi_range_lines(shared_data: Path) -> None:
    path = shared_data / "ucsd_ground_truth" / "UCSDped1" / "Test" / "UCSDped1.m"
    labels = parse_ucsd_m(path, [200] * 36)
    assert len(labels) == 36 and all(len(lab) == 200 for lab in labels)
    assert sum(int(lab.sum()) for lab in labels) == 4045
    assert read_ucsd_m_ranges(path)[4] == [(5, 90), (140, 200)]


def test_avenue_official_masks(avenue_masks: list[np.ndarray]) -> None:
    assert [len(lab) for lab in avenue_masks] == AVENUE_LENGTHS
    assert sum(len(lab) for lab in avenue_masks) == 15324
    assert sum(int(lab.sum()) for lab in avenue_masks) == 3712


def test_avenue_npy_is_a_different_label_version(shared_data: Path, avenue_masks: list[np.ndarray]) -> None:
    flat = parse_flat_npy(shared_data / "avenue_ground_truth" / "frame_labels_avenue.npy")
    assert flat.shape == (15324,) and int(flat.sum()) == 3867
    pieces = split_flat(flat, AVENUE_LENGTHS, Path("npy"))
    assert sum(int((a != b).sum()) for a, b in zip(pieces, avenue_masks)) == 441


def test_shanghaitech_npy(shared_data: Path) -> None:
    flat = parse_flat_npy(shared_data / "shanghaitech_ground_truth" / "frame_labels_shanghai.npy")
    assert flat.shape == (40791,) and flat.dtype == np.uint8
    assert int(flat.sum()) == 17326


def test_avenue_masks_use_natural_order(tmp_path: Path) -> None:
    for clip in range(1, 12):  # clip i has i frames, so the order is visible in the lengths
        save_vol_label(tmp_path / f"{clip}_label.mat", [np.zeros((4, 6))] * clip)
    assert [len(lab) for lab in parse_avenue_masks(tmp_path)] == list(range(1, 12))
    assert sniff_label_format(tmp_path) == AVENUE_MASKS


def test_avenue_mask_any_pixel_marks_frame(tmp_path: Path) -> None:
    set_pixel = np.zeros((4, 6))
    set_pixel[3, 5] = 1
    save_vol_label(tmp_path / "1_label.mat", [np.zeros((4, 6)), set_pixel, np.zeros((4, 6))])
    np.testing.assert_array_equal(parse_avenue_masks(tmp_path)[0], [0, 1, 0])


def test_avenue_mask_gap_in_numbering(tmp_path: Path) -> None:
    for clip in (1, 3):
        save_vol_label(tmp_path / f"{clip}_label.mat", [np.zeros((4, 6))])
    with pytest.raises(DataError, match=r"numbered 1\.\.2"):
        parse_avenue_masks(tmp_path)


def test_ucsd_m_variants(tmp_path: Path) -> None:
    path = tmp_path / "gt.m"
    path.write_text(
        "TestVideoFile = {};\n"
        "% TestVideoFile{end+1}.gt_frame = [1:2];\n"
        "TestVideoFile{end+1}.gt_frame = [2:3, 5];\n"
        "TestVideoFile{end+1}.gt_frame = [];\n"
    )
    labels = parse_ucsd_m(path, [6, 4])
    np.testing.assert_array_equal(labels[0], [0, 1, 1, 0, 1, 0])
    np.testing.assert_array_equal(labels[1], [0, 0, 0, 0])


def test_ucsd_m_bad_line_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "gt.m"
    path.write_text("TestVideoFile{end+1}.gt_frame = [1:2];\nTestVideoFile{end+1}.gt_frame = [1:2:9];\n")
    with pytest.raises(DataError, match=r"gt\.m:2: cannot parse frame range '1:2:9'"):
        read_ucsd_m_ranges(path)


def test_range_past_video_end_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "x.mat"
    cell = np.empty((1, 1), dtype=object)
    cell[0, 0] = np.array([[3], [10]])
    scipy.io.savemat(path, {"gt": cell})
    with pytest.raises(DataError, match=r"x\.mat: range 3:10 for test video 01 ends past the video, which has 8"):
        load_label_file(path, fake_videos([8]))


def test_label_count_mismatch(tmp_path: Path) -> None:
    path = tmp_path / "labels.npy"
    np.save(path, np.zeros(10, dtype=np.uint8))
    with pytest.raises(DataError, match=r"labels\.npy: has 10 frame labels but the 2 test videos have 11 frames"):
        load_label_file(path, fake_videos([5, 6]))
    with pytest.raises(DataError, match=r"has labels for 1 videos but there are 2 test videos"):
        match_labels([np.zeros(5)], fake_videos([5, 6]), path)
    with pytest.raises(DataError, match=r"test video '02' cover 5 frames but the video .* has 6 frames"):
        match_labels([np.zeros(5), np.zeros(5)], fake_videos([5, 6]), path)


def test_non_binary_npy(tmp_path: Path) -> None:
    path = tmp_path / "scores.npy"
    np.save(path, np.array([0.0, 0.5, 1.0]))
    assert sniff_label_format(path) is None
    with pytest.raises(DataError, match=r"scores\.npy: expected 0/1 frame labels"):
        parse_flat_npy(path)


def test_unsupported_label_file(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    with pytest.raises(DataError, match=r"notes\.txt: not a supported label file"):
        load_label_file(path, fake_videos([3]))


def test_disagreeing_files_ask_for_labels_option(tmp_path: Path) -> None:
    np.save(tmp_path / "a.npy", np.array([0, 1, 1, 0]))
    np.save(tmp_path / "b.npy", np.array([0, 1, 0, 0]))
    message = r"(?s)disagree.*a\.npy.*b\.npy.*differs from a\.npy on 1 frame.*--labels FILE"
    with pytest.raises(DataError, match=message):
        choose_labels([tmp_path / "a.npy", tmp_path / "b.npy"], fake_videos([4]), tmp_path)


def test_agreeing_files_are_recorded(tmp_path: Path) -> None:
    np.save(tmp_path / "a.npy", np.array([0, 1, 1, 0]))
    np.save(tmp_path / "b.npy", np.array([[0, 1, 1, 0]]))
    np.save(tmp_path / "other.npy", np.array([0, 1]))
    chosen, notes = choose_labels(sorted(tmp_path.iterdir()), fake_videos([4]), tmp_path)
    assert chosen is not None and chosen.version == "a.npy (MNAD frame labels)"
    assert len(notes["agreeing_label_files"]) == 2
    assert list(notes["rejected_label_files"]) == [str(tmp_path / "other.npy")]
