"""How PSNR and the critic are put on one scale before they are fused, asked of validation runs only.

The shipped fusion (evaluation/protocol.fuse) min-max normalises each score per video:
S = minmax(w minmax(PSNR) + (1 - w) minmax(critic)), w 0.7. Min-max lets the one most extreme frame of
a video set the scale of the whole video, and the critic's P(normal) is a sigmoid, so most of its
frames sit near 1 and a few far below. Three other rules are asked here, fixed before any was
computed:

- `logit`:  min-max as shipped, of the critic's logit log(p / (1 - p)) instead of p;
- `zscore`: each score standardised per video (mean 0, std 1), then w a + (1 - w) b;
- `rank`:   each score replaced by its rank within the video (0 to 1), then w a + (1 - w) b.

Each rule's weight is the one with the best mean micro AUC over the validation runs given. The rule,
written before the numbers: a rule replaces min-max only if, at its weight, its micro AUC is higher
than the shipped min-max at w 0.7 on **every** run given. No training: results.json keeps every
frame's scores, so each (rule, weight) is one more AUC over the same scores.

    python benchmarks/fusion_rule.py RUN ... --out benchmarks/results/validation_fusion_rule.json

Give only runs evaluated on validation data: a rule chosen here goes into the code, and choosing it on
a test set would be tuning on it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from scipy.stats import rankdata

from fusion_weight import WEIGHTS  # benchmarks/ is on the path of a script run from it

from pseudovad.evaluation.protocol import frame_auc, fuse

SHIPPED_WEIGHT = 0.7


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p.astype(np.float64), 1e-7, 1 - 1e-7)
    return np.log(p) - np.log1p(-p)


def _standard(x: np.ndarray) -> np.ndarray:
    std = x.std()
    return (x - x.mean()) / std if std > 0 else np.zeros_like(x, dtype=np.float64)


def _rank(x: np.ndarray) -> np.ndarray:
    return (rankdata(x) - 1) / max(len(x) - 1, 1)


RULES = {
    "minmax": lambda a, b, w: fuse(a, b, w),
    "logit": lambda a, b, w: fuse(a, _logit(b), w),
    "zscore": lambda a, b, w: w * _standard(a) + (1 - w) * _standard(b),
    "rank": lambda a, b, w: w * _rank(a) + (1 - w) * _rank(b),
}


def micro_auc(results: dict, rule: str, weight: float) -> float:
    videos = results["videos"]
    scores = [RULES[rule](np.asarray(v["scores"]["psnr"], np.float64), np.asarray(v["scores"]["classifier"], np.float64), weight)
              for v in videos]
    return frame_auc(scores, [np.asarray(v["labels"]) for v in videos])["micro"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path, help="evaluated run folders with a critic")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    results = {str(run): json.loads((run / "results.json").read_text()) for run in args.runs}
    weights = {rule: max(WEIGHTS, key=lambda w: np.mean([micro_auc(r, rule, w) for r in results.values()])) for rule in RULES}
    per_run = {run: {"psnr": micro_auc(r, "minmax", 1.0), "shipped": micro_auc(r, "minmax", SHIPPED_WEIGHT),
                     **{rule: micro_auc(r, rule, w) for rule, w in weights.items()}} for run, r in results.items()}
    summary = {}
    for rule in ["psnr", "shipped", *RULES]:
        values = np.array([aucs[rule] for aucs in per_run.values()])
        higher = int(sum(aucs[rule] > aucs["shipped"] for aucs in per_run.values()))
        summary[rule] = {"mean": float(values.mean()), "higher_than_shipped": f"{higher} of {len(per_run)}"}
        print(f"{rule:8s} w={weights.get(rule, '-')!s:4s} mean {values.mean():.4f}  higher than shipped on {higher} of {len(per_run)}")
    report = {"weights": weights, "shipped_weight": SHIPPED_WEIGHT, "runs": per_run, "summary": summary}
    args.out.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
