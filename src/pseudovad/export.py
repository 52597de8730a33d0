"""`pseudovad export RUN`: the run's scorer as one self-contained file to deploy without pseudovad.

The file holds the predictor, the step from uint8 frames to the model's input range, the score, the
calibration's normalisation and the threshold: clips in, anomaly, flag and raw score out. Three formats:

- `pt2` (default): a `torch.export` program, loaded by `torch.export.load(path).module()`; needs only torch.
- `onnx`: the same graph through torch's `torch.export`-based ONNX exporter (opset 18); runs in any ONNX
  runtime. Writing it needs the optional onnx, onnxscript and onnxruntime packages.
- `torchscript`: for LibTorch (C++) deployments only. PyTorch deprecates TorchScript (torch 2.13's
  `torch.jit` warns so), so it is no longer the default, and it goes when torch drops it.

Every format takes any batch size. What the file expects (frame size, channels, clip length) and how the
frames must be prepared is stored inside it (`pseudovad.json`: an extra file of the .pt2 or TorchScript
archive, an ONNX metadata property) and beside it (`scorer.pt2.json` and so on: one per format, as each
may hold another threshold). Before it is kept, the written file is
loaded back and must reproduce the run's float32 scores within EXPORT_TOLERANCE, at a batch size other
than the one it was traced with.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from pseudovad import __version__
from pseudovad.alerts import DEFAULT_FPS, AlertRules
from pseudovad.data.clips import tensor_to_model_range
from pseudovad.detector import Combiner, Detector, Normaliser
from pseudovad.errors import PseudovadError, RuntimeFailure
from pseudovad.files import write_json
from pseudovad.interrupts import whole_unit
from pseudovad.runs import RunDir, check_writable

EXPORT_TOLERANCE = 1e-3  # largest difference allowed between the export's scores and the run's (score units, float32)
SCORERS = {"pt2": "scorer.pt2", "onnx": "scorer.onnx", "torchscript": "scorer.torchscript.pt"}
ONNX_OPSET = 18  # the lowest opset torch's torch.export-based ONNX exporter writes without down-converting
Scorer = Callable[[np.ndarray], np.ndarray]  # a loaded export: clips -> scores


class ExportedScorer(nn.Module):
    """Prepared clips (B, clip_length + 1, H, W, C) uint8 -> (anomaly (B,) in [0, 1], flagged (B,) bool,
    score (B,) in the score's own units, high = normal). The network gives the deployed scores as
    columns; the combiner makes the one score flagged by (the first, or their calibrated fusion)."""

    def __init__(self, network: nn.Module, combiner: Combiner, normaliser: Normaliser) -> None:
        super().__init__()
        self.network, self.combiner, self.normaliser = network, combiner, normaliser

    def forward(self, clips: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        score = self.combiner(self.network(tensor_to_model_range(clips)))
        return self.normaliser(score), score < self.normaliser.threshold, score


def export_run(run_dir: Path, fmt: str = "pt2", false_alarm_rate: float | None = None) -> Path:
    """Write RUN/export/scorer.pt2 (or scorer.onnx, scorer.torchscript.pt) and its description beside it
    (description_path); returns the scorer's path."""
    if fmt not in SCORERS:
        raise PseudovadError(f"--format {fmt}: choose one of {', '.join(SCORERS)}")
    if not RunDir(run_dir).calibration.is_file():
        raise PseudovadError(f"{run_dir}: no calibration.json, whose threshold an export holds; run `pseudovad calibrate "
                             f"{run_dir}` (it needs the training data)")
    detector = Detector(run_dir, false_alarm_rate)
    module = ExportedScorer(detector.pipeline.scoring_network(), copy.deepcopy(detector.combiner),
                            copy.deepcopy(detector.normaliser)).cpu().eval()
    data = detector.config.data
    shape = (data.clip_length + 1, data.height, data.width, data.channels)
    example, check = _random_clips(2, shape, seed=0), _random_clips(3, shape, seed=1)  # traced with 2, checked with 3
    description = _description(detector)
    check_writable(run_dir)
    folder = RunDir(run_dir).exports
    folder.mkdir(parents=True, exist_ok=True)
    path, temporary = folder / SCORERS[fmt], folder / f".tmp.{SCORERS[fmt]}"  # the suffix tells torch.export the format
    temporary.unlink(missing_ok=True)  # what a killed export left, or a planted link: the writers would follow it
    try:
        with torch.no_grad():
            loaded = _WRITERS[fmt](module, example, temporary, json.dumps(description))
            _verify(loaded, module, check)
        with whole_unit():  # the scorer and its description are replaced together, or neither is
            os.replace(temporary, path)
            write_json({**description, "file": SCORERS[fmt]}, description_path(path))
    finally:
        temporary.unlink(missing_ok=True)
    return path


def description_path(scorer: Path) -> Path:
    """Where the description of an exported scorer is written: beside it, one per format."""
    return scorer.with_name(scorer.name.removesuffix(".pt") + ".json")


def _random_clips(batch: int, shape: tuple[int, ...], seed: int) -> Tensor:
    return torch.from_numpy(np.random.default_rng(seed).integers(0, 256, (batch, *shape), dtype=np.uint8))


def _exported(module: nn.Module, example: Tensor) -> torch.export.ExportedProgram:
    """The scorer's graph with the batch dimension left free (frame size and clip length are fixed)."""
    return torch.export.export(module, (example,), dynamic_shapes={"clips": {0: torch.export.Dim("batch", min=1)}})


def _pt2(module: nn.Module, example: Tensor, path: Path, description: str) -> Scorer:
    torch.export.save(_exported(module, example), str(path), extra_files={"pseudovad.json": description})
    loaded = torch.export.load(str(path)).module()
    return lambda clips: loaded(torch.from_numpy(clips))[2].numpy()


def _torchscript(module: nn.Module, example: Tensor, path: Path, description: str) -> Scorer:
    with warnings.catch_warnings():  # deprecated by PyTorch, kept for LibTorch: the module docstring says so
        warnings.simplefilter("ignore", DeprecationWarning)
        # Shape checks inside the networks become constants of the trace: the input size is fixed anyway.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        torch.jit.save(torch.jit.trace(module, example), str(path), _extra_files={"pseudovad.json": description})
        loaded = torch.jit.load(str(path))
    return lambda clips: loaded(torch.from_numpy(clips))[2].numpy()


def _onnx(module: nn.Module, example: Tensor, path: Path, description: str) -> Scorer:
    try:
        import onnx
        import onnxruntime
        import onnxscript  # noqa: F401  (torch's ONNX exporter needs it)
    except ImportError:
        raise PseudovadError("--format onnx needs the onnx, onnxscript and onnxruntime packages: "
                             "pip install 'pseudovad[onnx]'") from None
    exporter_log = logging.getLogger("torch.onnx")
    level = exporter_log.level
    exporter_log.setLevel(logging.ERROR)  # it lists torchvision's operators it skips: nothing a scorer uses
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch's own internals, not ours to act on
            program = torch.onnx.export(_exported(module, example), input_names=["clips"],
                                        output_names=["anomaly", "flagged", "score"], opset_version=ONNX_OPSET,
                                        dynamo=True, verbose=False)
    finally:
        exporter_log.setLevel(level)
    program.save(str(path))
    model = onnx.load(str(path))
    onnx.helper.set_model_props(model, {"pseudovad.json": description})
    onnx.save(model, str(path))
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return lambda clips: session.run(["score"], {"clips": clips})[0]


_WRITERS: dict[str, Callable[[nn.Module, Tensor, Path, str], Scorer]] = {"pt2": _pt2, "onnx": _onnx, "torchscript": _torchscript}


def _verify(loaded: Scorer, module: nn.Module, example: Tensor) -> None:
    """The written file, loaded back, must score the example as the module it came from does."""
    expected = module(example)[2].numpy()
    difference = float(np.abs(expected - loaded(example.numpy())).max())
    if not difference <= EXPORT_TOLERANCE:
        raise RuntimeFailure(f"the exported scorer differs from the run by {difference:g} (more than {EXPORT_TOLERANCE:g}); "
                             "nothing was written")


def _description(detector: Detector) -> dict:
    """What a deployment needs to know to feed the scorer and read its outputs."""
    data = detector.config.data
    return {
        "made_by": f"pseudovad {__version__}",
        "run": detector.run.resolve().name,  # the folder's name only: the file is shipped elsewhere
        "iteration": detector.iteration,
        "input": {
            "name": "clips", "dtype": "uint8", "shape": ["batch", data.clip_length + 1, data.height, data.width, data.channels],
            "meaning": f"{data.clip_length} consecutive frames and the frame to score, oldest first",
            "prepare": (f"decode to RGB, resize to {data.width}x{data.height} (OpenCV INTER_AREA when shrinking, INTER_LINEAR "
                        "when enlarging)" + (", convert to grey (OpenCV RGB2GRAY)" if data.channels == 1 else "")
                        + "; this is pseudovad.data.cache.prepare_frame"),
        },
        "outputs": {
            "anomaly": "0 to 1, high = anomalous, 0.5 at the threshold",
            "flagged": "true when the score is below the threshold: one frame, before the alert rule (below)",
            "score": f"{detector.score_label} ({detector.score_name}), high = normal",
        },
        "threshold": detector.describe_threshold(),
        "alerts": {**AlertRules().describe(DEFAULT_FPS), "fps": DEFAULT_FPS,
                   "note": f"how `pseudovad score` and `live` turn anomalies into alerts by default, here in frames at "
                           f"{DEFAULT_FPS:g} fps: at another frame rate keep the seconds; `segments.json` states the rule a "
                           "score or live run applied"},
        "tolerance": f"scores equal the run's float32 scores within {EXPORT_TOLERANCE:g} (checked when written); a run "
                     "trained with train.precision=bf16 scores under bfloat16 itself and differs by its rounding",
    }
