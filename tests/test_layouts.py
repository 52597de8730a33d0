"""Layout detection and loading: real Ped2, and small UCSD/Avenue/ShanghaiTech/footage folders built here."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import scipy.io

from pseudovad.data.decode import iter_frames
from pseudovad.data.layouts import detect_layout, load_dataset
from pseudovad.errors import DataError

from media import truncate, write_frames, write_video

SIZE = (12, 16)  # height, width of the frames media.write_frames makes by default


def save_gt_mat(path: Path, ranges: list[list[tuple[int, int]]]) -> None:
    """An FFP label file: 'gt' is a 1xN cell of 2xK [start; end] arrays."""
    cell = np.empty((1, len(ranges)), dtype=object)
    for i, video_ranges in enumerate(ranges):
        cell[0, i] = np.array(video_ranges, dtype=np.uint8).reshape(-1, 2).T
    scipy.io.savemat(path, {"gt": cell})


def save_vol_label(path: Path, frame_labels: list[int]) -> None:
    """An official-format Avenue label file: 1xN cell of uint8 masks, a pixel set where anomalous."""
    cell = np.empty((1, len(frame_labels)), dtype=object)
    for i, value in enumerate(frame_labels):
        mask = np.zeros((32, 48), dtype=np.uint8)
        mask[10:14, 20:30] = value
        cell[0, i] = mask
    path.parent.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(path, {"volLabel": cell})


def make_frames_dataset(root: Path, train: list[int], test: list[int]) -> Path:
    for i, n in enumerate(train, start=1):
        write_frames(root / "training" / "frames" / f"{i:02d}", n)
    for i, n in enumerate(test, start=1):
        write_frames(root / "testing" / "frames" / f"{i:02d}", n)
    return root


# --- real Ped2 -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ped2(shared_data: Path) -> Path:
    return shared_data / "ped2"


def check_ped2(dataset) -> None:
    summary = dataset.summary()
    assert summary["layout"] == "frames"
    assert summary["train"] == {"videos": 16, "frames": 2550}
    assert summary["test"]["videos"] == 12 and summary["test"]["frames"] == 2010
    assert summary["test"]["anomalous"] == 1648
    assert [v.name for v in dataset.test] == [f"{i:02d}" for i in range(1, 13)]
    assert all(len(lab) == v.num_frames for lab, v in zip(dataset.test_labels, dataset.test))


def test_ped2_auto_discovers_agreeing_labels(ped2: Path) -> None:
    assert detect_layout(ped2) == "frames"
    dataset = load_dataset(ped2)
    check_ped2(dataset)
    assert dataset.label_version == "ped2.mat (FFP gt ranges)"
    agreeing = sorted(Path(p).name for p in dataset.extra["agreeing_label_files"])
    assert agreeing == ["frame_labels_ped2.npy", "ped2.mat"]


@pytest.mark.parametrize(
    ("name", "version"),
    [
        ("ped2.mat", "ped2.mat (FFP gt ranges)"),
        ("frame_labels_ped2.npy", "frame_labels_ped2.npy (MNAD frame labels)"),
    ],
)
def test_ped2_explicit_labels(ped2: Path, name: str, version: str) -> None:
    dataset = load_dataset(ped2, labels=ped2 / name)
    check_ped2(dataset)
    assert dataset.label_version == version and dataset.label_file == ped2 / name


# --- frames layout -----------------------------------------------------------------------------


def test_frames_layout_natural_order_and_renamed_label_file(tmp_path: Path) -> None:
    root = tmp_path / "my_dataset"
    for name, n in (("10", 3), ("2", 4), ("1", 5)):
        write_frames(root / "testing" / "frames" / name, n)
    write_frames(root / "training" / "frames" / "a", 2)
    (root / "testing" / "frames" / "1" / ".hidden.jpg").write_bytes(b"junk")
    save_gt_mat(root / "whatever.mat", [[(1, 2)], [], [(2, 3)]])
    dataset = load_dataset(root)
    assert [v.name for v in dataset.test] == ["1", "2", "10"]
    assert [v.num_frames for v in dataset.test] == [5, 4, 3]
    np.testing.assert_array_equal(dataset.test_labels[0], [1, 1, 0, 0, 0])
    np.testing.assert_array_equal(dataset.test_labels[2], [0, 1, 1])
    assert dataset.label_version == "whatever.mat (FFP gt ranges)"


def test_frames_layout_without_labels(tmp_path: Path) -> None:
    dataset = load_dataset(make_frames_dataset(tmp_path, [3], [3]))
    assert dataset.test_labels is None and dataset.label_version is None


def test_shanghaitech_test_frame_mask(tmp_path: Path) -> None:
    root = tmp_path / "shanghai"
    for name, n in (("01_0014", 4), ("01_0015", 3)):
        write_frames(root / "testing" / "frames" / name, n)
    write_frames(root / "training" / "frames" / "01_001", 2)
    masks = root / "testing" / "test_frame_mask"
    masks.mkdir()
    np.save(masks / "01_0014.npy", np.array([0, 1, 1, 0], dtype=np.uint8))
    np.save(masks / "01_0015.npy", np.array([1, 0, 0], dtype=np.uint8))
    np.save(root / "frame_labels_shanghai.npy", np.array([0, 1, 1, 0, 1, 0, 0], dtype=np.uint8))
    dataset = load_dataset(root)
    assert dataset.layout == "frames"
    assert dataset.label_version == "test_frame_mask (per-video .npy frame masks)"
    assert dataset.num_anomalous == 3 and len(dataset.extra["agreeing_label_files"]) == 2

    np.save(masks / "01_0015.npy", np.array([1, 0], dtype=np.uint8))
    message = r"test_frame_mask: labels for test video '01_0015' cover 2 frames but the video .* has 3"
    with pytest.raises(DataError, match=message):
        load_dataset(root, labels=masks)


def test_label_count_mismatch_names_file(tmp_path: Path) -> None:
    root = make_frames_dataset(tmp_path / "d", [3], [3, 3])
    save_gt_mat(root / "d.mat", [[(1, 2)], [(1, 1)], [(2, 3)]])
    with pytest.raises(DataError, match=r"d\.mat: has labels for 3 videos but there are 2 test videos"):
        load_dataset(root, labels=root / "d.mat")
    message = r"(?s)none matches the test videos.*d\.mat: has labels for 3 videos.*--labels"
    with pytest.raises(DataError, match=message):
        load_dataset(root)


def test_disagreeing_label_files_ask_for_labels(tmp_path: Path) -> None:
    root = make_frames_dataset(tmp_path / "d", [3], [3, 3])
    save_gt_mat(root / "d.mat", [[(1, 2)], [(2, 3)]])
    np.save(root / "frame_labels_d.npy", np.array([[1, 1, 0, 0, 1, 0]]))
    with pytest.raises(DataError, match=r"(?s)disagree.*d\.mat.*frame_labels_d\.npy.*--labels FILE"):
        load_dataset(root)
    assert load_dataset(root, labels=root / "frame_labels_d.npy").num_anomalous == 3


def test_non_image_file_in_video_folder(tmp_path: Path) -> None:
    root = make_frames_dataset(tmp_path / "d", [3], [3])
    (root / "testing" / "frames" / "01" / "Thumbs.db").write_bytes(b"x")
    assert load_dataset(root).test[0].num_frames == 3
    (root / "testing" / "frames" / "01" / "labels.csv").write_text("x")
    with pytest.raises(DataError, match=r"non-image file .*01[/\\]labels\.csv"):
        load_dataset(root)


def test_empty_video_folder(tmp_path: Path) -> None:
    root = make_frames_dataset(tmp_path / "d", [3], [3])
    (root / "testing" / "frames" / "02").mkdir()
    with pytest.raises(DataError, match=r"Frame folder .*02 contains no images"):
        load_dataset(root)


# --- UCSD original layout -----------------------------------------------------------------------


def make_ucsd(parent: Path, name: str = "UCSDped2") -> Path:
    folder = parent / name
    for i in (1, 2):
        write_frames(folder / "Train" / f"Train{i:03d}", 4, ".tif", first=1)
    write_frames(folder / "Test" / "Test001", 6, ".tif", first=1)
    write_frames(folder / "Test" / "Test002", 5, ".tif", first=1)
    (folder / "Test" / f"{name}.m").write_text(
        "TestVideoFile = {};\n"
        "TestVideoFile{end+1}.gt_frame = [2:3, 5:6];\n"
        "TestVideoFile{end+1}.gt_frame = [1:2];\n"
    )
    return folder


def write_masks(folder: Path, labels: list[int]) -> None:
    folder.mkdir(parents=True)
    for i, value in enumerate(labels, start=1):
        mask = np.zeros(SIZE, dtype=np.uint8)
        mask[2, 3] = 255 * value
        cv2.imwrite(str(folder / f"{i:03d}.bmp"), mask)


@pytest.mark.parametrize("at_parent", [True, False])
def test_ucsd_layout(tmp_path: Path, at_parent: bool) -> None:
    folder = make_ucsd(tmp_path)
    write_masks(folder / "Test" / "Test001_gt", [0, 1, 1, 0, 1, 1])
    root = tmp_path if at_parent else folder
    assert detect_layout(root) == "ucsd"
    dataset = load_dataset(root)
    assert dataset.root == folder
    assert [v.name for v in dataset.train] == ["Train001", "Train002"]
    assert [v.name for v in dataset.test] == ["Test001", "Test002"]
    assert dataset.label_version == "UCSDped2.m (UCSD official gt_frame ranges)"
    np.testing.assert_array_equal(dataset.test_labels[0], [0, 1, 1, 0, 1, 1])
    np.testing.assert_array_equal(dataset.test_labels[1], [1, 1, 0, 0, 0])


def test_ucsd_pixel_masks_checked_against_m_file(tmp_path: Path) -> None:
    folder = make_ucsd(tmp_path)
    write_masks(folder / "Test" / "Test001_gt", [0, 1, 1, 0, 1, 1])
    write_masks(folder / "Test" / "Test002_gt", [1, 1, 0, 0, 0])
    dataset = load_dataset(folder)
    assert dataset.num_anomalous == 6 and len(dataset.extra["agreeing_label_files"]) == 2
    (folder / "Test" / "UCSDped2.m").unlink()
    assert load_dataset(folder).label_version == "Test/*_gt (UCSD official pixel masks)"


def test_ucsd_parent_with_two_datasets(tmp_path: Path) -> None:
    make_ucsd(tmp_path, "UCSDped1")
    make_ucsd(tmp_path, "UCSDped2")
    with pytest.raises(DataError, match=r"(?s)several UCSD datasets.*UCSDped1.*UCSDped2.*point at one"):
        load_dataset(tmp_path)


# --- CUHK Avenue original layout ----------------------------------------------------------------

AVENUE_LABELS = [[0, 1, 1, 0], [1, 1, 1], [0, 0, 0, 0, 1]]


@pytest.fixture
def avenue(tmp_path: Path) -> Path:
    root = tmp_path / "avenue"
    for i in (1, 2):
        write_video(root / "training_videos" / f"{i:02d}.avi", 3)
    for i, labels in enumerate(AVENUE_LABELS, start=1):
        write_video(root / "testing_videos" / f"{i:02d}.avi", len(labels))
        save_vol_label(root / "testing_label_mask" / f"{i}_label.mat", labels)
    return root


def test_avenue_layout_official_masks(avenue: Path) -> None:
    assert detect_layout(avenue) == "avenue"
    dataset = load_dataset(avenue)
    assert [v.name for v in dataset.test] == ["01", "02", "03"] and len(dataset.train) == 2
    assert [v.num_frames for v in dataset.test] == [4, 3, 5]
    for got, want in zip(dataset.test_labels, AVENUE_LABELS):
        np.testing.assert_array_equal(got, want)
    assert dataset.label_version == "testing_label_mask (avenue official pixel masks (volLabel))"


def test_avenue_disagreeing_npy(avenue: Path) -> None:
    flat = np.concatenate([np.array(lab) for lab in AVENUE_LABELS])
    flat[0] = 1
    np.save(avenue / "frame_labels_avenue.npy", flat[None, :].astype(np.int8))
    with pytest.raises(DataError, match=r"(?s)disagree.*volLabel.*MNAD.*on 1 frame.*--labels FILE"):
        load_dataset(avenue)
    dataset = load_dataset(avenue, labels=avenue / "frame_labels_avenue.npy")
    assert dataset.label_version == "frame_labels_avenue.npy (MNAD frame labels)"
    assert dataset.num_anomalous == 7


def test_avenue_mask_length_mismatch(avenue: Path) -> None:
    save_vol_label(avenue / "testing_label_mask" / "2_label.mat", [1, 1])
    message = r"testing_label_mask: labels for test video '02' cover 2 frames but the video .*02\.avi\) has 3"
    with pytest.raises(DataError, match=message):
        load_dataset(avenue, labels=avenue / "testing_label_mask")


# --- user footage and errors --------------------------------------------------------------------


def test_footage_folder(tmp_path: Path) -> None:
    write_video(tmp_path / "cam10.avi", 3)
    write_video(tmp_path / "cam2.avi", 4)
    write_frames(tmp_path / "cam3", 2, ".png")
    (tmp_path / "README.txt").write_text("my videos")
    assert detect_layout(tmp_path) == "footage"
    dataset = load_dataset(tmp_path)
    assert dataset.test == [] and dataset.test_labels is None  # a folder of only videos: normal ones to train on
    assert [(v.name, v.num_frames) for v in dataset.train] == [("cam2", 4), ("cam3", 2), ("cam10", 3)]
    assert dataset.extra["ignored_files"] == [str(tmp_path / "README.txt")]
    single = load_dataset(tmp_path / "cam2.avi")
    assert single.layout == "footage" and [v.name for v in single.test] == ["cam2"]


def test_footage_with_train_and_a_labelled_test_folder(tmp_path: Path) -> None:
    """A camera's train/ (normal videos) and test/ with one 0/1 mask per test video in test_labels/."""
    write_video(tmp_path / "train" / "monday.avi", 6)
    write_frames(tmp_path / "train" / "tuesday", 5)
    write_video(tmp_path / "test" / "break_in.avi", 4)
    (tmp_path / "test_labels").mkdir()
    np.save(tmp_path / "test_labels" / "break_in.npy", np.array([0, 1, 1, 0], dtype=np.uint8))
    assert detect_layout(tmp_path) == "footage"
    dataset = load_dataset(tmp_path)
    assert [v.name for v in dataset.train] == ["monday", "tuesday"] and [v.name for v in dataset.test] == ["break_in"]
    assert dataset.test_labels[0].tolist() == [0, 1, 1, 0] and dataset.label_file == tmp_path / "test_labels"
    (tmp_path / "test_labels" / "break_in.npy").unlink()
    shutil.rmtree(tmp_path / "test")
    alone = load_dataset(tmp_path)
    assert [v.name for v in alone.train] == ["monday", "tuesday"] and alone.test == [] and alone.test_labels is None


