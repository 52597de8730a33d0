"""`pseudovad report RUN`: one HTML page that shows what a trained run does, written to RUN/report/.

People judge an anomaly detector by looking at it, so next to the AUC table (and the papers'
numbers) the page shows every test video's scores against its true anomalous intervals, the frames
the detector gets most wrong, and the pseudo-anomalies over training. The page is self-contained:
plain HTML without scripts, the images as files beside it, so it can be copied or archived whole.
Every number comes from RUN/results.json; the page names the labels and protocol that produced it.
"""

from __future__ import annotations

import html
import json
import re
import shutil
from collections import deque
from datetime import datetime, timezone
from pathlib import Path

import cv2
import numpy as np

from pseudovad import __version__
from pseudovad.config import short_repr
from pseudovad.data.cache import prepare_frame
from pseudovad.data.decode import iter_frames
from pseudovad.data.labels import mask_runs
from pseudovad.data.layouts import load_dataset
from pseudovad.detector import prediction_errors
from pseudovad.errors import PseudovadError
from pseudovad.evaluation.protocol import frame_auc, micro_auc_shortfall, minmax
from pseudovad.reporting.plots import HEAT_FULL_SCALE, heat_map, plot_roc, plot_video_scores
from pseudovad.reporting.published import ANCHORS, BENCHMARKS, detect_benchmark, published_for
from pseudovad.runs import RunDir, check_writable, read_summary
from pseudovad.training.base import FUSED, headline
from pseudovad.training.trained import load_trained

WORST_FRAMES = 6
FRAME_WIDTH = 240

