"""The field's frame-level evaluation protocol, written out so every step can be checked.

FFP protocol: the first `t` frames of each video have no prediction and are not scored; each
video's scores are min-max normalised to a regularity score (high = normal); all videos are
concatenated and one ROC AUC is computed (the "micro" AUC, the field's headline number). Because
min-max uses test statistics, the un-normalised micro AUC is reported too, and so is the macro AUC
(the mean of per-video AUCs over videos that hold both classes).
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter1d
from sklearn.metrics import roc_auc_score, roc_curve


def minmax(scores: np.ndarray) -> np.ndarray:
    """Scale to [0, 1]; a constant score maps to all zeros (no information, no division by zero)."""
    scores = np.asarray(scores, dtype=np.float64)
    low, high = scores.min(), scores.max()
    if high - low <= 0:
        return np.zeros_like(scores)
    return (scores - low) / (high - low)


def smooth(scores: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian temporal smoothing within one video; sigma 0 returns the scores unchanged."""
    if sigma <= 0:
        return np.asarray(scores, dtype=np.float64)
    return gaussian_filter1d(np.asarray(scores, dtype=np.float64), sigma, mode="nearest")


def scored_labels(labels: np.ndarray, clip_length: int) -> np.ndarray:
    """The labels of the frames that get a score: every frame after the first `clip_length`."""
    return np.asarray(labels)[clip_length:]


def _auc(labels: np.ndarray, normality: np.ndarray) -> float | None:
    """ROC AUC for detecting anomalies (label 1) from a normality score (high = normal)."""
    labels = np.asarray(labels).astype(int)
    if labels.min() == labels.max():
        return None
    return float(roc_auc_score(labels, -np.asarray(normality, dtype=np.float64)))


def frame_auc(scores: list[np.ndarray], labels: list[np.ndarray], sigma: float = 0.0) -> dict[str, float | None]:
    """Micro (per-video min-max), raw micro (no normalisation) and macro AUC.

    `scores[i]` and `labels[i]` are aligned per scored frame of video i (use `scored_labels`), and the
    scores are oriented high = normal. A length mismatch is an error, never a silent shift.
    """
    if len(scores) != len(labels):
        raise ValueError(f"{len(scores)} score arrays for {len(labels)} label arrays")
    for index, (score, label) in enumerate(zip(scores, labels)):
        if len(score) != len(label):
            raise ValueError(f"video {index}: {len(score)} scores for {len(label)} labels")
        if not np.isfinite(score).all():
            raise ValueError(f"video {index}: {int((~np.isfinite(score)).sum())} scores are NaN or infinite")
    smoothed = [smooth(s, sigma) for s in scores]
    all_labels = np.concatenate(labels)
    per_video = [_auc(label, score) for score, label in zip(smoothed, labels)]
    defined = [auc for auc in per_video if auc is not None]
    return {
        "micro": _auc(all_labels, np.concatenate([minmax(s) for s in smoothed])),
        "micro_raw": _auc(all_labels, np.concatenate(smoothed)),
        "macro": float(np.mean(defined)) if defined else None,
        "videos_in_macro": len(defined),
    }


def micro_auc_shortfall(scores: list[np.ndarray], labels: list[np.ndarray]) -> list[float]:
    """Each video's share of 1 - micro AUC: the fraction of all (anomalous, normal) frame pairs, after
    the per-video min-max, in which the video's anomalous frame looks the more normal (ties half).

    The shares add up to 1 - micro AUC, so they say where the headline number is lost. A video that is
    anomalous from its first scored frame to its last (four of Ped2's twelve) always has a frame that
    min-max puts at 1, as normal as the most normal frame anywhere, whatever the detector sees there;
    a better raw score need not lower that video's share. Same inputs as `frame_auc`.
    """
    normality = [minmax(s) for s in scores]
    normal = np.sort(np.concatenate([n[np.asarray(l) == 0] for n, l in zip(normality, labels)]))
    pairs = len(normal) * int(sum(np.asarray(l).sum() for l in labels))
    if pairs == 0:
        raise ValueError("the labels hold one class only: the micro AUC is undefined")
    shares = []
    for n, l in zip(normality, labels):
        anomalous = n[np.asarray(l) == 1]
        below = np.searchsorted(normal, anomalous, "left")
        tied = np.searchsorted(normal, anomalous, "right") - below
        shares.append(float((below + 0.5 * tied).sum() / pairs))
    return shares


def fuse(psnr_scores: np.ndarray, classifier_scores: np.ndarray, weight: float = 0.5) -> np.ndarray:
    """One video's fused score S = minmax(w minmax(PSNR) + (1 - w) minmax(C)); both inputs high =
    normal. At w = 0.5 this is the thesis's minmax(minmax(PSNR) + minmax(C)) exactly (halving is exact)."""
    return minmax(weight * minmax(psnr_scores) + (1 - weight) * minmax(classifier_scores))


def operating_points(scores: list[np.ndarray], labels: list[np.ndarray]) -> dict[str, float | None]:
    """The true-positive rate at 1 % and 5 % false-positive rate and the equal error rate, on the raw
    scores of all videos together: one threshold for every video, as a deployed detector has (the
    micro AUC's per-video min-max needs each video's future). None where the labels hold one class."""
    all_labels = np.concatenate(labels).astype(int)
    if all_labels.min() == all_labels.max():
        return {"tpr_at_fpr_1": None, "tpr_at_fpr_5": None, "eer": None}
    false_positive, true_positive, _ = roc_curve(all_labels, -np.concatenate(scores).astype(np.float64))
    miss = 1 - true_positive
    crossing = int(np.argmax(false_positive >= miss))  # the curve starts with fpr 0 < miss 1 and ends with fpr 1 >= miss
    before, after = max(crossing - 1, 0), crossing
    gap_before, gap_after = miss[before] - false_positive[before], false_positive[after] - miss[after]
    weight = gap_before / (gap_before + gap_after) if gap_before + gap_after > 0 else 0.0
    eer = false_positive[before] + weight * (false_positive[after] - false_positive[before])
    return {
        "tpr_at_fpr_1": float(true_positive[false_positive <= 0.01].max()),
        "tpr_at_fpr_5": float(true_positive[false_positive <= 0.05].max()),
        "eer": float(eer),
    }
