"""The AUCs of a run's deployed score: the score `pseudovad score` and `Detector` flag by, which maps
each part of a fused score by fixed ranges from the training data (calibration.json) instead of by
each test video's own minimum and maximum. Its `micro_raw` is therefore an un-normalised AUC of the
fused score, which the evaluation protocol cannot give (its fusion min-maxes every video).

    pseudovad calibrate RUN            # writes RUN/calibration.json from training data only
    python benchmarks/calibrated_auc.py RUN [RUN ...] --out benchmarks/results/NAME.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from pseudovad.calibration import CalibratedFusion, read_calibration
from pseudovad.evaluation.protocol import frame_auc
from pseudovad.experiment import summarise


def deployed_aucs(run: Path) -> dict:
    """frame_auc of the calibrated fused score over the per-frame scores that results.json keeps."""
    results = json.loads((run / "results.json").read_text())
    calibration = read_calibration(run, results["iteration"])
    if calibration is None or "fusion" not in calibration:
        raise SystemExit(f"{run}: no fused calibration.json; run `pseudovad calibrate {run}` (a run with a fused score)")
    fusion = CalibratedFusion.from_calibration(calibration["fusion"])
    scores = []
    for video in results["videos"]:
        columns = np.stack([video["scores"][part] for part in calibration["fusion"]["parts"]], axis=1)
        scores.append(fusion(torch.tensor(columns, dtype=torch.float32)).numpy())
    return {**frame_auc(scores, [np.asarray(v["labels"]) for v in results["videos"]]),
            "fusion": calibration["fusion"], "label_version": results["label_version"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path, help="evaluated and calibrated run folders")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    per_run = {str(run): deployed_aucs(run) for run in args.runs}
    summary = summarise([{"variant": "deployed", "auc": {"fused": aucs}} for aucs in per_run.values()])["deployed"]["fused"]
    args.out.write_text(json.dumps({"runs": per_run, "summary": summary}, indent=1) + "\n")
    for key, value in summary.items():
        print(f"{key}: {value['mean']:.4f} ± {value['std']:.4f}")


if __name__ == "__main__":
    main()
