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


@pytest.fixture(scope="session", autouse=True)
def private_cache(tmp_path_factory):
    """Frame caches of the test session go to a temporary folder, never to ~/.cache."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PSEUDOVAD_CACHE", str(tmp_path_factory.mktemp("cache")))
        yield


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    """The synthetic scene's tiny preset (seed 0), generated once per test session; treat as read-only."""
    from pseudovad.data.synthetic import generate_synthetic

    root = tmp_path_factory.mktemp("synthetic_tiny")
    generate_synthetic(root, seed=0, preset="tiny", overwrite=True)
    return root
