"""Shared fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# One thread per process, here and in the runs tests start: the tensors are tiny, and with a second
# thread every parallel region waits on a core that another job may hold. On a machine with one
# training beside the suite, the OGNet phase-2 test took 496 s with two threads and 5 s with one.
os.environ.setdefault("OMP_NUM_THREADS", "1")
import torch  # noqa: E402  (after OMP_NUM_THREADS, which torch reads on import)

torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))

REPO_ROOT = Path(__file__).resolve().parents[1]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked `slow` first: under pytest -n a worker then takes each of them at the start, and
    the rest of the suite spreads over the other workers meanwhile, instead of one worker running a
    three-minute test alone at the end."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


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
