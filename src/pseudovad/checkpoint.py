"""Checkpoints that survive a kill mid-write and cannot run foreign code when loaded.

Saving writes a temporary file in the same folder, fsyncs it and renames it over the old one, so a
reader only ever sees a complete checkpoint. Loading uses `weights_only=True`: plain tensors and
containers, never arbitrary unpickled objects.
"""

from __future__ import annotations

import os
import pickle
import warnings
from pathlib import Path
from typing import Any

import torch

from pseudovad.errors import PseudovadError, RuntimeFailure
from pseudovad.files import replacing


def save_checkpoint(state: dict[str, Any], path: Path) -> None:
    """Atomically write `state` (tensors, numbers, strings and containers of them) to `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with replacing(path, "wb", durable=True) as handle:
            torch.save(state, handle)
    except OSError as error:
        raise RuntimeFailure(f"could not write checkpoint {path}: {error}; the previous checkpoint is kept") from None
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def remove_stale_temporaries(folder: Path) -> None:
    """Delete the temporary files of writers that were killed mid-write (they are never complete)."""
    for temporary in folder.glob(".*.tmp"):
        temporary.unlink(missing_ok=True)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Load a checkpoint without unpickling arbitrary objects; refuse anything else with a clear error."""
    if not path.is_file():
        raise PseudovadError(f"checkpoint {path} not found")
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise PseudovadError(
            f"{path}: refused to load: it holds objects other than tensors and plain containers "
            "(possibly code). Only load checkpoints written by pseudovad."
        ) from None
    except (RuntimeError, EOFError, ValueError) as error:
        raise PseudovadError(f"{path}: not a readable checkpoint ({error})") from None
    if not (isinstance(state, dict) and isinstance(state.get("iteration"), int) and isinstance(state.get("config"), dict)
            and isinstance(state.get("networks"), dict)):
        raise PseudovadError(f"{path}: not a pseudovad checkpoint (no iteration, config and networks in it); "
                             "only load checkpoints written by pseudovad")
    return state
