"""Choose the weight w of a fused score S = minmax(w minmax(PSNR) + (1 - w) minmax(critic)) on
validation runs, without retraining: results.json keeps every frame's scores, so each w is one more
AUC over the same scores.

    python benchmarks/fusion_weight.py runs/ntp_critic/scene*/critic_local/seed0 --out benchmarks/results/fusion_weight.json

Give only runs evaluated on validation data (other scene seeds, held-out training videos): the
weight chosen here goes into a config, and choosing it on a test set would be tuning on it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from pseudovad.evaluation.protocol import frame_auc, fuse

WEIGHTS = [round(w, 2) for w in np.linspace(0, 1, 11)]


def micro_auc(results: dict, weight: float, parts: tuple[str, str]) -> float:
    scores = [fuse(np.asarray(v["scores"][parts[0]]), np.asarray(v["scores"][parts[1]]), weight) for v in results["videos"]]
    return frame_auc(scores, [np.asarray(v["labels"]) for v in results["videos"]])["micro"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path, help="evaluated run folders (validation data only)")
    parser.add_argument("--parts", nargs=2, default=["psnr", "classifier"], help="the two scores fused")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    per_run = {}
    for run in args.runs:
        results = json.loads((run / "results.json").read_text())
        per_run[str(run)] = {w: micro_auc(results, w, tuple(args.parts)) for w in WEIGHTS}
    mean = {w: float(np.mean([aucs[w] for aucs in per_run.values()])) for w in WEIGHTS}
    best = max(WEIGHTS, key=lambda w: mean[w])
    report = {"parts": args.parts, "runs": per_run, "mean_micro": mean, "chosen_weight": best,
              "note": "w = 1 is the first score alone, w = 0 the second alone"}
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(" ".join(f"w={w}:{mean[w]:.4f}" for w in WEIGHTS))
    print(f"chosen w = {best} (mean micro AUC {mean[best]:.4f} over {len(per_run)} validation runs) -> {args.out}")


if __name__ == "__main__":
    main()
