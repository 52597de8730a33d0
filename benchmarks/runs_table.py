"""Finished runs' AUCs side by side, seed by seed, for a comparison that is not one grid: runs trained
from different snapshots or folders, such as a new revision of a method against an earlier pair's
baseline (a grid would call the earlier revision's runs stale). Every number is read from the runs'
results.json and train_summary.json, never typed; a run with a fused calibration.json also gets its
deployed AUCs (benchmarks/calibrated_auc.py).

    python benchmarks/runs_table.py --row "FFP=runs/pair/ffp/seed0,runs/pair/ffp/seed1" \\
        --row "ped2_pseudo rev 3=runs/ped2_pseudo_rev3/seed0,runs/ped2_pseudo_rev3/seed1" --out benchmarks/results/NAME.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import yaml
from calibrated_auc import deployed_aucs  # benchmarks/ is on the path of a script run from it

from pseudovad.experiment import AUC_KEYS, summarise
from pseudovad.runs import RunDir, read_summary
from pseudovad.training.base import headline

SUMMARY_KEYS = ("seconds", "resumed_from", "cpu", "threads", "precision", "trained_on", "revisions")


def read_run(run: Path) -> dict:
    """What a finished run's folder says of its scores and of how it trained."""
    folder = RunDir(run)
    summary = read_summary(folder)
    try:
        results = json.loads(folder.results.read_text())
        seed = yaml.safe_load(folder.config.read_text())["train"]["seed"]
    except OSError as error:
        raise SystemExit(f"{run}: not a finished run ({error}); train it with --evaluate first")
    if summary is None:
        raise SystemExit(f"{run}: {folder.summary} is missing or damaged")
    entry = {"run": str(run), "seed": seed, "iteration": results["iteration"],
             "label_version": results["label_version"], "frames_scored": results["frames_scored"],
             "headline_score": headline(results["auc"]), "auc": results["auc"],
             **{key: summary.get(key) for key in SUMMARY_KEYS}}
    if (run / "calibration.json").exists() and len(results["auc"]) > 1:
        deployed = deployed_aucs(run)
        entry["deployed"] = {key: deployed[key] for key in AUC_KEYS}
    return entry


def row(runs: list[Path], name: str) -> dict:
    """The runs of one row and their means over seeds (the deployed AUCs as a score of their own)."""
    entries = [read_run(run) for run in runs]
    scored = [{"variant": name, "auc": {**e["auc"], **({"deployed": e["deployed"]} if "deployed" in e else {})}}
              for e in entries]
    return {"runs": entries, "mean": summarise(scored)[name]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--row", action="append", required=True, metavar="NAME=RUN,RUN,...",
                        help="a row: its name and its run folders, one a seed, in the same seed order in every row")
    parser.add_argument("--out", type=Path, required=True, help="JSON file to write")
    args = parser.parse_args()
    rows = {}
    for text in args.row:
        name, _, runs = text.partition("=")
        if not runs:
            raise SystemExit(f"--row {text!r}: give NAME=RUN,RUN,...")
        rows[name] = row([Path(run) for run in runs.split(",")], name)
    seeds = {name: [run["seed"] for run in r["runs"]] for name, r in rows.items()}
    if len({tuple(s) for s in seeds.values()}) > 1:
        raise SystemExit(f"the rows' seeds differ ({seeds}): give each row's runs in the same seed order")
    labels = sorted({run["label_version"] for r in rows.values() for run in r["runs"]})
    args.out.write_text(json.dumps({"label_versions": labels, "rows": rows}, indent=1) + "\n")
    for name, r in rows.items():
        score = r["runs"][0]["headline_score"]
        print(f"{name} ({score}): " + ", ".join(f"{key} {r['mean'][score][key]['mean']:.4f}" for key in AUC_KEYS
                                                if key in r["mean"][score]))


if __name__ == "__main__":
    main()
