"""files.py: a JSON or text file is replaced whole or not at all."""

from __future__ import annotations

import json
import os

import pytest

from pseudovad.checkpoint import save_checkpoint
from pseudovad.files import write_json, write_text


class HalfThenFull:
    """A file handle on a disk that fills after half the bytes of a write."""

    def __init__(self, handle) -> None:
        self.handle = handle

    def __enter__(self) -> HalfThenFull:
        return self

    def __exit__(self, *details) -> None:
        self.handle.__exit__(*details)

    def write(self, text: str) -> int:
        self.handle.write(text[: len(text) // 2])
        raise OSError(28, "No space left on device")


def test_a_write_that_fails_halfway_leaves_the_previous_file_and_no_temporary(tmp_path, monkeypatch):
    """The reader still finds the old, whole file."""
    path = tmp_path / "experiment.json"
    write_json({"runs": 1}, path)
    real_fdopen = os.fdopen
    monkeypatch.setattr(os, "fdopen", lambda descriptor, mode: HalfThenFull(real_fdopen(descriptor, mode)))
    with pytest.raises(OSError, match="No space"):
        write_json({"runs": 2, "table": "x" * 1000}, path)
    monkeypatch.undo()
    assert json.loads(path.read_text()) == {"runs": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["experiment.json"]


def test_a_link_planted_at_the_temporary_or_final_name_is_replaced_not_written_through(tmp_path):
    """A crafted run folder holding links named as a writer's files: the files they point at stay as they were."""
    mine = tmp_path / "mine.txt"
    mine.write_text("mine")
    run = tmp_path / "run"
    run.mkdir()
    (run / f".results.json.{os.getpid()}.tmp").symlink_to(mine)
    (run / "calibration.json").symlink_to(mine)
    write_json({"a": 1}, run / "results.json")
    write_json({"b": 2}, run / "calibration.json")
    save_checkpoint({"iteration": 1}, run / "checkpoints" / "latest.pt")
    assert mine.read_text() == "mine"
    assert not (run / "calibration.json").is_symlink() and json.loads((run / "calibration.json").read_text()) == {"b": 2}
    assert sorted(p.name for p in run.iterdir()) == ["calibration.json", "checkpoints", "results.json"]


def test_text_and_json_are_written_as_given(tmp_path):
    write_text("| a |\n", tmp_path / "table.md")
    write_json({"b": [1, 2]}, tmp_path / "b.json", indent=2)
    assert (tmp_path / "table.md").read_text() == "| a |\n"
    assert json.loads((tmp_path / "b.json").read_text()) == {"b": [1, 2]}
