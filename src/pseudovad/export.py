"""`pseudovad export RUN`: the run's scorer as one self-contained file to deploy without pseudovad.

The file holds the predictor, the step from uint8 frames to the model's input range, the score, the
calibration's normalisation and the threshold: clips in, anomaly, flag and raw score out. TorchScript
needs only torch to run; ONNX (opset 17, with the optional onnx and onnxruntime packages) runs in any
ONNX runtime. What it expects (frame size, channels, clip length) and how the frames must be prepared
is stored inside it (`pseudovad.json`: a TorchScript extra file, an ONNX metadata property) and beside
it (`scorer.json`). Before it is kept, the written file is loaded back and must reproduce the run's
float32 scores within EXPORT_TOLERANCE.
"""

from __future__ import annotations

import copy
import json
import os
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from pseudovad import __version__
from pseudovad.detector import Detector, Normaliser
from pseudovad.errors import PseudovadError, RuntimeFailure
from pseudovad.runs import RunDir

EXPORT_TOLERANCE = 1e-3  # largest difference allowed between the export's scores and the run's (score units, float32)
SCORERS = {"torchscript": "scorer.torchscript.pt", "onnx": "scorer.onnx"}
DESCRIPTION = "scorer.json"
ONNX_OPSET = 17
Scorer = Callable[[np.ndarray], np.ndarray]  # a loaded export: clips -> scores


class ExportedScorer(nn.Module):
    """Prepared clips (B, clip_length + 1, H, W, C) uint8 -> (anomaly (B,) in [0, 1], flagged (B,) bool,
    score (B,) in the score's own units, high = normal)."""

    def __init__(self, network: nn.Module, normaliser: Normaliser) -> None:
        super().__init__()
        self.network, self.normaliser = network, normaliser

    def forward(self, clips: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        model_range = (clips.float() / 127.5 - 1.0).permute(0, 1, 4, 2, 3)
        score = self.network(model_range)
        return self.normaliser(score), score < self.normaliser.threshold, score


def export_run(run_dir: Path, fmt: str = "torchscript", false_alarm_rate: float | None = None) -> Path:
    """Write RUN/export/scorer.torchscript.pt (or scorer.onnx) and scorer.json; returns the scorer's path."""
    if fmt not in SCORERS:
        raise PseudovadError(f"--format {fmt}: choose one of {', '.join(SCORERS)}")
    detector = Detector(run_dir, false_alarm_rate)
    module = ExportedScorer(detector.pipeline.scoring_network(), copy.deepcopy(detector.normaliser)).cpu().eval()
    data = detector.config.data
    example = torch.from_numpy(np.random.default_rng(0).integers(
        0, 256, (2, data.clip_length + 1, data.height, data.width, data.channels), dtype=np.uint8))
    description = _description(detector)
    folder = RunDir(run_dir).exports
    folder.mkdir(parents=True, exist_ok=True)
    path, temporary = folder / SCORERS[fmt], folder / f".{SCORERS[fmt]}.tmp"
    try:
        with torch.no_grad(), warnings.catch_warnings():
            # Shape checks inside the networks become constants of the trace: the input size is fixed anyway.
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            loaded = _WRITERS[fmt](module, example, temporary, json.dumps(description))
            _verify(loaded, module, example)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    (folder / DESCRIPTION).write_text(json.dumps({**description, "file": SCORERS[fmt]}, indent=1) + "\n")
    return path


def _torchscript(module: nn.Module, example: Tensor, path: Path, description: str) -> Scorer:
    torch.jit.save(torch.jit.trace(module, example), str(path), _extra_files={"pseudovad.json": description})
    loaded = torch.jit.load(str(path))
    return lambda clips: loaded(torch.from_numpy(clips))[2].numpy()


def _onnx(module: nn.Module, example: Tensor, path: Path, description: str) -> Scorer:
    try:
        import onnx
        import onnxruntime
    except ImportError:
        raise PseudovadError("--format onnx needs the onnx and onnxruntime packages: pip install 'pseudovad[onnx]'") from None
    torch.onnx.export(module, (example,), str(path), input_names=["clips"], output_names=["anomaly", "flagged", "score"],
                      dynamic_axes={"clips": {0: "batch"}}, opset_version=ONNX_OPSET, dynamo=False)
    model = onnx.load(str(path))
    onnx.helper.set_model_props(model, {"pseudovad.json": description})
    onnx.save(model, str(path))
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return lambda clips: session.run(["score"], {"clips": clips})[0]


_WRITERS: dict[str, Callable[[nn.Module, Tensor, Path, str], Scorer]] = {"torchscript": _torchscript, "onnx": _onnx}


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
        "run": str(detector.run.resolve()),
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
            "flagged": "true when the score is below the threshold",
            "score": f"{detector.score_label} ({detector.score_name}), high = normal",
        },
        "threshold": detector.describe_threshold(),
        "tolerance": f"scores equal the run's float32 scores within {EXPORT_TOLERANCE:g} (checked when written); a run "
                     "trained with train.precision=bf16 scores under bfloat16 itself and differs by its rounding",
    }
