"""`pseudovad report` on a tiny evaluated run: the page, its images, its provenance statement, the
published numbers, and (where Chromium is installed) that a browser renders it with every image."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from pseudovad.cli import main
from pseudovad.data.cache import prepare_frame
from pseudovad.data.decode import iter_frames
from pseudovad.data.labels import mask_runs
from pseudovad.data.layouts import load_dataset
from pseudovad.evaluation import evaluate as evaluate_module
from pseudovad.evaluation.protocol import operating_points
from pseudovad.reporting.plots import heat_map
from pseudovad.reporting.report import FRAME_WIDTH
from pseudovad.training.trained import load_trained
from pseudovad.reporting.published import PUBLISHED, detect_benchmark, published_for

CHROMIUM = Path("/usr/bin/chromium")
SCORES = ("psnr", "classifier", "classifier_abnormal", "combined")


@pytest.fixture(scope="module")
def run(tmp_path_factory, tiny_data):
    run = tmp_path_factory.mktemp("runs") / "two_branch"
    assert main([
        "train", "synthetic_two_branch", "--data", str(tiny_data), "--out", str(run), "--iterations", "3", "--evaluate",
        "--set", "data.height=32", "--set", "data.width=32", "--set", "generator.width=4", "--set", "generator.levels=3",
        "--set", "discriminator.width=4", "--set", "classifier.width=4", "--set", "train.gallery_at=[2]",
    ]) == 0
    return run


@pytest.fixture(scope="module")
def report(run):
    assert main(["report", str(run)]) == 0
    return run / "report" / "index.html"


def image_sources(page: Path) -> list[str]:
    return re.findall(r"<img [^>]*src=\"([^\"]+)\"", page.read_text())


def test_every_image_exists_beside_the_page(run, report):
    sources = image_sources(report)
    results = json.loads((run / "results.json").read_text())
    assert len([s for s in sources if s.startswith("videos/")]) == len(results["videos"])
    frames = [s for s in sources if s.startswith("frames/") and not s.endswith("_error.png")]
    assert len(frames) == 10  # 6 stretches of normal frames, 4 events: at most 6 of each
    assert sorted(s for s in sources if s.endswith("_error.png")) == sorted(s.replace(".png", "_error.png") for s in frames)
    assert "roc.png" in sources and "gallery/step_000002.png" in sources
    for source in sources:
        path = report.parent / source
        assert path.resolve().is_relative_to(report.parent.resolve()), source
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", source


def error_heat_image(run: Path, results: dict, video_index: int, frame: int) -> np.ndarray:
    """The heat image of the run's |prediction - frame| for `frame`, computed here from the dataset and
    the run's predictor, at the gallery's width."""
    config, pipeline, _ = load_trained(run)
    data, length = config.data, config.data.clip_length
    video = load_dataset(Path(results["dataset"]), results["layout"]).test[video_index]
    rgb = [image for index, image in enumerate(iter_frames(video)) if frame - length <= index <= frame]
    clip = torch.from_numpy(np.stack([prepare_frame(image, data.height, data.width, data.channels) for image in rgb]))
    model_range = clip.permute(0, 3, 1, 2)[None].float() / 127.5 - 1
    with torch.no_grad():
        error = (pipeline.predict(model_range) - model_range[:, -1]).abs().mean(dim=1)[0].div(2).numpy()
    heat, _ = heat_map(error, (rgb[-1].shape[1], rgb[-1].shape[0]))
    size = (FRAME_WIDTH, round(heat.shape[0] * FRAME_WIDTH / heat.shape[1]))
    return cv2.resize(heat, size, interpolation=cv2.INTER_AREA if heat.shape[1] > FRAME_WIDTH else cv2.INTER_NEAREST)


def test_the_gallery_shows_one_frame_per_labelled_interval_and_its_prediction_error(run, report):
    """Each gallery frame comes from another event or stretch of normal frames, and its error map
    is the run's |prediction - frame| (recomputed here from the dataset and the run's predictor)."""
    results = json.loads((run / "results.json").read_text())
    names = {video["name"]: video for video in results["videos"]}
    indices = {video["name"]: index for index, video in enumerate(results["videos"])}
    seen = set()
    for source in image_sources(report):
        match = re.fullmatch(r"frames/(normal|anomalous)_(\w+)_(\d+)\.png", source)
        if not match:
            continue
        kind, name, frame = match.group(1), match.group(2), int(match.group(3))
        video = names[name]
        labels = np.asarray(video["labels"], dtype=bool)
        offset = frame - video["first_scored_frame"]
        assert labels[offset] == (kind == "anomalous")
        interval = next(i for i, (start, end) in enumerate(mask_runs(labels == labels[offset])) if start <= offset < end)
        assert (name, kind, interval) not in seen, source
        seen.add((name, kind, interval))
        error_image = cv2.cvtColor(cv2.imread(str(report.parent / source.replace(".png", "_error.png"))), cv2.COLOR_BGR2RGB)
        expected = error_heat_image(run, results, indices[name], frame)
        assert error_image.shape == expected.shape
        assert np.abs(error_image.astype(int) - expected).mean() < 1.0, source  # the same map, up to batch rounding


def test_each_score_gets_its_operating_points(run, report, monkeypatch):
    """Each score's points are computed from that score: evaluating again, every call of operating_points
    gets the score results.json lists under that name (5 decimals there), and its answer is what is stored.
    The page shows them. PSNR's are also recomputed from the stored scores (in dB they do not tie)."""
    results = json.loads((run / "results.json").read_text())
    calls = []
    compute = evaluate_module.operating_points
    monkeypatch.setattr(evaluate_module, "operating_points",
                        lambda scores, labels: calls.append((np.concatenate(scores), compute(scores, labels))) or calls[-1][1])
    assert main(["evaluate", str(run)]) == 0
    assert len(calls) == len(results["operating_points"])
    for name, (given, answer) in zip(results["operating_points"], calls):
        stored = np.concatenate([np.asarray(video["scores"][name]) for video in results["videos"]])
        np.testing.assert_allclose(given, stored, rtol=0, atol=1e-5, err_msg=name)
        assert results["operating_points"][name] == pytest.approx(answer), name
    labels = [np.asarray(video["labels"]) for video in results["videos"]]
    rounded = operating_points([np.asarray(video["scores"]["psnr"]) for video in results["videos"]], labels)
    assert results["operating_points"]["psnr"] == pytest.approx(rounded, abs=0.01)
    text = report.read_text()
    assert "TPR at 1 % FPR" in text and "EER" in text
    for name in SCORES:
        points = results["operating_points"][name]
        assert 0 <= points["tpr_at_fpr_1"] <= points["tpr_at_fpr_5"] <= 1 and 0 <= points["eer"] <= 1
        cells = "".join(f"<td class=\"num\">{100 * points[key]:.2f}</td>" for key in ("tpr_at_fpr_1", "tpr_at_fpr_5", "eer"))
        assert cells in text


