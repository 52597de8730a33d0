"""Score every test frame of a trained run and compute the field's AUCs into RUN/results.json.

The per-frame scores are saved with the results, so plots and reports never recompute them.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from tqdm import tqdm

from pseudovad.config import Config
from pseudovad.data.cache import FrameArray, load_frames
from pseudovad.data.clips import to_model_range
from pseudovad.data.dataset import VideoDataset
from pseudovad.data.layouts import load_dataset
from pseudovad.errors import PseudovadError
from pseudovad.files import write_json
from pseudovad.evaluation.protocol import frame_auc, fuse, minmax, operating_points, scored_labels
from pseudovad.runs import RunDir, check_writable
from pseudovad.training.base import Pipeline
from pseudovad.training.trained import compile_if_it_pays, load_trained

PROTOCOL = (
    "frame-level ROC AUC; the first clip_length frames of each video are unscored; "
    "micro = per-video min-max normalised scores of all videos concatenated (FFP protocol); "
    "micro_raw = the same without normalisation; macro = mean of per-video AUCs over videos with both classes"
)


def score_videos(pipeline: Pipeline, frames: FrameArray, clip_length: int, batch_size: int) -> list[dict[str, np.ndarray]]:
    """Per video, per score name: one value per frame from index `clip_length` on."""
    results = []
    total = sum(max(v.num_frames - clip_length, 0) for v in frames.videos)
    with tqdm(total=total, desc="scoring", unit="frame", leave=False) as bar:
        for index in range(len(frames.videos)):
            video = frames.video(index)
            starts = np.arange(len(video) - clip_length)
            collected: dict[str, list[np.ndarray]] = {}
            for begin in range(0, len(starts), batch_size):
                window = starts[begin : begin + batch_size, None] + np.arange(clip_length + 1)
                clips = to_model_range(video[window]).to(pipeline.device)
                for name, value in pipeline.score(clips).items():
                    collected.setdefault(name, []).append(value.float().cpu().numpy())
                bar.update(len(window))
            results.append({name: np.concatenate(parts) for name, parts in collected.items()})
    return results


def per_kind_auc(dataset: VideoDataset, scores: list[np.ndarray], labels: list[np.ndarray], clip_length: int) -> dict:
    """For datasets that list their events (the synthetic scene): micro AUC of each anomaly kind
    against all normal frames, with other kinds' anomalous frames left out."""
    events = _listed_events(dataset)
    kinds: dict[str, list[np.ndarray]] = {}
    for kind, video, start, end in events:
        masks = kinds.setdefault(kind, [np.zeros(v.num_frames, bool) for v in dataset.test])
        masks[video][start:end] = True
    normalised = np.concatenate([minmax(s) for s in scores])
    all_labels = np.concatenate(labels).astype(bool)
    out = {}
    for kind, masks in sorted(kinds.items()):
        of_kind = np.concatenate([scored_labels(m, clip_length) for m in masks]) & all_labels
        keep = of_kind | ~all_labels
        out[kind] = frame_auc([normalised[keep]], [all_labels[keep].astype(int)])["micro_raw"]
    return out


def _listed_events(dataset: VideoDataset) -> list[tuple[str, int, int, int]]:
    """(kind, test video index, start, end) of each event in ROOT/dataset.json, if the file exists."""
    description = dataset.root / "dataset.json"
    if not description.is_file():
        return []
    names = [v.name for v in dataset.test]
    try:
        events = json.loads(description.read_text()).get("events", [])
        listed = [(str(e["kind"]), names.index(e["video"]), int(e["start"]), int(e["end"])) for e in events]
    except (ValueError, TypeError, KeyError, AttributeError, UnicodeDecodeError) as error:
        raise PseudovadError(f"{description}: not the event list `pseudovad synth` writes ({type(error).__name__}); "
                             "fix it, or move it out of the dataset folder (it only adds AUCs per anomaly kind)") from None
    return listed


