"""Frame-level label files in the formats the benchmarks ship, and matching them to test videos.

Each `parse_*` function reads one format into 0/1 uint8 arrays (1 = anomalous). Range formats
(FFP .mat, UCSD .m) do not store clip lengths, so they take the per-video frame counts. Matching
never shifts or truncates: a label length that differs from a video's frame count is an error,
because an off-by-one there silently corrupts every reported AUC.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from pseudovad.data.dataset import Video
from pseudovad.data.decode import is_ignored, list_frames, natural_key, natural_sorted
from pseudovad.errors import DataError

FFP_MAT = "FFP gt ranges"
MNAD_NPY = "MNAD frame labels"
UCSD_M = "UCSD official gt_frame ranges"
UCSD_MASKS = "UCSD official pixel masks"
AVENUE_MASKS = "avenue official pixel masks (volLabel)"
NPY_MASKS = "per-video .npy frame masks"

# Official sources first: when several agreeing files are found, the first of these is reported.
FORMAT_PRIORITY = (UCSD_M, AVENUE_MASKS, NPY_MASKS, UCSD_MASKS, FFP_MAT, MNAD_NPY)

_AVENUE_FILE = re.compile(r"^(\d+)_label\.mat$", re.IGNORECASE)
_UCSD_LINE = re.compile(r"gt_frame\s*=\s*\[([^\]]*)\]")
_UCSD_ITEM = re.compile(r"^(\d+)(?::(\d+))?$")

Ranges = list[tuple[int, int]]


def mask_runs(mask: np.ndarray) -> Ranges:
    """The runs of True in a boolean array as [start, end) index pairs: a video's labelled events, or
    the frames a synthetic anomaly is visible in."""
    padded = np.concatenate([[False], np.asarray(mask, dtype=bool), [False]])
    edges = np.flatnonzero(padded[1:] != padded[:-1])
    return [(int(start), int(end)) for start, end in zip(edges[::2], edges[1::2])]


@dataclass(frozen=True)
class LoadedLabels:
    """Labels from one source, already matched to the test videos."""

    path: Path
    format: str
    per_video: list[np.ndarray]

    @property
    def version(self) -> str:
        """The `label_version` string: which file, in which format."""
        name = f"{self.path.name}/*_gt" if self.format == UCSD_MASKS else self.path.name
        return f"{name} ({self.format})"

    @property
    def num_anomalous(self) -> int:
        return int(sum(int(lab.sum()) for lab in self.per_video))


def _binary(values: np.ndarray, source: Path) -> np.ndarray:
    """0/1 uint8 copy of `values`, refusing anything that is not already 0/1."""
    values = np.asarray(values)
    if values.dtype == object or not np.isin(values, (0, 1)).all():
        raise DataError(f"{source}: expected 0/1 frame labels, found other values.")
    return values.astype(np.uint8)


def ranges_to_labels(
    ranges: Sequence[Ranges], lengths: Sequence[int], source: Path, names: Sequence[str] | None = None
) -> list[np.ndarray]:
    """Expand 1-based inclusive [start, end] ranges into per-video 0/1 arrays of the given lengths."""
    names = list(names) if names is not None else [f"#{i + 1}" for i in range(len(lengths))]
    if len(ranges) != len(lengths):
        raise DataError(
            f"{source}: has labels for {len(ranges)} videos but there are {len(lengths)} test videos."
        )
    labels = []
    for video_ranges, length, name in zip(ranges, lengths, names):
        lab = np.zeros(length, dtype=np.uint8)
        for start, end in video_ranges:
            if start < 1 or end < start:
                raise DataError(f"{source}: invalid frame range {start}:{end} for test video {name}.")
            if end > length:
                raise DataError(
                    f"{source}: range {start}:{end} for test video {name} ends past the video, "
                    f"which has {length} frames."
                )
            lab[start - 1 : end] = 1
        labels.append(lab)
    return labels


def read_ffp_ranges(path: Path) -> list[Ranges]:
    """The `gt` cell of an FFP .mat: per video, a 2xK array of [start; end] rows."""
    mat = _loadmat(path)
    if "gt" not in mat:
        raise DataError(f"{path}: no 'gt' variable; not an FFP label file.")
    cell = mat["gt"]
    if cell.dtype != object:
        raise DataError(f"{path}: 'gt' should be a 1xN cell array of 2xK [start; end] ranges.")
    ranges = []
    for i, entry in enumerate(cell.ravel()):
        arr = np.asarray(entry)
        if arr.size == 0:
            ranges.append([])
            continue
        if arr.ndim != 2 or arr.shape[0] != 2 or not np.all(np.equal(np.mod(arr, 1), 0)):
            raise DataError(f"{path}: gt entry {i + 1} has shape {arr.shape}; expected 2xK integer ranges.")
        arr = arr.astype(np.int64)
        ranges.append([(int(s), int(e)) for s, e in zip(arr[0], arr[1])])
    return ranges


def parse_ffp_mat(path: Path, lengths: Sequence[int], names: Sequence[str] | None = None) -> list[np.ndarray]:
    """FFP `<name>.mat` labels (key `gt`) for test videos of the given lengths."""
    return ranges_to_labels(read_ffp_ranges(path), lengths, path, names)


def read_ucsd_m_ranges(path: Path) -> list[Ranges]:
    """The `TestVideoFile{end+1}.gt_frame = [a:b, c:d];` lines of an official UCSD .m file."""
    text = _read_text(path)
    ranges = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        code = line.split("%", 1)[0]
        if "gt_frame" not in code:
            continue
        match = _UCSD_LINE.search(code)
        if match is None:
            raise DataError(f"{path}:{lineno}: cannot parse gt_frame line: {line.strip()}")
        video_ranges = []
        for item in re.split(r"[,\s]+", match.group(1).strip()):
            if not item:
                continue
            parts = _UCSD_ITEM.match(item)
            if parts is None:
                raise DataError(f"{path}:{lineno}: cannot parse frame range '{item}' in: {line.strip()}")
            start = int(parts.group(1))
            end = int(parts.group(2)) if parts.group(2) else start
            video_ranges.append((start, end))
        ranges.append(video_ranges)
    if not ranges:
        raise DataError(f"{path}: no gt_frame lines found; not a UCSD ground-truth .m file.")
    return ranges


def parse_ucsd_m(path: Path, lengths: Sequence[int], names: Sequence[str] | None = None) -> list[np.ndarray]:
    """Official UCSD `Test/UCSDped{1,2}.m` labels for test videos of the given lengths."""
    return ranges_to_labels(read_ucsd_m_ranges(path), lengths, path, names)


def parse_flat_npy(path: Path) -> np.ndarray:
    """A flat 0/1 array over all test frames (MNAD `frame_labels_<name>.npy`, shape (1, N) or (N,))."""
    values = _load_npy(path)
    if values.ndim == 2 and values.shape[0] == 1:
        values = values[0]
    if values.ndim != 1:
        raise DataError(f"{path}: shape {values.shape}; expected (N,) or (1, N) frame labels.")
    return _binary(values, path)


def split_flat(flat: np.ndarray, lengths: Sequence[int], source: Path) -> list[np.ndarray]:
    """Cut a flat label array into per-video pieces; the total must match exactly."""
    total = int(sum(lengths))
    if flat.size != total:
        raise DataError(
            f"{source}: has {flat.size} frame labels but the {len(lengths)} test videos have {total} frames."
        )
    bounds = np.cumsum(lengths)[:-1]
    return [piece.copy() for piece in np.split(flat, bounds)]


def parse_npy_mask_folder(folder: Path) -> dict[str, np.ndarray]:
    """ShanghaiTech `testing/test_frame_mask/<video>.npy`: one 0/1 array per video, keyed by video name."""
    files = [p for p in natural_sorted(folder.glob("*.npy")) if not is_ignored(p)]
    if not files:
        raise DataError(f"{folder}: no .npy frame masks found.")
    masks = {}
    for path in files:
        values = _load_npy(path)
        if values.ndim == 2 and values.shape[0] == 1:
            values = values[0]
        if values.ndim != 1:
            raise DataError(f"{path}: shape {values.shape}; expected one 0/1 label per frame.")
        masks[path.stem] = _binary(values, path)
    return masks


def parse_ucsd_mask_folder(folder: Path) -> np.ndarray:
    """One UCSD `TestNNN_gt` folder of pixel masks: a frame is anomalous when any mask pixel is set."""
    labels = []
    for path in list_frames(folder):
        mask = cv2.imdecode(np.fromfile(path, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
        if mask is None:
            raise DataError(f"Cannot decode mask image {path}.")
        labels.append(int(np.any(mask)))
    return np.array(labels, dtype=np.uint8)


def parse_avenue_masks(folder: Path) -> list[np.ndarray]:
    """CUHK Avenue `testing_label_mask/N_label.mat` (`volLabel` cells of HxW masks), in clip order.

    Files are ordered by their number (1, 2, ..., 10), not by name, and must be numbered 1..N
    without gaps, so that clip i's labels cannot land on another clip.
    """
    numbered = []
    for path in folder.iterdir():
        match = _AVENUE_FILE.match(path.name)
        if match:
            numbered.append((int(match.group(1)), path))
    if not numbered:
        raise DataError(f"{folder}: no N_label.mat files found; not an Avenue testing_label_mask folder.")
    numbered.sort()
    numbers = [n for n, _ in numbered]
    if numbers != list(range(1, len(numbers) + 1)):
        raise DataError(f"{folder}: label files should be numbered 1..{len(numbers)}; found {numbers}.")
    labels = []
    for _, path in numbered:
        mat = _loadmat(path)
        if "volLabel" not in mat:
            raise DataError(f"{path}: no 'volLabel' variable; not an Avenue label file.")
        labels.append(np.array([int(np.any(mask)) for mask in mat["volLabel"].ravel()], dtype=np.uint8))
    return labels


def match_labels(per_video: Sequence[np.ndarray], videos: Sequence[Video], source: Path) -> list[np.ndarray]:
    """Check that there is one label array per test video with exactly its frame count."""
    if len(per_video) != len(videos):
        raise DataError(
            f"{source}: has labels for {len(per_video)} videos but there are {len(videos)} test videos."
        )
    for lab, video in zip(per_video, videos):
        if len(lab) != video.num_frames:
            raise DataError(
                f"{source}: labels for test video '{video.name}' cover {len(lab)} frames but the video "
                f"({video.path}) has {video.num_frames} frames."
            )
    return [np.asarray(lab, dtype=np.uint8) for lab in per_video]


def sniff_label_format(path: Path) -> str | None:
    """The label format of `path` judged by its content, or None if it is not a label file."""
    if path.is_dir():
        if any(_AVENUE_FILE.match(p.name) for p in path.iterdir()):
            return AVENUE_MASKS
        if any(not is_ignored(p) for p in path.glob("*.npy")):
            return NPY_MASKS
        if any(p.is_dir() and p.name.lower().endswith("_gt") for p in path.iterdir()):
            return UCSD_MASKS
        return None
    suffix = path.suffix.lower()
    if suffix == ".mat":
        import scipy.io  # here and in _loadmat: only .mat labels need it, and it takes ~0.4 s to import

        try:
            names = [name for name, _, _ in scipy.io.whosmat(str(path))]
        except Exception:
            return None
        return FFP_MAT if "gt" in names else None
    if suffix == ".npy":
        try:
            values = np.load(path, allow_pickle=False)
        except Exception:
            return None
        if values.dtype.kind in "biuf" and values.size and np.isin(values, (0, 1)).all():
            return MNAD_NPY
        return None
    if suffix == ".m":
        return UCSD_M if "gt_frame" in _read_text(path) else None
    return None


def load_label_file(path: Path, videos: Sequence[Video]) -> LoadedLabels:
    """Read any supported label source and match it to `videos` (the test videos, in order)."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"Label file not found: {path}")
    fmt = sniff_label_format(path)
    lengths = [v.num_frames for v in videos]
    names = [v.name for v in videos]
    if fmt == FFP_MAT:
        per_video = parse_ffp_mat(path, lengths, names)
    elif fmt == UCSD_M:
        per_video = parse_ucsd_m(path, lengths, names)
    elif fmt == MNAD_NPY:
        per_video = split_flat(parse_flat_npy(path), lengths, path)
    elif fmt == AVENUE_MASKS:
        per_video = parse_avenue_masks(path)
    elif fmt == NPY_MASKS:
        per_video = _by_name(parse_npy_mask_folder(path), videos, path)
    elif fmt == UCSD_MASKS:
        per_video = [_ucsd_gt_labels(path, v) for v in videos]
    else:
        raise DataError(
            f"{path}: not a supported label file. Supported: an FFP .mat with 'gt', a 0/1 .npy over all test "
            f"frames (MNAD), a UCSD .m with gt_frame lines, an Avenue testing_label_mask folder, a folder of "
            f"per-video .npy masks, or a UCSD Test folder with TestNNN_gt mask folders."
        )
    return LoadedLabels(path=path, format=fmt, per_video=match_labels(per_video, videos, path))


