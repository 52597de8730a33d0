"""Pseudo-anomaly sources: each makes clips whose inputs are abnormal and whose target is a real,
normal frame, so a predictor trained on them learns *not* to predict anomalies (LNTRA, FastAno).

One class per source, registered by name in SOURCES; `training/not_to_predict.py` is the objective
that feeds them to the predictor. Importing this package registers the built-in sources.
"""

from pseudovad.pseudo_anomalies import adversarial, spatial, temporal  # noqa: F401  (registers them)
from pseudovad.pseudo_anomalies.base import PseudoClips, Source, SourceOptions

__all__ = ["PseudoClips", "Source", "SourceOptions"]