def test_frames_layout_with_only_training_videos(tmp_path: Path) -> None:
    write_frames(tmp_path / "training" / "frames" / "01", 6)
    assert detect_layout(tmp_path) == "frames"
    dataset = load_dataset(tmp_path)
    assert [v.name for v in dataset.train] == ["01"] and dataset.test == []


def test_footage_duplicate_names(tmp_path: Path) -> None:
    write_video(tmp_path / "cam.avi", 3)
    write_frames(tmp_path / "cam", 2)
    with pytest.raises(DataError, match=r"two videos are both named 'cam'"):
        load_dataset(tmp_path)


def test_no_layout_matches(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "notes.txt").write_text("x")
    message = r"(?s)does not match any known dataset layout.*frames.*ucsd.*avenue.*footage"
    with pytest.raises(DataError, match=message) as info:
        detect_layout(tmp_path)
    assert str(tmp_path) in str(info.value)


def test_missing_root_and_bad_layout(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"Dataset path not found: .*nowhere"):
        load_dataset(tmp_path / "nowhere")
    with pytest.raises(DataError, match=r"Unknown layout 'shanghai'"):
        load_dataset(tmp_path, layout="shanghai")
    write_video(tmp_path / "a.avi", 2)
    with pytest.raises(DataError, match=r"no testing/frames or training/frames folder"):
        load_dataset(tmp_path, layout="frames")


def test_truncated_video_counted_but_caught_on_decode(tmp_path: Path) -> None:
    write_video(tmp_path / "cam.avi", 10)
    truncate(tmp_path / "cam.avi")
    (video,) = load_dataset(tmp_path).train
    with pytest.raises(DataError, match=r"cam\.avi is truncated"):
        list(iter_frames(video))