_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1180px; margin: 1.5em auto; padding: 0 1em; color: #222; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; } h2 { margin-top: 1.8em; border-bottom: 1px solid #ccc; padding-bottom: 0.2em; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.92em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: left; vertical-align: top; }
th { background: #f2f2f2; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.measured td:first-child { border-left: 4px solid #2b7a2b; } tr.published td:first-child { border-left: 4px solid #8a8a8a; }
tr.published { color: #555; }
.provenance { background: #fff8e1; border: 1px solid #e0c060; padding: 0.6em 0.9em; }
.note { color: #555; font-size: 0.92em; }
img.plot { max-width: 100%; display: block; margin: 0.4em 0 1.2em; }
.frames { display: flex; flex-wrap: wrap; gap: 0.8em; }
figure { margin: 0; width: 240px; font-size: 0.82em; } figure img { width: 240px; display: block; }
pre { background: #f6f6f6; padding: 0.6em; overflow-x: auto; font-size: 0.85em; }
"""


def build_report(run_dir: Path) -> Path:
    """Write RUN/report/index.html (and its images) from the run's results; return the page's path."""
    run_dir, run = Path(run_dir), RunDir(run_dir)
    if not run.results.is_file():
        raise PseudovadError(f"{run_dir}: no results.json, so nothing to report; run `pseudovad evaluate {run_dir}` first")
    check_writable(run_dir)
    results = _read_results(run.results)
    out = run.path / f"{run.report.name}.new"
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    try:
        _write_pages(run_dir, results, out)
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)
        raise
    _swap_in(out, run.report)
    return run.report / "index.html"


def _swap_in(new: Path, final: Path) -> None:
    """Replace `final` by the complete `new` folder; the old report is deleted only after."""
    old = final.with_name(f"{final.name}.old")
    if old.exists():
        shutil.rmtree(old)
    if final.exists():
        final.rename(old)
    new.rename(final)
    shutil.rmtree(old, ignore_errors=True)


def _read_results(path: Path) -> dict:
    """results.json, checked enough that the page can be written from it."""
    try:
        results = json.loads(path.read_text())
        if not isinstance(results, dict):
            raise ValueError("not an object")
        missing = [key for key in ("auc", "videos", "protocol", "dataset", "layout", "clip_length") if key not in results]
        if missing:  # plain checks, not asserts, which `python -O` removes
            raise ValueError(f"{missing[0]} missing")
        results["iteration"] = int(results["iteration"])
        results["frames_scored"] = int(results["frames_scored"])
        results["anomalous_frames_scored"] = int(results["anomalous_frames_scored"])
        results["clip_length"] = int(results["clip_length"])
    except (OSError, ValueError, TypeError, KeyError) as error:
        raise PseudovadError(f"{path}: not a results file pseudovad wrote ({type(error).__name__}: {short_repr(str(error))}); "
                             "run `pseudovad evaluate` again") from None
    return results


def _write_pages(run_dir: Path, results: dict, out: Path) -> None:
    config_path = RunDir(run_dir).config
    plotted = _plotted_scores(results)
    sections = [
        _provenance(results),
        _run_section(run_dir, results, config_path),
        _auc_section(results),
        _operating_points_section(results),
        _per_kind_section(results),
        _shortfall_section(results),
        _roc_section(results, out),
        _videos_section(results, plotted, out),
        _worst_frames_section(run_dir, results, out),
        _gallery_section(run_dir, out),
    ]
    generated = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    (out / "index.html").write_text(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>pseudovad report: {_e(run_dir.resolve().name)}</title><style>{_STYLE}</style></head><body>\n"
        f"<h1>pseudovad report: {_e(run_dir.resolve().name)}</h1>\n"
        f"<p class=\"note\">run folder {_e(run_dir.resolve())} &middot; written {generated} by pseudovad {__version__}</p>\n"
        + "\n".join(sections)
        + "\n</body></html>\n"
    )


def _e(value: object) -> str:
    return html.escape(str(value))


def _table(headers: list[str], rows: list[tuple[str, list[str]]], numeric: range) -> str:
    """An HTML table; each row is (css class, cells); the `numeric` columns are right-aligned."""
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = []
    for css, cells in rows:
        tds = "".join(f"<td class=\"num\">{_e(c)}</td>" if i in numeric else f"<td>{_e(c)}</td>" for i, c in enumerate(cells))
        body.append(f"<tr class=\"{css}\">{tds}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _duration(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}"


def _label_source(results: dict) -> str:
    version = results.get("label_version") or "unknown label version"
    label_file = results.get("label_file")
    return f"{version}, file {label_file}" if label_file else version


def _provenance(results: dict) -> str:
    """The one statement that says which labels and protocol produced every measured number."""
    smoothing = results.get("smoothing_sigma", 0.0)
    smoothing_text = (
        f"Columns marked 'smoothed' use Gaussian temporal smoothing with sigma {smoothing} frames; all others none."
        if smoothing else "No temporal smoothing."
    )
    return (
        "<div class=\"provenance\"><p><b>Every number measured here</b> (tables, ROC curves, per-video plots and "
        f"frame rankings) comes from <b>labels {_e(_label_source(results))}</b> and the protocol: "
        f"<i>{_e(results['protocol'])}</i>.</p><p>{results['frames_scored']} test frames scored, "
        f"{results['anomalous_frames_scored']} of them anomalous; the first {results['clip_length']} frames of each test "
        f"video have no prediction and no score. {_e(smoothing_text)} The model is the run's checkpoint at iteration "
        f"{results['iteration']} (a fixed budget; no checkpoint was picked on test data). Dataset: "
        f"{_e(results['dataset'])} (layout {_e(results['layout'])}).</p></div>"
    )


def _run_section(run_dir: Path, results: dict, config_path: Path) -> str:
    summary = read_summary(RunDir(run_dir))
    rows = [("", ["evaluated at iteration", str(results["iteration"])])]
    if summary is None:
        budget = ("<p class=\"note\">No readable train_summary.json in the run (training did not finish, or the file "
                  "is damaged), so no training time.</p>")
    else:
        seconds = summary["seconds"]
        rows += [
            ("", ["iterations trained", str(summary["iterations"])]),
            ("", ["training time", _duration(seconds) + (
                f", since the resume at iteration {summary['resumed_from']}" if summary.get("resumed_from") else "")]),
            ("", ["device", str(summary.get("device", "?"))]),
            ("", ["training clips", str(summary.get("training_clips", "?"))]),
        ]
        budget = ""
    config_text = config_path.read_text() if config_path.is_file() else "(no config.yaml in the run folder)"
    return (
        "<h2>Run: configuration and budget</h2>" + _table(["", "value"], rows, range(1, 2)) + budget
        + f"<details><summary>full configuration (config.yaml)</summary><pre>{_e(config_text)}</pre></details>"
    )


def _auc_section(results: dict) -> str:
    benchmark = detect_benchmark(results["dataset"], results.get("label_file"))
    keys = ["micro", "micro_raw", "macro"]
    if any("micro_smoothed" in auc for auc in results["auc"].values()):
        keys += ["micro_smoothed", "micro_raw_smoothed", "macro_smoothed"]
    headers = ["source", "score / method", *(f"{k.replace('_', ' ')} AUC %" for k in keys), "labels / paper"]
    labels = results.get("label_version") or "unknown"
    rows = [
        ("measured", [f"measured here (iteration {results['iteration']})", _label(results, name),
                      *(_percent(auc.get(k)) for k in keys), labels])
        for name, auc in results["auc"].items()
    ]
    published = published_for(benchmark)
    for entry in published:
        method = f"{entry.method} ({entry.note})" if entry.note else entry.method
        rows.append(("published", ["published", method, f"{entry.auc:g}", *(["-"] * (len(keys) - 1)), entry.paper]))
    if benchmark is None:
        comparison = ("<p class=\"note\">No published numbers: the dataset is not recognised as Ped1, Ped2, Avenue or "
                      "ShanghaiTech (the synthetic scene has none).</p>")
    else:
        comparison = (f"<p class=\"note\">Dataset recognised as {_e(BENCHMARKS[benchmark])}. Published rows are copied "
                      f"from the papers (collected in {_e(ANCHORS)}); the papers report the micro AUC only, under their own "
                      "training budgets and with the label files of their code, which can differ from the labels above.</p>")
    return (
        "<h2>Frame-level AUC</h2><p class=\"note\">micro: per-video min-max normalised scores of all videos concatenated "
        "(the FFP protocol, the field's headline number); micro raw: the same without normalisation; macro: the mean of "
        "per-video AUCs. Rows with a green edge are <b>measured here</b>, grey ones are <b>published</b>.</p>"
        + _table(headers, rows, range(2, 2 + len(keys))) + comparison
    )


def _operating_points_section(results: dict) -> str:
    points = results.get("operating_points")
    if points is None:
        return ("<h2>Operating points</h2><p class=\"note\">results.json predates operating points; run "
                "`pseudovad evaluate` again to get them.</p>")
    rows = [("measured", [_label(results, name), *(_percent(values[key]) for key in ("tpr_at_fpr_1", "tpr_at_fpr_5", "eer"))])
            for name, values in points.items()]
    return (
        "<h2>Operating points</h2><p class=\"note\">What an operator gets from each score with one threshold for all "
        "test videos (raw scores, not min-max normalised per video): the share of anomalous frames found when 1 % or "
        "5 % of normal frames raise a false alarm, and the equal error rate (where the share of missed anomalous "
        "frames equals the false-alarm rate), in %.</p>"
        + _table(["score", "TPR at 1 % FPR", "TPR at 5 % FPR", "EER"], rows, range(1, 4))
    )


def _per_kind_section(results: dict) -> str:
    per_kind = {name: kinds for name, kinds in results.get("auc_per_kind", {}).items() if kinds}
    if not per_kind:
        return ""
    kinds = sorted({kind for values in per_kind.values() for kind in values})
    rows = [
        ("measured", [_label(results, name), *(_percent(values.get(k)) for k in kinds)])
        for name, values in per_kind.items()
    ]
    return (
        "<h2>AUC per anomaly kind</h2><p class=\"note\">Micro AUC (%) of each kind of anomaly against all normal frames, "
        "the other kinds' anomalous frames left out; measured here with the labels and protocol stated above.</p>"
        + _table(["score", *kinds], rows, range(1, 1 + len(kinds)))
    )


def _shortfall_section(results: dict) -> str:
    """Where the headline micro AUC is lost, video by video, so a gain or a loss can be traced."""
    ranked = headline(results["auc"])
    labels = [np.asarray(video["labels"]) for video in results["videos"]]
    every = np.concatenate(labels)
    if every.min() == every.max():
        return ""  # no micro AUC to explain
    shares = micro_auc_shortfall([np.asarray(video["scores"][ranked]) for video in results["videos"]], labels)
    rows = [("measured", [video["name"], str(int(label.sum())), str(len(label)), _percent(share),
                          "yes" if label.min() == 1 else ""])
            for video, label, share in zip(results["videos"], labels, shares)]
    return (
        f"<h2>Where the micro AUC is lost</h2><p class=\"note\">Each test video's share of 100 - micro AUC of the "
        f"{_e(_label(results, ranked))}, in points: the (anomalous, normal) frame pairs, after each video's min-max, in "
        "which the video's anomalous frame looks the more normal (ties count half); the shares add up to what the "
        "micro AUC loses. A video anomalous throughout has a frame that min-max puts at the top of the normal scale "
        "whatever the detector sees there.</p>"
        + _table(["video", "anomalous frames", "scored frames", "share of the loss", "anomalous throughout"], rows, range(1, 4))
    )


def _normalised(results: dict, name: str) -> list[np.ndarray]:
    return [minmax(np.asarray(video["scores"][name])) for video in results["videos"]]


def _roc_section(results: dict, out: Path) -> str:
    labels = np.concatenate([video["labels"] for video in results["videos"]])
    if labels.min() == labels.max():
        return "<h2>ROC curves</h2><p class=\"note\">The test labels hold one class only, so there is no ROC curve.</p>"
    normality = {_label(results, name): np.concatenate(_normalised(results, name)) for name in results["auc"]}
    aucs = {_label(results, name): auc["micro"] for name, auc in results["auc"].items()}
    plot_roc(out / "roc.png", labels, normality, aucs, "Frame-level ROC, per-video min-max scores (FFP micro protocol)")
    return (
        "<h2>ROC curves</h2><p class=\"note\">All test frames, each video's scores min-max normalised (the micro AUC's "
        "protocol); anomalous frames are the positives.</p><img class=\"plot\" src=\"roc.png\" alt=\"ROC curves\">"
    )


def _declared(results: dict, name: str) -> dict:
    """What results.json declares of a score (label, probability, the parts it fuses); {} if nothing."""
    return results.get("scores", {}).get(name, {})


def _label(results: dict, name: str) -> str:
    return _declared(results, name).get("label", name)


def _fused(results: dict) -> str | None:
    return FUSED if FUSED in results["auc"] else None


def _plotted_scores(results: dict) -> list[str]:
    """Every score of the run except a probability that does not enter the fused score."""
    fused = _fused(results)
    parts = set(_declared(results, fused).get("fuses", ())) if fused else set()
    return [name for name in results["auc"] if not _declared(results, name).get("probability") or name in parts]


def _fusion_note(results: dict) -> str:
    """Which of the plotted scores the fused score combines, as a reader of the plots needs to know."""
    parts = _declared(results, _fused(results)).get("fuses", ())
    return f" ({_label(results, _fused(results))} combines {' and '.join(_label(results, part) for part in parts)})"


def _curve_label(results: dict, name: str) -> str:
    """A score's label as plotted: probabilities and the fused score as they are, others min-max normalised."""
    if _declared(results, name).get("probability") or name == _fused(results):
        return _label(results, name)
    return f"{_label(results, name)}, min-max normalised"


def _videos_section(results: dict, plotted: list[str], out: Path) -> str:
    ranked = headline(results["auc"])
    parts = []
    for index, video in enumerate(results["videos"]):
        labels = np.asarray(video["labels"])
        curves, legend = {}, {}
        for name in plotted:
            values = np.asarray(video["scores"][name], dtype=float)
            curves[name] = values if _declared(results, name).get("probability") else minmax(values)
            auc = frame_auc([values], [labels])["macro"]
            legend[name] = f"{_curve_label(results, name)}\n(AUC {auc:.3f})" if auc is not None else _curve_label(results, name)
        auc = frame_auc([np.asarray(video["scores"][ranked])], [labels])["macro"]
        name = _label(results, ranked)
        auc_text = f"{name} AUC {auc:.3f}" if auc is not None else "no AUC: one class only in this video"
        image = f"videos/{index:03d}_{_slug(video['name'])}.png"
        title = f"test video {video['name']}: {auc_text}"
        plot_video_scores(out / image, title, labels, video["first_scored_frame"], curves, legend, _fused(results))
        parts.append(f"<img class=\"plot\" src=\"{_e(image)}\" alt=\"scores of test video {_e(video['name'])}\">")
    return (
        f"<h2>Scores of every test video ({len(results['videos'])})</h2><p class=\"note\">Per frame, high = normal: "
        + _e("; ".join(_curve_label(results, name) for name in plotted))
        + _e(_fusion_note(results) if _fused(results) in plotted else "")
        + ". Red: frames labelled anomalous; grey: the first frames, which have no score. The AUC in each legend is this "
        "video's alone.</p>" + "\n".join(parts)
    )


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def _worst_frames(results: dict, name: str) -> tuple[list[tuple], list[tuple]]:
    """(video index, frame index, score) of the lowest-scored normal and highest-scored anomalous frames,
    at most one per labelled interval (an event, or a stretch of normal frames between events), so that
    one long false alarm or miss does not fill the gallery with near-copies of one moment."""
    normal, anomalous = [], []
    for index, (video, scores) in enumerate(zip(results["videos"], _normalised(results, name))):
        labels = np.asarray(video["labels"], dtype=bool)
        for mask, found, worst in ((~labels, normal, np.argmin), (labels, anomalous, np.argmax)):
            for start, end in mask_runs(mask):
                offset = start + int(worst(scores[start:end]))
                found.append((index, video["first_scored_frame"] + offset, float(scores[offset])))
    normal.sort(key=lambda e: e[2])
    anomalous.sort(key=lambda e: -e[2])
    return normal[:WORST_FRAMES], anomalous[:WORST_FRAMES]


def _decode_clips(results: dict, wanted: list[tuple[int, int]], history: int) -> tuple[dict[tuple[int, int], list[np.ndarray]], str]:
    """The RGB frames at (video index, frame index) and the `history` frames before each, decoded from
    the dataset, or ({}, why not)."""
    try:
        dataset = load_dataset(Path(results["dataset"]), results["layout"],
                               Path(results["label_file"]) if results.get("label_file") else None)
    except PseudovadError as error:
        return {}, f"The frame images are not shown: the dataset cannot be read any more ({error})."
    expected = [(v["name"], v["first_scored_frame"] + len(v["labels"])) for v in results["videos"]]
    if [(v.name, v.num_frames) for v in dataset.test] != expected:
        return {}, f"The frame images are not shown: the test videos in {results['dataset']} no longer match the evaluated ones."
    clips = {}
    for video_index in sorted({v for v, _ in wanted}):
        needed = {f for v, f in wanted if v == video_index}
        recent: deque[np.ndarray] = deque(maxlen=history + 1)
        for frame_index, rgb in enumerate(iter_frames(dataset.test[video_index])):
            recent.append(rgb)
            if frame_index in needed:
                clips[video_index, frame_index] = list(recent)
            if frame_index >= max(needed):
                break
    return clips, ""


def _error_maps(run_dir: Path, clips: dict[tuple[int, int], list[np.ndarray]]) -> tuple[dict[tuple[int, int], np.ndarray], str]:
    """|prediction - frame| of each clip's last frame by the run's model, or ({}, why not)."""
    try:
        config, pipeline, _ = load_trained(run_dir)
        keys = [key for key, frames in clips.items() if len(frames) == config.data.clip_length + 1]
        data = config.data
        prepared = [[prepare_frame(rgb, data.height, data.width, data.channels) for rgb in clips[key]] for key in keys]
        maps = prediction_errors(pipeline, np.stack(prepared)) if keys else []
    except (PseudovadError, NotImplementedError) as error:
        return {}, f"No prediction-error maps: the run's model cannot make them ({error or 'it predicts no frame'})."
    return dict(zip(keys, maps)), ""


def _worst_frames_section(run_dir: Path, results: dict, out: Path) -> str:
    ranked = headline(results["auc"])
    normal, anomalous = _worst_frames(results, ranked)
    clips, problem = _decode_clips(results, [(v, f) for v, f, _ in normal + anomalous], results["clip_length"])
    maps, no_maps = _error_maps(run_dir, clips) if clips else ({}, "")
    score_name = _label(results, ranked)
    if ranked != _fused(results):
        score_name = f"normalised {score_name}"

    def picture(path: str, rgb: np.ndarray, alt: str) -> str:
        height = round(rgb.shape[0] * FRAME_WIDTH / rgb.shape[1])
        shrinking = rgb.shape[1] > FRAME_WIDTH
        small = cv2.resize(rgb, (FRAME_WIDTH, height), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_NEAREST)
        (out / "frames").mkdir(exist_ok=True)
        cv2.imwrite(str(out / path), cv2.cvtColor(small, cv2.COLOR_RGB2BGR))
        return f"<img src=\"{_e(path)}\" alt=\"{_e(alt)}\" width=\"{FRAME_WIDTH}\" height=\"{height}\">"

    def gallery(entries: list[tuple], kind: str) -> str:
        if not entries:
            return f"<p class=\"note\">No {kind} frames among the scored ones.</p>"
        figures = []
        for video_index, frame_index, score in entries:
            name = results["videos"][video_index]["name"]
            caption = f"video {name}, frame {frame_index}: labelled {kind}, {score_name} {score:.3f}"
            frames = clips.get((video_index, frame_index))
            images = ""
            if frames is not None:
                stem = f"frames/{kind}_{_slug(name)}_{frame_index:06d}"
                rgb = frames[-1]
                images = picture(f"{stem}.png", rgb, caption)
                error = maps.get((video_index, frame_index))
                if error is not None:
                    heat, _ = heat_map(error, (rgb.shape[1], rgb.shape[0]))
                    images += picture(f"{stem}_error.png", heat, f"prediction error of {caption}")
            figures.append(f"<figure>{images}<figcaption>{_e(caption)}</figcaption></figure>")
        return "<div class=\"frames\">" + "".join(figures) + "</div>"

    notes = "".join(f"<p class=\"note\">{_e(text)}</p>" for text in (problem, no_maps) if text)
    return (
        f"<h2>Where the {_e(score_name)} disagrees most with the labels</h2><p class=\"note\">Scores min-max normalised "
        "per video, high = normal (micro protocol); at most one frame per labelled interval (an event, or a stretch of "
        "normal frames between events). Under each frame, its prediction error |prediction - frame| as a heat map "
        f"(red at {HEAT_FULL_SCALE:g} of the intensity range or more): where the model saw something it could not predict.</p>"
        + notes
        + f"<h3>False alarms: the lowest-scored normal frames (at most {WORST_FRAMES})</h3>" + gallery(normal, "normal")
        + f"<h3>Misses: the highest-scored anomalous frames (at most {WORST_FRAMES})</h3>" + gallery(anomalous, "anomalous")
    )


def _gallery_section(run_dir: Path, out: Path) -> str:
    found = RunDir(run_dir).gallery_images()
    if not found:
        return ("<h2>Galleries over training</h2><p class=\"note\">The run saved no galleries "
                "(set train.gallery_at to the iterations to save).</p>")
    (out / "gallery").mkdir()
    parts = []
    for step, path in found:
        shutil.copy2(path, out / "gallery" / path.name)
        parts.append(f"<img class=\"plot\" src=\"gallery/{_e(path.name)}\" alt=\"gallery at iteration {step}\">")
    return (
        "<h2>Galleries over training</h2><p class=\"note\">The fixed training sample at iterations "
        f"{', '.join(str(step) for step, _ in found)} (each image is titled with its iteration): one row per clip, one "
        "column per image as the pipeline makes them (the last input, the target, the prediction, and for the "
        "pseudo-anomaly pipelines the pseudo-anomalies; flow error images show |F(last input, image) - F(last input, "
        "target)|, white at 2 px or more).</p>" + "\n".join(parts)
    )
