"""A run folder: every file name in it, the marker that says pseudovad made it, and its lock.

Every command that reads or writes a run goes through `RunDir`, so a file name is spelled once.
`--force` deletes only what this module recognises as a run folder: one holding the marker, nothing
foreign, and neither holding nor lying above the dataset; a lock held by the writing process keeps
two trainings (or a training and a `--force`) off the same folder.
"""

from __future__ import annotations

import copy
import errno
import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from pseudovad import __version__
from pseudovad.checkpoint import load_checkpoint
from pseudovad.errors import PseudovadError, RuntimeFailure
from pseudovad.files import check_can_write, remove, write_json

try:  # POSIX advisory locks; elsewhere runs are simply not locked
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

MARKER = ".pseudovad-run"
LOCK = ".lock"
_GALLERY_IMAGE = re.compile(r"^step_(\d+)\.png$")  # RunDir.gallery_image's names


@dataclass(frozen=True)
class RunDir:
    """The paths of one run folder (nothing is created by naming them)."""

    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    @property
    def config(self) -> Path:
        return self.path / "config.yaml"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def checkpoint(self) -> Path:
        return self.checkpoints / "latest.pt"

    @property
    def tensorboard(self) -> Path:
        return self.path / "tensorboard"

    @property
    def summary(self) -> Path:
        return self.path / "train_summary.json"

    @property
    def results(self) -> Path:
        return self.path / "results.json"

    @property
    def calibration(self) -> Path:
        return self.path / "calibration.json"

    @property
    def report(self) -> Path:
        return self.path / "report"

    @property
    def gallery(self) -> Path:
        return self.path / "gallery"

    @property
    def wall_seconds(self) -> Path:
        return self.path / "wall_seconds.txt"

    @property
    def exports(self) -> Path:
        return self.path / "export"

    @property
    def marker(self) -> Path:
        return self.path / MARKER

    @property
    def lock(self) -> Path:
        return self.path / LOCK

    def gallery_image(self, step: int) -> Path:
        return self.gallery / f"step_{step:06d}.png"

    def gallery_images(self) -> list[tuple[int, Path]]:
        """(step, path) of every gallery image the run saved, in step order."""
        found = ((_GALLERY_IMAGE.match(path.name), path) for path in self.gallery.glob("step_*.png"))
        return sorted((int(match.group(1)), path) for match, path in found if match)

    def is_own_entry(self, name: str) -> bool:
        """Whether a run folder may hold `name` at its top level: one of its files or folders, the report's
        swap folders, or a temporary file a writer killed mid-write left (`.NAME.PID.tmp`, as files.py and
        checkpoint.py names them), which `--force` may then delete with the rest."""
        names = {p.name for p in (self.config, self.checkpoints, self.tensorboard, self.summary, self.results,
                                  self.calibration, self.report, self.gallery, self.wall_seconds, self.exports,
                                  self.marker, self.lock)}
        temporary = re.fullmatch(r"\.(.+)\.\d+\.tmp", name)
        return (name in names or name in {f"{self.report.name}.new", f"{self.report.name}.old"}
                or (temporary is not None and temporary.group(1) in names))

    def links(self) -> list[Path]:
        """The symbolic links among the run's entries and those of its own folders. pseudovad makes none;
        a run folder that holds one was crafted or rearranged, and writing through it would overwrite
        or disclose the file it points at."""
        if not self.path.is_dir():
            return []
        entries = list(self.path.iterdir())
        for folder in (self.checkpoints, self.gallery, self.exports, self.report, self.tensorboard):
            if folder.is_dir() and not folder.is_symlink():
                entries += folder.iterdir()
        return sorted(entry for entry in entries if entry.is_symlink())


def _contains(outer: Path, inner: Path) -> bool:
    """True if `inner` is `outer` or lies inside it (both resolved)."""
    return inner == outer or outer in inner.parents


def check_deletable(run: RunDir, data_root: Path | None) -> None:
    """Refuse to delete anything but a pseudovad run folder that holds no data of the user's."""
    where = run.path.resolve()
    if data_root is not None and (_contains(where, Path(data_root).resolve()) or _contains(Path(data_root).resolve(), where)):
        raise PseudovadError(
            f"--force refused: {run.path} holds or lies above the dataset {data_root} (or inside it); "
            "choose an --out folder of its own"
        )
    if not run.marker.is_file():
        raise PseudovadError(
            f"--force refused: {run.path} has no {MARKER} marker, so it is not a run folder pseudovad made "
            "(or one from a version before 0.2); delete it yourself if it holds nothing you need, or choose another --out"
        )
    foreign = sorted(entry.name for entry in run.path.iterdir() if not run.is_own_entry(entry.name))
    if foreign:
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        raise PseudovadError(f"--force refused: {run.path} holds files that are not part of a run ({shown}); move them out first")


def clear_run(run: RunDir) -> None:
    """Delete a run folder's entries (check_deletable first), keeping the lock this process holds."""
    for entry in run.path.iterdir():
        if entry.name == LOCK:
            continue
        remove(entry)


def write_marker(run: RunDir) -> None:
    run.path.mkdir(parents=True, exist_ok=True)
    write_json({"made_by": "pseudovad", "version": __version__}, run.marker, indent=None)


