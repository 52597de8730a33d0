"""pseudovad: video anomaly detection trained on normal video, improved with pseudo-anomalies it learns not to predict.

In Python: `detector = pseudovad.load("runs/camera")`, then `detector.score(frames)` gives each frame's
anomaly in [0, 1] (0.5 is the run's calibrated threshold; see detector.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pseudovad.detector import Detector

__version__ = "0.1.0"


def load(run: str | Path, false_alarm_rate: float | None = None, threshold: float | None = None) -> Detector:
    """The detector of a trained run folder: `load(run).score(frames) -> array` (see pseudovad.detector)."""
    from pseudovad.detector import Detector

    return Detector(run, false_alarm_rate, threshold)