def test_the_page_is_self_contained_and_script_free(report):
    text = report.read_text()
    assert "<script" not in text.lower()
    assert not re.search(r"(src|href)=\"(https?:)?//", text)


def test_the_page_states_labels_protocol_budget_and_every_score(run, report):
    text = report.read_text()
    results = json.loads((run / "results.json").read_text())
    summary = json.loads((run / "train_summary.json").read_text())
    for needed in (results["label_version"], results["label_file"], results["protocol"]):
        assert needed.replace("&", "&amp;") in text
    assert "iterations trained</td><td class=\"num\">3<" in text
    assert f"{summary['seconds']:.1f} s" in text
    assert text.count("<tr class=\"measured\"><td>measured here") == len(SCORES)
    assert f"{100 * results['auc']['combined']['micro']:.2f}" in text
    for kind in ("running", "vehicle", "thrown_object", "wrong_way"):
        assert f"<th>{kind}</th>" in text
    assert "No published numbers" in text and "class=\"published\"" not in text


def test_the_micro_auc_loss_is_traced_to_the_videos_and_adds_up(run, report):
    results = json.loads((run / "results.json").read_text())
    section = report.read_text().split("<h2>Where the micro AUC is lost</h2>")[1].split("<h2>")[0]
    assert "fused score" in section  # the headline score is the one explained
    rows = re.findall(r"<tr class=\"measured\"><td>([^<]*)</td><td class=\"num\">(\d+)</td><td class=\"num\">(\d+)</td>"
                      r"<td class=\"num\">([\d.]+)</td><td>(yes|)</td></tr>", section)
    assert [row[0] for row in rows] == [video["name"] for video in results["videos"]]
    for (_, anomalous, scored, _, throughout), video in zip(rows, results["videos"]):
        assert (int(anomalous), int(scored)) == (sum(video["labels"]), len(video["labels"]))
        assert (throughout == "yes") == (min(video["labels"]) == 1)
    lost = 100 * (1 - results["auc"]["combined"]["micro"])
    assert sum(float(row[3]) for row in rows) == pytest.approx(lost, abs=0.005 * len(rows))


