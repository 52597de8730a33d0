"""files.py: a JSON or text file is replaced whole or not at all."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pseudovad.files import write_json, write_text


def test_a_write_that_fails_halfway_leaves_the_previous_file_and_no_temporary(tmp_path, monkeypatch):
    """A disk that fills after half the bytes: the reader still finds the old, whole file."""
    path = tmp_path / "experiment.json"
    write_json({"runs": 1}, path)
    real_write_text = Path.write_text

    def half_then_full(self: Path, text: str) -> int:
        real_write_text(self, text[: len(text) // 2])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "write_text", half_then_full)
    with pytest.raises(OSError, match="No space"):
        write_json({"runs": 2, "table": "x" * 1000}, path)
    monkeypatch.undo()
    assert json.loads(path.read_text()) == {"runs": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["experiment.json"]


def test_text_and_json_are_written_as_given(tmp_path):
    write_text("| a |\n", tmp_path / "table.md")
    write_json({"b": [1, 2]}, tmp_path / "b.json", indent=2)
    assert (tmp_path / "table.md").read_text() == "| a |\n"
    assert json.loads((tmp_path / "b.json").read_text()) == {"b": [1, 2]}