def choose_labels(
    candidates: Sequence[Path], videos: Sequence[Video], root: Path
) -> tuple[LoadedLabels | None, dict]:
    """Apply the discovery rule to label candidates found next to a dataset.

    Files that are not label files are skipped. One valid source is used; several that agree are
    fine; several that disagree, or label files that all fail to match the videos, are errors
    asking the user to pick one with --labels, since guessing would change the reported numbers.
    Returns the chosen labels (or None) and notes for `VideoDataset.extra`.
    """
    accepted: list[LoadedLabels] = []
    rejected: dict[str, str] = {}
    for path in candidates:
        if sniff_label_format(path) is None:
            continue
        try:
            accepted.append(load_label_file(path, videos))
        except DataError as exc:
            rejected[str(path)] = str(exc)
    notes: dict = {}
    if rejected:
        notes["rejected_label_files"] = rejected
    if not accepted:
        if rejected:
            reasons = "\n".join(f"  {reason}" for reason in rejected.values())
            raise DataError(
                f"{root}: found label files, but none matches the test videos:\n{reasons}\n"
                f"Fix the labels or choose a file with --labels FILE."
            )
        return None, notes
    accepted.sort(key=lambda lab: (FORMAT_PRIORITY.index(lab.format), natural_key(lab.path.name)))
    chosen = accepted[0]
    disagreeing = [lab for lab in accepted[1:] if not _same(lab.per_video, chosen.per_video)]
    if disagreeing:
        lines = [f"  {chosen.path} [{chosen.version}]: {chosen.num_anomalous} anomalous frames"]
        for lab in disagreeing:
            diff = sum(int((a != b).sum()) for a, b in zip(lab.per_video, chosen.per_video))
            lines.append(
                f"  {lab.path} [{lab.version}]: {lab.num_anomalous} anomalous frames "
                f"(differs from {chosen.path.name} on {diff} frame(s))"
            )
        raise DataError(
            f"{root}: found label files that disagree:\n" + "\n".join(lines) + "\n"
            "Published results differ by label version; choose one explicitly with --labels FILE."
        )
    if len(accepted) > 1:
        notes["agreeing_label_files"] = [str(lab.path) for lab in accepted]
    return chosen, notes


