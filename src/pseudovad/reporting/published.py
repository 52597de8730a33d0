"""Published frame-level AUCs, as data with their sources, so a report can set a measured number next
to what the papers claim without anyone retyping a table.

All values are micro AUCs in percent (all test videos concatenated, FFP protocol), as collected in
docs/ANCHORS.md of the shared project folder from the original papers. The papers used the label
files distributed with their code, which are not always the labels a run here was evaluated with.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ANCHORS = "../shared/docs/ANCHORS.md"

BENCHMARKS = {
    "ped1": "UCSD Ped1",
    "ped2": "UCSD Ped2",
    "avenue": "CUHK Avenue",
    "shanghaitech": "ShanghaiTech",
}


@dataclass(frozen=True)
class PublishedAUC:
    """One number from one paper: `auc` is the frame-level micro AUC in percent."""

    benchmark: str
    method: str
    auc: float
    paper: str
    note: str = ""
    source: str = ANCHORS


_FFP = "Liu et al., Future Frame Prediction for Anomaly Detection, CVPR 2018"
_MNAD = "Park et al., Learning Memory-guided Normality for Anomaly Detection (MNAD), CVPR 2020"
_OGNET = "Zaheer et al., Old is Gold: Redefining the Adversarially Learned One-Class Classifier, CVPR 2020"
_LNTRA = "Astrid et al., Learning Not to Reconstruct Anomalies (LNTRA), BMVC 2021"
_STEAL = "Astrid et al., Synthetic Temporal Anomaly Guided End-to-End Video Anomaly Detection (STEAL), ICCVW 2021"
_HF2VAD = (
    "Liu et al., A Hybrid Video Anomaly Detection Framework via Memory-Augmented Flow Reconstruction and "
    "Flow-Guided Frame Prediction (HF2-VAD), ICCV 2021"
)
_THESIS = "the pseudo-anomaly thesis this project builds from (FFP generator + classifier, fused score)"

PUBLISHED: tuple[PublishedAUC, ...] = (
    PublishedAUC("ped1", "FFP", 83.1, _FFP, source=f"{ANCHORS} section 1"),
    PublishedAUC("ped2", "FFP", 95.4, _FFP, source=f"{ANCHORS} sections 1 and 4"),
    PublishedAUC("avenue", "FFP", 85.1, _FFP, "intensity loss weight 0.001 (84.9 with weight 1)", f"{ANCHORS} sections 1 and 4"),
    PublishedAUC("shanghaitech", "FFP", 72.8, _FFP, source=f"{ANCHORS} sections 1 and 4"),
    PublishedAUC("ped2", "MNAD (prediction)", 97.0, _MNAD, source=f"{ANCHORS} section 4"),
    PublishedAUC("avenue", "MNAD (prediction)", 88.5, _MNAD, source=f"{ANCHORS} section 4"),
    PublishedAUC("shanghaitech", "MNAD (prediction)", 70.5, _MNAD, source=f"{ANCHORS} section 4"),
    PublishedAUC("ped2", "OGNet", 98.1, _OGNET, source=f"{ANCHORS} sections 2 and 4"),
    PublishedAUC("ped2", "LNTRA (patch)", 94.8, _LNTRA, source=f"{ANCHORS} section 4"),
    PublishedAUC("ped2", "LNTRA (skip frame)", 96.5, _LNTRA, source=f"{ANCHORS} section 4"),
    PublishedAUC("avenue", "LNTRA (patch)", 84.9, _LNTRA, source=f"{ANCHORS} section 4"),
    PublishedAUC("avenue", "LNTRA (skip frame)", 84.7, _LNTRA, source=f"{ANCHORS} section 4"),
    PublishedAUC("shanghaitech", "LNTRA (patch)", 72.5, _LNTRA, source=f"{ANCHORS} section 4"),
    PublishedAUC("shanghaitech", "LNTRA (skip frame)", 76.0, _LNTRA, source=f"{ANCHORS} section 4"),
    PublishedAUC("ped2", "STEAL", 98.4, _STEAL, source=f"{ANCHORS} section 4"),
    PublishedAUC("avenue", "STEAL", 87.1, _STEAL, source=f"{ANCHORS} section 4"),
    PublishedAUC("shanghaitech", "STEAL", 73.7, _STEAL, source=f"{ANCHORS} section 4"),
    PublishedAUC("ped2", "HF2-VAD", 99.3, _HF2VAD, source=f"{ANCHORS} section 4"),
    PublishedAUC("avenue", "HF2-VAD", 91.1, _HF2VAD, source=f"{ANCHORS} section 4"),
    PublishedAUC("shanghaitech", "HF2-VAD", 76.2, _HF2VAD, source=f"{ANCHORS} section 4"),
    PublishedAUC("avenue", "pseudo-anomalies, fused (normal index)", 72.42, _THESIS,
                 "classifier's normal output fused with PSNR", f"{ANCHORS} section 3"),
    PublishedAUC("avenue", "pseudo-anomalies, fused (anomaly index)", 68.35, _THESIS,
                 "classifier's anomaly output fused with PSNR", f"{ANCHORS} section 3"),
)

# Checked in order on one lower-cased name; "ped1"/"ped2" also match UCSDped1/UCSDped2 and ped2.mat.
_PATTERNS = (
    ("shanghaitech", re.compile(r"shanghai")),
    ("avenue", re.compile(r"avenue")),
    ("ped1", re.compile(r"ped[_-]?1")),
    ("ped2", re.compile(r"ped[_-]?2")),
)


def detect_benchmark(dataset: str | Path | None, label_file: str | Path | None = None) -> str | None:
    """The benchmark a dataset is, judged from the label file's name first, then the dataset folder
    and its parents (nearest first); None for anything else, the synthetic scene included."""
    names = []
    if label_file:
        names.append(Path(label_file).name)
    if dataset:
        path = Path(dataset)
        if (path / "dataset.json").is_file():
            return None
        names += [path.name, *(parent.name for parent in path.parents)]
    for name in names:
        for benchmark, pattern in _PATTERNS:
            if pattern.search(name.lower()):
                return benchmark
    return None


def published_for(benchmark: str | None) -> list[PublishedAUC]:
    """The published numbers of one benchmark, highest first."""
    return sorted((p for p in PUBLISHED if p.benchmark == benchmark), key=lambda p: -p.auc)
