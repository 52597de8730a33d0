"""Datasets pseudovad generates (the synthetic scene, pseudo-validation): when a folder may be reused."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pseudovad.errors import DataError


def reusable(out: Path, wanted: dict[str, Any], defaults: dict[str, Any] | None = None) -> bool:
    """True if `out` holds a dataset made with `wanted` (as its dataset.json records them; `defaults`
    for keys older versions did not write), False if it holds none yet.

    One made otherwise is refused, never reused or remade: reusing it would score other anomalies than
    those asked for, and runs trained on it may sit beside it."""
    description = Path(out) / "dataset.json"
    if not description.is_file():
        return False
    try:
        made = json.loads(description.read_text())
        saved = {key: made.get(key, (defaults or {}).get(key)) for key in wanted}
    except (OSError, ValueError, AttributeError) as error:
        raise DataError(f"{description}: unreadable ({error}); delete {out} to make it again") from None
    if saved != wanted:
        differences = "; ".join(f"{key} {saved[key]!r}, not {wanted[key]!r}" for key in wanted if saved[key] != wanted[key])
        raise DataError(f"{out} was made with other settings ({differences}); delete it (and any runs made on it) "
                        "or choose another folder")
    return True