def test_a_recognised_benchmark_gets_its_published_numbers_and_a_gone_dataset_is_said(run, tmp_path):
    copy = tmp_path / "ped2_run"
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns("report", "checkpoints", "tensorboard"))
    results = json.loads((copy / "results.json").read_text())
    results.update(dataset=str(tmp_path / "data" / "ped2"), label_file=str(tmp_path / "data" / "ped2" / "ped2.mat"))
    (copy / "results.json").write_text(json.dumps(results))
    assert main(["report", str(copy)]) == 0
    text = (copy / "report" / "index.html").read_text()
    assert "Dataset recognised as UCSD Ped2" in text
    assert text.count("<tr class=\"published\"><td>published</td><td>") == len(published_for("ped2"))
    assert "<td>FFP</td><td class=\"num\">95.4</td>" in text and "Liu et al., Future Frame Prediction" in text
    assert "dataset cannot be read any more" in text
    assert not [s for s in image_sources(copy / "report" / "index.html") if s.startswith("frames/")]


def test_a_pipeline_without_psnr_gets_a_report_of_its_own_score(run, tmp_path):
    """Other pipelines (OGNet: D(G(x))) have other score names; the page plots and ranks by them."""
    copy = tmp_path / "other_run"
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns("report", "checkpoints", "tensorboard"))
    results = json.loads((copy / "results.json").read_text())
    results["auc"] = {"ognet": results["auc"]["psnr"]}
    results["auc_per_kind"] = {"ognet": results["auc_per_kind"]["psnr"]}
    for video in results["videos"]:
        video["scores"] = {"ognet": video["scores"]["psnr"]}
    (copy / "results.json").write_text(json.dumps(results))
    assert main(["report", str(copy)]) == 0
    page = copy / "report" / "index.html"
    assert "Where the normalised ognet disagrees most" in page.read_text()
    assert all((page.parent / source).is_file() for source in image_sources(page))


def test_missing_results_asks_for_evaluate_first(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    assert f"run `pseudovad evaluate {tmp_path}` first" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("dataset", "label_file", "expected"),
    [
        ("/data/ped2", "/data/ped2/frame_labels_ped2.npy", "ped2"),
        ("/data/UCSD_Anomaly_Dataset.v1p2/UCSDped1", None, "ped1"),
        ("/data/mine", "/data/mine/frame_labels_avenue.npy", "avenue"),
        ("/datasets/Avenue Dataset", "/datasets/Avenue Dataset/testing_label_mask", "avenue"),
        ("/data/shanghaitech/frames", None, "shanghaitech"),
        ("/data/my_footage", None, None),
    ],
)
def test_detect_benchmark(dataset, label_file, expected):
    assert detect_benchmark(dataset, label_file) == expected


