"""Run a grid of configs (same base, same budget, same seeds) and tabulate their AUCs.

A grid is YAML:

    base: ped2_ffp                  # packaged config name or YAML path
    seeds: [0, 1]
    overrides: {train.iterations: 4000}   # applied to every variant (optional)
    variants:
      ffp: {}
      no_flow: {loss.flow: 0}

Each (variant, seed) trains in OUT/<variant>/seed<k> through the `pseudovad train` command in a
subprocess, so runs can go in parallel (`jobs`) with their threads split between them, and a grid
that was interrupted continues where it stopped: finished runs are kept, started runs resume.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from pseudovad.config import load_config, resolve_config_path
from pseudovad.errors import ConfigError, PseudovadError
from pseudovad.training.loop import CHECKPOINT_NAME

AUC_KEYS = ("micro", "micro_raw", "macro")


@dataclass
class Grid:
    base: Path
    seeds: list[int]
    overrides: dict
    variants: dict[str, dict]


def load_grid(path: Path) -> Grid:
    """Read and validate a grid file; every variant's config is checked before anything trains."""
    try:
        values = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as error:
        raise ConfigError(f"{path}: cannot read grid: {error}") from None
    unknown = set(values) - {"base", "seeds", "overrides", "variants"}
    if unknown or "base" not in values or not values.get("variants"):
        raise ConfigError(f"{path}: a grid needs 'base' and 'variants' (optional: seeds, overrides); unknown: {sorted(unknown)}")
    beside_grid = Path(path).parent / str(values["base"])
    base_path = beside_grid if beside_grid.is_file() else resolve_config_path(values["base"])
    grid = Grid(base_path, list(values.get("seeds", [0])), values.get("overrides") or {}, values["variants"])
    for name, overrides in grid.variants.items():
        load_config(grid.base, list({**grid.overrides, **(overrides or {})}.items()))
    return grid


def _run_one(grid: Grid, name: str, seed: int, data: Path, out: Path, threads: int) -> dict:
    run = out / name / f"seed{seed}"
    results = run / "results.json"
    if not results.exists():
        overrides = {**grid.overrides, **(grid.variants[name] or {})}
        command = [sys.executable, "-m", "pseudovad", "train", str(grid.base), "--out", str(run), "--data", str(data),
                   "--seed", str(seed), "--evaluate"]
        for key, value in overrides.items():
            command += ["--set", f"{key}={json.dumps(value)}"]
        if (run / CHECKPOINT_NAME).exists():
            command.append("--resume")
        env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
        log = run.parent / f"seed{seed}.log"
        run.parent.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        with open(log, "a") as handle:
            code = subprocess.call(command, env=env, stdout=handle, stderr=subprocess.STDOUT)
        if code != 0:
            raise PseudovadError(f"run {name} seed {seed} failed (exit {code}); see {log}")
        (run / "wall_seconds.txt").write_text(f"{time.perf_counter() - started:.1f}\n")
    content = json.loads(results.read_text())
    summary = json.loads((run / "train_summary.json").read_text())
    return {"variant": name, "seed": seed, "auc": content["auc"], "auc_per_kind": content.get("auc_per_kind", {}),
            "label_version": content["label_version"], "iterations": summary["iterations"],
            "train_seconds": summary["seconds"]}


def run_grid(grid_path: Path, data: Path, out: Path, jobs: int = 1) -> dict:
    """Train and evaluate every (variant, seed); write OUT/experiment.json and OUT/experiment.md."""
    grid = load_grid(grid_path)
    out.mkdir(parents=True, exist_ok=True)
    threads = max(1, (os.cpu_count() or 1) // jobs)
    tasks = [(name, seed) for name in grid.variants for seed in grid.seeds]
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        runs = list(pool.map(lambda task: _run_one(grid, task[0], task[1], data, out, threads), tasks))
    table = summarise(runs)
    report = {"grid": str(grid_path), "base": str(grid.base), "data": str(data), "seeds": grid.seeds,
              "overrides": grid.overrides, "variants": grid.variants, "runs": runs, "summary": table}
    (out / "experiment.json").write_text(json.dumps(report, indent=1))
    (out / "experiment.md").write_text(markdown_table(table, runs))
    return report


def summarise(runs: list[dict]) -> dict:
    """Mean and standard deviation over seeds of every AUC, per variant and score."""
    table: dict[str, dict] = {}
    for run in runs:
        for score, aucs in run["auc"].items():
            for key in AUC_KEYS:
                if aucs.get(key) is not None:
                    table.setdefault(run["variant"], {}).setdefault(score, {}).setdefault(key, []).append(aucs[key])
    return {
        variant: {score: {key: {"mean": float(np.mean(v)), "std": float(np.std(v)), "n": len(v)} for key, v in keys.items()}
                  for score, keys in scores.items()}
        for variant, scores in table.items()
    }


def markdown_table(table: dict, runs: list[dict]) -> str:
    label_versions = sorted({run["label_version"] for run in runs})
    lines = [f"Labels: {', '.join(label_versions)}. Mean ± std over seeds; fixed iteration budget, last checkpoint.", "",
             "| variant | score | micro AUC | micro raw | macro AUC | train s |", "|---|---|---|---|---|---|"]
    for variant, scores in table.items():
        seconds = np.mean([run["train_seconds"] for run in runs if run["variant"] == variant])
        for score, keys in scores.items():
            cells = [f"{keys[k]['mean']:.4f} ± {keys[k]['std']:.4f}" if k in keys else "-" for k in AUC_KEYS]
            lines.append(f"| {variant} | {score} | {' | '.join(cells)} | {seconds:.0f} |")
    return "\n".join(lines) + "\n"
