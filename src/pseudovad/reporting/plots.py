"""The report's and the `score` command's figures: scores over frames with the anomalous intervals
shaded, and ROC curves. One look at where a score drops inside and outside the true intervals says
more about a detector than its AUC."""

from __future__ import annotations

from pathlib import Path

import cv2
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from pseudovad.data.labels import mask_runs  # noqa: E402

# Prediction error (|prediction - frame| in [0, 1] intensity units) shown at full heat-map colour.
HEAT_FULL_SCALE = 0.25
# Curves take these colours in the order a pipeline declares its scores (PSNR first, fused last).
_PALETTE = ("tab:blue", "tab:orange", "tab:purple", "tab:green", "tab:brown", "tab:pink", "tab:olive", "tab:cyan")
_ANOMALY_COLOR = "#f4a3a3"
_UNSCORED_COLOR = "#d9d9d9"
DPI = 90


def plain(text: object) -> str:
    """`text` as matplotlib shows it literally: a `$` would otherwise start math mode (and a stray
    one can fail the whole figure), so names from files are escaped."""
    return str(text).replace("$", r"\$")


def heat_map(error: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """A prediction-error map (H, W) in [0, 1] as an RGB heat image of `size` (width, height), and its
    strength in [0, 1] per pixel (for blending it over the frame)."""
    strength = np.clip(cv2.resize(error, size, interpolation=cv2.INTER_LINEAR) / HEAT_FULL_SCALE, 0, 1)
    heat = cv2.cvtColor(cv2.applyColorMap((strength * 255).astype(np.uint8), cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)
    return heat, strength


def _shade(axis: plt.Axes, mask: np.ndarray, color: str, label: str, x: np.ndarray | None = None) -> None:
    """Shade each run of `mask` (one entry per frame, drawn half a frame either side); label it once."""
    x = np.arange(len(mask), dtype=float) if x is None else np.asarray(x, dtype=float)
    half = (x[1] - x[0]) / 2 if len(x) > 1 else 0.5
    for index, (start, end) in enumerate(mask_runs(mask)):
        axis.axvspan(x[start] - half, x[end - 1] + half, color=color, alpha=0.6, lw=0, label=label if index == 0 else None)


def _save(figure: plt.Figure, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=DPI)
    plt.close(figure)


def plot_video_scores(
    path: Path, title: str, labels: np.ndarray, first_scored_frame: int, curves: dict[str, np.ndarray], legend: dict[str, str],
    emphasise: str | None = None,
) -> None:
    """One test video: each curve (one value per scored frame, in [0, 1], high = normal) over the
    frame index, the ground-truth anomalous frames shaded red and the unscored first frames grey.

    `labels` covers the scored frames only; `legend` gives each curve's legend text; the
    `emphasise` curve (the fused score) is drawn thicker.
    """
    frames = first_scored_frame + len(labels)
    figure, axis = plt.subplots(figsize=(11, 3.2))
    axis.axvspan(-0.5, first_scored_frame - 0.5, color=_UNSCORED_COLOR, alpha=0.6, lw=0, label="no score (first frames)")
    full_labels = np.concatenate([np.zeros(first_scored_frame, bool), np.asarray(labels, bool)])
    _shade(axis, full_labels, _ANOMALY_COLOR, "ground truth: anomalous")
    x = np.arange(first_scored_frame, frames)
    for color, (name, values) in zip(_PALETTE, curves.items()):
        axis.plot(x, values, color=color, lw=2.0 if name == emphasise else 1.3, label=plain(legend[name]))
    axis.set_xlim(-0.5, frames - 0.5)
    axis.set_ylim(-0.03, 1.03)
    axis.set_xlabel("frame index")
    axis.set_ylabel("score (high = normal)")
    axis.set_title(plain(title))
    axis.grid(alpha=0.3)
    axis.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=9, frameon=False)
    figure.tight_layout()
    _save(figure, path)


def plot_roc(path: Path, labels: np.ndarray, normality: dict[str, np.ndarray], aucs: dict[str, float | None], title: str) -> None:
    """ROC curves for detecting anomalous frames (label 1) from scores oriented high = normal,
    keyed by the score's label."""
    from sklearn.metrics import roc_curve  # here: scoring a video imports this module, and sklearn takes 0.4-1 s to import

    figure, axis = plt.subplots(figsize=(6.4, 5.8))
    for color, (name, values) in zip(_PALETTE, normality.items()):
        false_positive, true_positive, _ = roc_curve(np.asarray(labels, int), -np.asarray(values, float))
        auc = aucs.get(name)
        text = f"{name} (AUC {auc:.3f})" if auc is not None else name
        axis.plot(false_positive, true_positive, color=color, lw=1.6, label=plain(text))
    axis.plot([0, 1], [0, 1], color="grey", ls="--", lw=1, label="chance")
    axis.set_xlim(0, 1)
    axis.set_ylim(0, 1.01)
    axis.set_aspect("equal")
    axis.set_xlabel("false positive rate (normal frames flagged)")
    axis.set_ylabel("true positive rate (anomalous frames found)")
    axis.set_title(plain(title), fontsize=10)
    axis.grid(alpha=0.3)
    axis.legend(loc="lower right", fontsize=9)
    figure.tight_layout()
    _save(figure, path)


def plot_timeline(path: Path, title: str, times: np.ndarray, scores: np.ndarray, threshold: float, alerted: np.ndarray,
                  label: str) -> None:
    """A scored video: its raw score (high = normal) against the threshold, the frames inside alert events
    shaded. Frames without a score are NaN and leave a gap."""
    figure, axis = plt.subplots(figsize=(11, 3.2))
    _shade(axis, np.isnan(scores), _UNSCORED_COLOR, "no score (first frames)", times)
    _shade(axis, alerted, _ANOMALY_COLOR, "alert", times)
    axis.plot(times, scores, color=_PALETTE[0], lw=1.2, label=plain(label))
    axis.axhline(threshold, color="tab:red", ls="--", lw=1.2, label=f"threshold {threshold:.2f}")
    axis.set_ylabel(plain(f"{label} (high = normal)"))
    axis.set_title(plain(title))
    axis.grid(alpha=0.3)
    axis.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=9, frameon=False)
    axis.set_xlabel("time (s)")
    axis.set_xlim(times[0], times[-1] if len(times) > 1 else times[0] + 1)
    figure.tight_layout()
    _save(figure, path)