def evaluate_run(run_dir: Path, data_root: Path | None = None, labels: Path | None = None, compile_setting: str | None = None) -> dict:
    """Score the run's test set, write RUN/results.json and return its content (`compile_setting`
    overrides the run's eval.compile)."""
    check_writable(run_dir)
    config, pipeline, iteration = load_trained(run_dir)
    root = data_root or (Path(config.data.root) if config.data.root else None)
    if root is None:
        raise PseudovadError(f"{run_dir}: no dataset recorded in the run; pass --data ROOT")
    if data_root is None and not root.exists():
        raise PseudovadError(f"{run_dir}: the dataset it was trained on, {root}, is not there any more; pass --data ROOT where it is now")
    labels = labels or (Path(config.data.labels) if config.data.labels else None)
    dataset = load_dataset(root, config.data.layout, labels)
    if dataset.test_labels is None:
        raise PseudovadError(f"{root}: the test videos have no labels, so no AUC; use `pseudovad score` for unlabelled footage")
    compiled = compile_if_it_pays(pipeline, sum(video.num_frames for video in dataset.test), compile_setting)
    results = evaluate_pipeline(config, pipeline, dataset)
    results.update({"run": str(run_dir), "iteration": iteration, "scoring_compiled": compiled})
    write_json(results, RunDir(run_dir).results)
    return results


def score_declarations(pipeline: Pipeline) -> dict[str, dict]:
    """What results.json says of each score (label, probability or not), for the report and plots."""
    declared = {score.name: {"label": score.label, "probability": score.probability} for score in pipeline.scores}
    fusion = pipeline.fused()
    if fusion is not None:
        declared[fusion.name] = {"label": fusion.label, "probability": False, "fuses": list(fusion.parts), "weight": fusion.weight}
    return declared


def evaluate_pipeline(config: Config, pipeline: Pipeline, dataset: VideoDataset) -> dict:
    """Every declared score (and the fused one) of every scored test frame, with the protocol's AUCs:
    the one dictionary results.json holds, so reports and tables never rescore a run."""
    t = config.data.clip_length
    frames = load_frames(dataset.test, config.data.height, config.data.width, config.data.channels, config.data.cache_dir, "test frames")
    per_video = score_videos(pipeline, frames, t, pipeline.eval_batch_size)
    score_names = [score.name for score in pipeline.scores]
    _check_finite(per_video, score_names, dataset)
    fusion = pipeline.fused()
    if fusion is not None:
        for video in per_video:
            video[fusion.name] = fuse(*(video[part] for part in fusion.parts), fusion.weight)
        score_names.append(fusion.name)
    labels = [scored_labels(lab, t) for lab in dataset.test_labels]
    auc = {name: _auc([video[name] for video in per_video], labels, config.eval.smoothing_sigma) for name in score_names}
    return {
        "dataset": str(dataset.root),
        "layout": dataset.layout,
        "label_version": dataset.label_version,
        "label_file": str(dataset.label_file) if dataset.label_file else None,
        "protocol": PROTOCOL,
        "clip_length": t,
        "smoothing_sigma": config.eval.smoothing_sigma,
        "frames_scored": int(sum(len(lab) for lab in labels)),
        "anomalous_frames_scored": int(sum(int(lab.sum()) for lab in labels)),
        "scores": score_declarations(pipeline),
        "auc": auc,
        "operating_points": {name: operating_points([video[name] for video in per_video], labels) for name in score_names},
        "auc_per_kind": {name: per_kind_auc(dataset, [v[name] for v in per_video], labels, t) for name in score_names},
        "videos": [
            {
                "name": video.name,
                "first_scored_frame": t,
                "labels": lab.astype(int).tolist(),
                "scores": {name: [round(float(x), 5) for x in values] for name, values in scores.items()},
            }
            for video, lab, scores in zip(dataset.test, labels, per_video)
        ],
    }


def _check_finite(per_video: list[dict[str, np.ndarray]], names: list[str], dataset: VideoDataset) -> None:
    """A diverged model stops here with its cause and fix, not deep in sklearn with "Input contains NaN"."""
    for name in names:
        broken = [video.name for video, scores in zip(dataset.test, per_video) if not np.isfinite(scores[name]).all()]
        if broken:
            raise PseudovadError(
                f"the '{name}' score is NaN or infinite on test videos {', '.join(broken)}: the model has diverged; "
                "retrain with a lower learning rate (and train.on_nonfinite=stop, the default)"
            )


def _auc(scores: list[np.ndarray], labels: list[np.ndarray], smoothing_sigma: float) -> dict:
    """The protocol's AUCs of one score, and with `smoothing_sigma` > 0 those of its smoothed scores too."""
    auc = frame_auc(scores, labels)
    if smoothing_sigma > 0:
        smoothed = frame_auc(scores, labels, smoothing_sigma)
        auc.update({f"{key}_smoothed": smoothed[key] for key in ("micro", "micro_raw", "macro")})
    return auc