@contextmanager
def locked(run: RunDir) -> Iterator[None]:
    """Hold RUN/.lock for the duration: a second writer (train, --resume, --force) is refused with the pid
    of the first. The lock is the kernel's (flock), so a killed process never leaves a stale one."""
    run.path.mkdir(parents=True, exist_ok=True)
    refuse_links(run.path)
    handle = os.fdopen(os.open(run.lock, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644), "r+")
    try:
        if fcntl is not None:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as error:
                if error.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                    raise
                handle.seek(0)
                owner = handle.read().strip() or "unknown"
                raise RuntimeFailure(
                    f"{run.path} is in use by another pseudovad process (pid {owner}); wait for it to finish or stop it"
                ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        yield
    finally:
        handle.close()


_NOTHING_TO_RESUME = "--resume: no checkpoint at {checkpoint}; start without --resume"


def saved_config(run_dir: Path) -> tuple[dict, str]:
    """The config values a run was trained with (its checkpoint's) and their source, so that
    `--resume` needs nothing but the run folder."""
    run = RunDir(run_dir)
    if not run.checkpoint.is_file():
        raise PseudovadError(_NOTHING_TO_RESUME.format(checkpoint=run.checkpoint))
    return saved_values(read_state(run)), str(run.checkpoint)


def saved_values(state: dict) -> dict:
    """A checkpoint's config values minus data.cache_dir: a run folder can come from anyone, and loading
    it must not choose where files are written (the cache is then $PSEUDOVAD_CACHE's, or --set's)."""
    values = copy.deepcopy(state["config"])
    if isinstance(values.get("data"), dict):
        values["data"].pop("cache_dir", None)
    return values


def read_state(run: RunDir) -> dict:
    """The run's last checkpoint, checked to be one pseudovad wrote."""
    if not run.checkpoint.is_file():
        raise PseudovadError(f"{run.path}: no checkpoint at {run.checkpoint}; point at a run folder written by "
                             "`pseudovad train` (one that reached its first checkpoint)")
    return load_checkpoint(run.checkpoint)  # which refuses anything but a pseudovad checkpoint


def _check_target(run: RunDir, resume: bool, force: bool, data_root: Path | None) -> bool:
    """Whether `run` holds an old run to delete; raises if it may not be trained into as asked."""
    if run.path.exists() and not run.path.is_dir():
        raise PseudovadError(f"--out {run.path} is a file, not a folder; choose a folder for the run")
    if resume:
        if not run.checkpoint.exists():
            raise PseudovadError(_NOTHING_TO_RESUME.format(checkpoint=run.checkpoint))
        return False
    if not run.path.is_dir() or all(entry.name == LOCK for entry in run.path.iterdir()):
        return False
    if _failed_start(run, data_root):
        return True
    if not force:
        raise PseudovadError(
            f"{run.path} already holds a run; use --resume to continue it, --force to start over, or choose another --out"
        )
    check_deletable(run, data_root)
    return True


def _failed_start(run: RunDir, data_root: Path | None) -> bool:
    """Whether `run` holds only a start that never reached its first checkpoint (bad data, a stop in
    its first minutes): nothing there is worth keeping, and refusing it would leave the user neither
    --resume (no checkpoint) nor a fresh start (a run is there), only --force. A run that finished and
    then lost its checkpoint (deleted to save space) still holds what it produced, and is not one."""
    produced = (run.checkpoint, run.summary, run.results, run.calibration, run.report, run.exports)
    if any(path.exists() for path in produced):
        return False
    try:
        check_deletable(run, data_root)
    except PseudovadError:
        return False
    return True


@contextmanager
def claimed(run: RunDir, resume: bool, force: bool, data_root: Path | None) -> Iterator[None]:
    """Hold `run` for one training: checked before anything is written (a folder that is not a run
    gets no lock file), then locked, checked again under the lock, and cleared if `--force` asked."""
    _check_target(run, resume, force, data_root)
    try:
        with locked(run):
            if _check_target(run, resume, force, data_root):
                clear_run(run)
            write_marker(run)
            yield
    except PermissionError as error:
        raise PseudovadError(f"cannot write in {run.path} ({error.strerror}); choose an --out folder you can write to") from None


def read_summary(run: RunDir) -> dict | None:
    """train_summary.json if it is there and well formed (numbers where numbers belong), else None:
    a run folder may come from anyone, and the report and grids read it."""
    try:
        summary = json.loads(run.summary.read_text())
        summary["seconds"] = float(summary["seconds"])
        summary["iterations"] = int(summary["iterations"])
        summary["resumed_from"] = int(summary.get("resumed_from") or 0)
        return summary
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return None


def refuse_links(run_dir: Path) -> None:
    """Refuse to write into a run folder that holds symbolic links (RunDir.links says why)."""
    linked = RunDir(run_dir).links()
    if linked:
        shown = ", ".join(str(link) for link in linked[:3]) + (f" and {len(linked) - 3} more" if len(linked) > 3 else "")
        raise PseudovadError(
            f"{run_dir}: refused to write into a run folder that holds symbolic links ({shown}); pseudovad makes "
            "none, and writing through one would change the file it points at. Replace each link by a copy of "
            "what it points at (cp -L), or remove it"
        )


def check_writable(folder: Path) -> None:
    """Fail now, naming the folder, rather than after minutes of work that could not be saved or that
    would be written through a link (refuse_links)."""
    refuse_links(folder)
    check_can_write(folder)
