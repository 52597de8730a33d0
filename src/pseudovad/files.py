"""Files written whole or not at all: a reader (a resumed run, a grid checking which runs are done, the
user) never finds half of one after a crash, a full disk or Ctrl-C."""

from __future__ import annotations

import json
import os
from pathlib import Path


def write_text(text: str, path: Path) -> None:
    """Write `text` to a temporary file beside `path`, then rename it over `path` (atomic on POSIX)."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        temporary.write_text(text)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def write_json(content: dict, path: Path, indent: int = 1) -> None:
    write_text(json.dumps(content, indent=indent) + "\n", path)
