"""Where a run's micro AUC is lost, video by video: each video's share of 1 - micro AUC
(evaluation.protocol.micro_auc_shortfall), from the per-frame scores results.json keeps. Diagnostic
only: it reads test labels, so it explains numbers and chooses nothing.

    python benchmarks/micro_auc_shortfall.py RUN [RUN ...] [--score NAME] --out benchmarks/results/NAME.json

Each run is scored by its headline score (the fused one where it has one) unless --score names
another. Videos with no normal frame (anomalous throughout) are marked, since min-max puts their
least anomalous frame at the top of the normal scale whatever the detector sees.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from pseudovad.evaluation.protocol import frame_auc, micro_auc_shortfall
from pseudovad.training.base import headline


def shortfall(run: Path, score: str | None) -> dict:
    results = json.loads((run / "results.json").read_text())
    name = score or headline(results["auc"])
    if name not in results["auc"]:
        raise SystemExit(f"{run}: no score '{name}' in results.json; it has {', '.join(results['auc'])}")
    scores = [np.asarray(video["scores"][name], dtype=np.float64) for video in results["videos"]]
    labels = [np.asarray(video["labels"]) for video in results["videos"]]
    shares = micro_auc_shortfall(scores, labels)
    whole = [label.min() == 1 for label in labels]  # anomalous in every scored frame
    throughout = [video["name"] for video, anomalous in zip(results["videos"], whole) if anomalous]
    lost_throughout = sum(share for share, anomalous in zip(shares, whole) if anomalous)
    return {
        "score": name,
        "micro": frame_auc(scores, labels)["micro"],
        "shortfall": {video["name"]: round(share, 6) for video, share in zip(results["videos"], shares)},
        "anomalous_throughout": throughout,
        "shortfall_anomalous_throughout": round(lost_throughout, 6),
        "label_version": results["label_version"],
        "iteration": results["iteration"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path, help="evaluated run folders (holding results.json)")
    parser.add_argument("--score", help="the score to explain (default: each run's headline score)")
    parser.add_argument("--out", type=Path, required=True, help="JSON file to write")
    args = parser.parse_args()
    per_run = {str(run): shortfall(run, args.score) for run in args.runs}
    args.out.write_text(json.dumps(per_run, indent=1) + "\n")
    for run, entry in per_run.items():
        top = sorted(entry["shortfall"].items(), key=lambda item: -item[1])[:4]
        print(f"{run} ({entry['score']}): micro {entry['micro']:.4f}; lost in videos anomalous throughout "
              f"{entry['shortfall_anomalous_throughout']:.4f}; largest: " + ", ".join(f"{v} {s:.4f}" for v, s in top))


if __name__ == "__main__":
    main()
