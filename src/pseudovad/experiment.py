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
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pseudovad.config import config_to_dict, load_config, read_yaml, resolve_config_path, short_repr
from pseudovad.errors import ConfigError, PseudovadError
from pseudovad.runs import RunDir

AUC_KEYS = ("micro", "micro_raw", "macro")


@dataclass
class Grid:
    base: Path
    seeds: list[int]
    overrides: dict
    variants: dict[str, dict]

    def variant_overrides(self, name: str) -> list[tuple[str, object]]:
        return list({**self.overrides, **(self.variants[name] or {})}.items())

    def resolved(self, name: str, seed: int, data: Path) -> dict:
        """The full config that (variant, seed) trains with, as saved in its run's config.yaml."""
        overrides = [*self.variant_overrides(name), ("data.root", str(data)), ("train.seed", seed)]
        return config_to_dict(load_config(self.base, overrides))


def _check_definition(grid: Grid, name: str, seed: int, data: Path, run: RunDir) -> None:
    """Refuse to reuse (or resume) a run whose saved config is not what the grid now defines."""
    if not run.config.is_file():
        return
    saved = read_yaml(run.config.read_text(), str(run.config))
    wanted = grid.resolved(name, seed, data)
    changed = sorted(key for key in _flat(wanted).keys() | _flat(saved).keys() if _flat(wanted).get(key) != _flat(saved).get(key))
    if changed:
        raise PseudovadError(
            f"variant '{name}' seed {seed}: {run.path} was trained with another definition (differs in "
            f"{', '.join(changed[:6])}{' ...' if len(changed) > 6 else ''}); rename the variant, or delete that "
            "run folder to train it again"
        )


def _flat(values: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in values.items():
        out.update(_flat(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}": value})
    return out


# A variant's name becomes a folder: letters, digits, '_', '-' and '.', not starting with '.'.
VARIANT_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}")


def load_grid(path: Path) -> Grid:
    """Read and validate a grid file; every variant's config is checked before anything trains."""
    try:
        text = Path(path).read_text()
    except OSError as error:
        raise ConfigError(f"{path}: cannot read grid: {error}") from None
    values = read_yaml(text, str(path)) or {}
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: a grid is a mapping with 'base' and 'variants'")
    unknown = set(values) - {"base", "seeds", "overrides", "variants"}
    if unknown or "base" not in values or not isinstance(values.get("variants"), dict) or not values["variants"]:
        raise ConfigError(f"{path}: a grid needs 'base' and 'variants' (optional: seeds, overrides); unknown: {sorted(unknown)}")
    seeds = values.get("seeds", [0])
    if not isinstance(seeds, list) or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds):
        raise ConfigError(f"{path}: 'seeds' must be a list of non-negative integers, got {short_repr(seeds)}")
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"{path}: 'seeds' lists a seed twice ({short_repr(seeds)}); each seed is one run")
    for name in values["variants"]:
        if not isinstance(name, str) or not VARIANT_NAME.fullmatch(name) or ".." in name:
            raise ConfigError(f"{path}: variant name {short_repr(name)} must be a plain folder name "
                              "(letters, digits, '_', '-', '.'; no '/', no '..')")
    beside_grid = Path(path).parent / str(values["base"])
    base_path = beside_grid if beside_grid.is_file() else resolve_config_path(values["base"])
    grid = Grid(base_path, seeds, values.get("overrides") or {}, values["variants"])
    for name in grid.variants:
        load_config(grid.base, grid.variant_overrides(name))
    return grid


def _run_one(grid: Grid, name: str, seed: int, data: Path, out: Path, threads: int) -> dict:
    run = RunDir(out / name / f"seed{seed}")
    _check_definition(grid, name, seed, data, run)
    results = run.results
    if not results.exists():
        command = [sys.executable, "-m", "pseudovad", "train", str(grid.base), "--out", str(run.path), "--data", str(data),
                   "--seed", str(seed), "--evaluate"]
        for key, value in grid.variant_overrides(name):
            command += ["--set", f"{key}={json.dumps(value)}"]
        if run.checkpoint.exists():
            command.append("--resume")
        env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
        log = run.path.parent / f"seed{seed}.log"
        run.path.parent.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        with open(log, "a") as handle:
            code = subprocess.call(command, env=env, stdout=handle, stderr=subprocess.STDOUT)
        if code != 0:
            raise PseudovadError(f"run {name} seed {seed} failed (exit {code}); see {log}")
        run.wall_seconds.write_text(f"{time.perf_counter() - started:.1f}\n")
    content = json.loads(results.read_text())
    summary = json.loads(run.summary.read_text())
    return {"variant": name, "seed": seed, "auc": content["auc"], "auc_per_kind": content.get("auc_per_kind", {}),
            "label_version": content["label_version"], "iterations": summary["iterations"],
            "train_seconds": summary["seconds"]}


def run_grid(grid_path: Path, data: Path, out: Path, jobs: int = 1) -> dict:
    """Train and evaluate every (variant, seed); write OUT/experiment.json and OUT/experiment.md."""
    if jobs < 1:
        raise ConfigError(f"--jobs must be at least 1, got {jobs}")
    grid = load_grid(grid_path)
    data = Path(data).resolve()
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
