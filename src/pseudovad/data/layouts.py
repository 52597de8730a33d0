"""Dataset layouts on disk: recognising them and listing their videos and labels.

Only file listings and frame counts are read here (no decoding), so loading a dataset is fast.
Labels are found by content, not by file name, because users rename dataset folders.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pseudovad.config.schema import LAYOUTS
from pseudovad.data.dataset import Video, VideoDataset
from pseudovad.data.decode import (
    VIDEO_EXTENSIONS,
    frame_folder_video,
    is_ignored,
    is_image,
    is_video_file,
    natural_sorted,
    video_file_video,
)
from pseudovad.data.labels import choose_labels, load_label_file
from pseudovad.errors import DataError


_EXPECTED = """Expected one of these structures:
  frames   ROOT/training/frames/<video>/<frame>.jpg and ROOT/testing/frames/<video>/<frame>.jpg
           (FFP/MNAD/ShanghaiTech; labels <name>.mat, frame_labels_<name>.npy or testing/test_frame_mask/)
  ucsd     ROOT/Train/<Clip>/*.tif and ROOT/Test/<Clip>/*.tif with Test/UCSDped2.m
           (ROOT = UCSDped1 or UCSDped2, or the folder holding one of them)
  avenue   ROOT/training_videos/NN.avi and ROOT/testing_videos/NN.avi with ROOT/testing_label_mask/
  footage  your own camera: ROOT/*.mp4|avi|mov|mkv... and/or ROOT/<video>/<frame>.jpg (normal videos to
           train on), or ROOT/train/ holding those and an optional ROOT/test/ of videos to evaluate on,
           labelled by ROOT/test_labels/<video>.npy (one 0/1 per frame) or one 0/1 .npy over all test frames
Or pass --layout to force one."""

_LABEL_SUFFIXES = (".mat", ".npy", ".m")
# The folders of a camera's footage (layout `footage`).
FOOTAGE_TRAIN, FOOTAGE_TEST, FOOTAGE_LABELS = "train", "test", "test_labels"
_UCSD_CLIP = re.compile(r"^Test\d+$", re.IGNORECASE)


@dataclass
class _Scan:
    """What a layout reader found, before labels are attached."""

    root: Path
    train: list[Video]
    test: list[Video]
    label_candidates: list[Path] = field(default_factory=list)
    ignored: list[Path] = field(default_factory=list)


def detect_layout(root: Path) -> str:
    """Name of the layout `root` follows, judged from its folder structure."""
    root = Path(root).expanduser()
    if not root.exists():
        raise DataError(f"Dataset path not found: {root}")
    if root.is_file():
        if is_video_file(root):
            return "footage"
        raise DataError(
            f"{root} is a file but not a video; point at a dataset folder or a video file.\n{_EXPECTED}"
        )
    if not any(root.iterdir()):
        raise DataError(f"{root} is an empty folder; point at a dataset folder.\n{_EXPECTED}")
    if (root / "testing" / "frames").is_dir() or (root / "training" / "frames").is_dir():
        return "frames"
    if _ucsd_dirs(root):
        return "ucsd"
    if (root / "testing_videos").is_dir():
        return "avenue"
    if (root / FOOTAGE_TRAIN).is_dir() or _looks_like_footage(root):
        return "footage"
    if any(is_image(entry) for entry in root.iterdir()):
        raise DataError(f"{root} holds images directly, as the frames of one video: a dataset holds each video's frames in "
                        f"a folder of its own; move them into {root / '<video>'}/ (e.g. {root / 'video01'}/)")
    raise DataError(f"{root} does not match any known dataset layout.\n{_EXPECTED}")


def load_dataset(root: Path, layout: str | None = None, labels: Path | None = None) -> VideoDataset:
    """Describe the dataset at `root`: its videos, frame counts and test labels.

    `layout` forces a layout instead of detecting it; `labels` names the label source to use
    instead of discovering one (needed when the dataset folder holds disagreeing label files).
    """
    root = Path(root).expanduser()
    if not root.exists():
        raise DataError(f"Dataset path not found: {root}")
    if layout is None:
        layout = detect_layout(root)
    elif layout not in LAYOUTS:
        raise DataError(f"Unknown layout {layout!r}; choose one of: {', '.join(LAYOUTS)}.")
    scan = _READERS[layout](root)

    extra: dict = {}
    if scan.ignored:
        extra["ignored_files"] = [str(p) for p in scan.ignored]
    if labels is not None:
        chosen = load_label_file(Path(labels).expanduser(), scan.test)
    else:
        chosen, notes = choose_labels(scan.label_candidates, scan.test, scan.root)
        extra.update(notes)
    return VideoDataset(
        root=scan.root,
        layout=layout,
        train=scan.train,
        test=scan.test,
        test_labels=chosen.per_video if chosen else None,
        label_version=chosen.version if chosen else None,
        label_file=chosen.path if chosen else None,
        extra=extra,
    )


def _scan_folder(
    folder: Path,
    *,
    video_files: bool,
    frame_folders: bool,
    skip: Callable[[Path], bool] = lambda p: False,
) -> tuple[list[Video], list[Path]]:
    """Videos directly inside `folder` (video files and/or frame folders) and the files ignored."""
    if not folder.is_dir():
        raise DataError(f"Folder not found: {folder}")
    videos, ignored = [], []
    for entry in natural_sorted(folder.iterdir()):
        if is_ignored(entry) or skip(entry):
            continue
        if entry.is_dir() and frame_folders:
            videos.append(frame_folder_video(entry))
        elif entry.is_file() and video_files and is_video_file(entry):
            videos.append(video_file_video(entry))
        else:
            ignored.append(entry)
    if not videos:
        kinds = " or ".join(
            kind for kind, on in (("frame folders", frame_folders), ("video files", video_files)) if on
        )
        raise DataError(f"{folder} contains no videos (expected {kinds}).")
    _check_unique_names(videos, folder)
    return videos, ignored


def _check_unique_names(videos: list[Video], folder: Path) -> None:
    """Labels and caches are keyed by video name, so two videos may not share one."""
    seen: dict[str, Path] = {}
    for video in videos:
        if video.name in seen:
            raise DataError(
                f"{folder}: two videos are both named '{video.name}' "
                f"({seen[video.name].name}, {video.path.name}); rename one."
            )
        seen[video.name] = video.path


def _root_label_files(folder: Path) -> list[Path]:
    return [
        p
        for p in natural_sorted(folder.iterdir())
        if p.is_file() and not is_ignored(p) and p.suffix.lower() in _LABEL_SUFFIXES
    ]


def _read_frames(root: Path) -> _Scan:
    test_dir = root / "testing" / "frames"
    if not test_dir.is_dir() and not (root / "training" / "frames").is_dir():
        raise DataError(f"{root}: no testing/frames or training/frames folder, so this is not the frames layout.\n{_EXPECTED}")
    test, ignored = _scan_folder(test_dir, video_files=False, frame_folders=True) if test_dir.is_dir() else ([], [])
    train: list[Video] = []
    if (root / "training" / "frames").is_dir():
        train, more = _scan_folder(root / "training" / "frames", video_files=False, frame_folders=True)
        ignored += more
    elif (root / "training" / "videos").is_dir():
        train, more = _scan_folder(root / "training" / "videos", video_files=True, frame_folders=False)
        ignored += more
    candidates = _root_label_files(root)
    for folder in (root / "testing" / "test_frame_mask", root / "testing_label_mask"):
        if folder.is_dir():
            candidates.append(folder)
    return _Scan(root, train, test, candidates, ignored)


def _is_ucsd_dataset(folder: Path) -> bool:
    test = folder / "Test"
    return test.is_dir() and any(p.is_dir() and _UCSD_CLIP.match(p.name) for p in test.iterdir())


def _ucsd_dirs(root: Path) -> list[Path]:
    """UCSD dataset folders at `root`: root itself, or the UCSDpedN folders inside it."""
    if _is_ucsd_dataset(root):
        return [root]
    children = natural_sorted(root.iterdir())
    return [p for p in children if p.is_dir() and not is_ignored(p) and _is_ucsd_dataset(p)]


def _is_gt_folder(path: Path) -> bool:
    return path.is_dir() and path.name.lower().endswith("_gt")


def _read_ucsd(root: Path) -> _Scan:
    found = _ucsd_dirs(root)
    if not found:
        raise DataError(f"{root}: no Test/TestNNN clip folders, so this is not the UCSD layout.\n{_EXPECTED}")
    if len(found) > 1:
        names = ", ".join(str(p) for p in found)
        raise DataError(f"{root} holds several UCSD datasets ({names}); point at one of them.")
    folder = found[0]
    test_dir = folder / "Test"

    def skip_labels(path: Path) -> bool:
        return _is_gt_folder(path) or (path.is_file() and path.suffix.lower() == ".m")

    test, ignored = _scan_folder(test_dir, video_files=False, frame_folders=True, skip=skip_labels)
    train: list[Video] = []
    if (folder / "Train").is_dir():
        train, more = _scan_folder(folder / "Train", video_files=False, frame_folders=True)
        ignored += more
    candidates = _root_label_files(test_dir) + _root_label_files(folder)
    if all((test_dir / f"{v.name}_gt").is_dir() for v in test):
        candidates.append(test_dir)
    return _Scan(folder, train, test, candidates, ignored)


def _read_avenue(root: Path) -> _Scan:
    test_dir = root / "testing_videos"
    if not test_dir.is_dir():
        raise DataError(f"{root}: no testing_videos folder, so this is not the Avenue layout.\n{_EXPECTED}")
    test, ignored = _scan_folder(test_dir, video_files=True, frame_folders=True)
    train: list[Video] = []
    if (root / "training_videos").is_dir():
        train, more = _scan_folder(root / "training_videos", video_files=True, frame_folders=True)
        ignored += more
    candidates = _root_label_files(root)
    # The official download ships the masks inside ground_truth_demo/; users often move them up.
    for folder in (root / "testing_label_mask", root / "ground_truth_demo" / "testing_label_mask"):
        if folder.is_dir():
            candidates.append(folder)
    return _Scan(root, train, test, candidates, ignored)


def _looks_like_footage(root: Path) -> bool:
    for entry in root.iterdir():
        if is_ignored(entry):
            continue
        if entry.is_file() and is_video_file(entry):
            return True
        if entry.is_dir() and any(is_image(p) and not is_ignored(p) for p in entry.iterdir()):
            return True
    return False


def list_videos(folder: Path) -> tuple[list[Video], list[Path]]:
    """The videos directly inside a folder of your own (video files and frame folders) and the files ignored."""
    return _scan_folder(folder, video_files=True, frame_folders=True)


def _read_footage(root: Path) -> _Scan:
    """Your own camera's videos: all normal (training) videos, or train/ and an optional labelled test/.
    A single video file is a test video: the one thing to do with it alone is score it."""
    if root.is_file():
        if not is_video_file(root):
            raise DataError(f"{root} is not a video file (supported: {', '.join(VIDEO_EXTENSIONS)}).")
        return _Scan(root, [], [video_file_video(root)])
    if not (root / FOOTAGE_TRAIN).is_dir():
        train, ignored = list_videos(root)
        return _Scan(root, train, [], [], ignored)
    train, ignored = list_videos(root / FOOTAGE_TRAIN)
    test: list[Video] = []
    if (root / FOOTAGE_TEST).is_dir():
        test, more = list_videos(root / FOOTAGE_TEST)
        ignored += more
    candidates = _root_label_files(root) + ([root / FOOTAGE_LABELS] if (root / FOOTAGE_LABELS).is_dir() else [])
    return _Scan(root, train, test, candidates, ignored)


_READERS: dict[str, Callable[[Path], _Scan]] = {
    "frames": _read_frames,
    "ucsd": _read_ucsd,
    "avenue": _read_avenue,
    "footage": _read_footage,
}