def _same(a: Sequence[np.ndarray], b: Sequence[np.ndarray]) -> bool:
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))


def _by_name(masks: dict[str, np.ndarray], videos: Sequence[Video], source: Path) -> list[np.ndarray]:
    """Order per-video masks by the test videos' names; every video needs one, and no extras."""
    missing = [v.name for v in videos if v.name not in masks]
    if missing:
        raise DataError(
            f"{source}: no frame mask for test video(s) {', '.join(missing)} (expected <video>.npy)."
        )
    extra = sorted(set(masks) - {v.name for v in videos}, key=natural_key)
    if extra:
        raise DataError(f"{source}: frame masks {', '.join(extra)} match no test video.")
    return [masks[v.name] for v in videos]


def _ucsd_gt_labels(test_dir: Path, video: Video) -> np.ndarray:
    folder = test_dir / f"{video.name}_gt"
    if not folder.is_dir():
        raise DataError(f"{test_dir}: no pixel-mask folder {folder.name} for test video {video.name}.")
    return parse_ucsd_mask_folder(folder)


def _loadmat(path: Path) -> dict:
    import scipy.io

    try:
        return scipy.io.loadmat(str(path))
    except NotImplementedError as exc:
        raise DataError(
            f"{path}: MATLAB v7.3 (HDF5) .mat files are not supported; re-save it with -v7."
        ) from exc
    except Exception as exc:
        raise DataError(f"Cannot read MATLAB file {path}: {exc}") from exc


def _load_npy(path: Path) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except Exception as exc:
        raise DataError(f"Cannot read .npy file {path}: {exc}") from exc


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise DataError(f"Cannot read {path}: {exc}") from exc
