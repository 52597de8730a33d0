"""Shared fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The read-only real benchmark data ($PSEUDOVAD_DATA, default <repo>/../shared/data); skips if absent."""
    root = Path(os.environ.get("PSEUDOVAD_DATA", REPO_ROOT.parent / "shared" / "data"))
    if not root.is_dir():
        pytest.skip(f"real data not found at {root} (set PSEUDOVAD_DATA)")
    return root