def test_the_synthetic_scene_is_no_benchmark_and_every_published_number_has_a_source(run):
    results = json.loads((run / "results.json").read_text())
    assert detect_benchmark(results["dataset"], results["label_file"]) is None
    assert {entry.benchmark for entry in PUBLISHED} == {"ped1", "ped2", "avenue", "shanghaitech"}
    assert all(entry.paper and "ANCHORS.md" in entry.source and 0 < entry.auc < 100 for entry in PUBLISHED)


def chromium(*arguments: str, profile: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={profile}", *arguments],
        capture_output=True, text=True, timeout=120,
    )


@pytest.mark.skipif(not CHROMIUM.exists(), reason="Chromium is not installed (.ci/run installs it)")
def test_headless_chromium_renders_the_page_with_every_image_loaded(report, tmp_path):
    screenshot = tmp_path / "page.png"
    size = ["--hide-scrollbars", "--window-size=1200,3000"]
    chromium(*size, f"--screenshot={screenshot}", report.as_uri(), profile=tmp_path / "profile")
    assert screenshot.stat().st_size > 50_000
    probe = report.with_name("probe.html")
    count = "Array.from(document.images).filter(i => !i.complete || i.naturalWidth === 0).length"
    script = (f"<script>window.addEventListener('load', () => {{ document.title = "
              f"'images ' + document.images.length + ' broken ' + {count}; }});</script>")
    probe.write_text(report.read_text().replace("</body>", script + "</body>"))
    try:
        dom = chromium("--dump-dom", probe.as_uri(), profile=tmp_path / "profile").stdout
    finally:
        probe.unlink()
    assert re.search(r"<title>images (\d+) broken 0</title>", dom), dom[:500]
    assert int(re.search(r"<title>images (\d+)", dom).group(1)) == len(image_sources(report))


def test_names_from_files_are_shown_literally_in_the_page_and_the_plots(tmp_path, capsys):
    """A test video named like HTML and like matplotlib math: the page escapes it, the plots show it."""
    from helpers import TINY_SET, make_dataset

    data = make_dataset(tmp_path / "data")
    odd = "$x^{2$<b>"
    (data / "testing" / "frames" / "01").rename(data / "testing" / "frames" / odd)
    run = tmp_path / "run"
    assert main(["train", "synthetic_ffp", "--data", str(data), "--out", str(run), *TINY_SET, "--iterations", "2", "--evaluate"]) == 0
    assert main(["report", str(run)]) == 0
    page = (run / "report" / "index.html").read_text()
    assert odd not in page and "$x^{2$&lt;b&gt;" in page
    assert any(path.name.startswith("001_") or path.name.startswith("000_") for path in (run / "report" / "videos").iterdir())


@pytest.mark.skipif(not CHROMIUM.exists(), reason="Chromium is not installed (.ci/run installs it)")
def test_headless_chromium_plays_the_annotated_video(run, tiny_data, tmp_path):
    """`score --video` writes H.264 that a browser decodes: a <video> element reaches readyState 2
    (HAVE_CURRENT_DATA) or more, with no media error (MPEG-4 Part 2 failed here with DEMUXER_ERROR)."""
    out = tmp_path / "scored"
    assert main(["score", str(tiny_data / "testing" / "frames" / "01"), "--run", str(run), "--out", str(out), "--video"]) == 0
    probe = out / "probe.html"
    probe.write_text(
        "<html><head><title>waiting</title></head><body><video id=\"v\" src=\"annotated.mp4\" muted preload=\"auto\"></video>"
        "<script>const v = document.getElementById('v'); const done = () => { document.title = 'readyState ' + "
        "v.readyState + ' error ' + (v.error ? v.error.code : 'none'); }; v.addEventListener('loadeddata', done); "
        "v.addEventListener('error', done);</script></body></html>"
    )
    dom = chromium("--virtual-time-budget=10000", "--dump-dom", probe.as_uri(), profile=tmp_path / "profile").stdout
    state = re.search(r"<title>readyState (\d) error (\w+)</title>", dom)
    assert state, dom[:500]
    assert int(state.group(1)) >= 2 and state.group(2) == "none", state.group(0)
