"""Files written whole or not at all: a reader (a resumed run, a grid checking which runs are done, the
user) never finds half of one after a crash, a full disk or Ctrl-C.

Each is written to a fresh temporary file beside it and renamed over it. The temporary is created
exclusively (O_EXCL), after removing whatever a killed writer or a crafted folder left at its name, so
a symbolic link planted there is replaced, never written through; the rename replaces a link at the
final name itself, not the file it points at.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from pseudovad.errors import PseudovadError


def _temporary_for(path: Path) -> Path:
    """The temporary name a writer of `path` uses (`.NAME.PID.tmp`, which RunDir.is_own_entry knows)."""
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


@contextmanager
def replacing(path: Path, mode: str = "w", durable: bool = False) -> Iterator[IO]:
    """A handle on a new temporary file that replaces `path` when the block ends without an error
    (`durable`: fsync it first, for files whose loss costs hours, like checkpoints)."""
    temporary = _temporary_for(path)
    temporary.unlink(missing_ok=True)
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o644)
    try:
        with os.fdopen(descriptor, mode) as handle:
            yield handle
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def remove(path: Path) -> None:
    """Delete a file, a link (never what it points at) or a folder with everything in it; nothing if absent."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def write_text(text: str, path: Path) -> None:
    """Write `text` to `path` whole or not at all."""
    with replacing(path) as handle:
        handle.write(text)


def write_json(content: dict, path: Path, indent: int | None = 1) -> None:
    write_text(json.dumps(content, indent=indent) + "\n", path)


def check_can_write(folder: Path) -> None:
    """Fail now, naming the folder, rather than after minutes of work that could not be saved there."""
    probe = Path(folder) / f".write-test-{os.getpid()}"
    try:
        probe.touch()
        probe.unlink()
    except OSError as error:
        raise PseudovadError(f"cannot write in {folder} ({error.strerror}); results could not be saved there") from None
