"""Run a grid of configs (same base, same budget, same seeds) and tabulate their AUCs.

A grid is YAML:

    scale: ped2_128                 # optional: a packaged scale (`--scale` replaces it)
    base: method/ffp                # packaged config name(s) or YAML path(s), merged after the scale
    seeds: [0, 1]
    overrides: {train.iterations: 4000}   # applied to every variant (optional)
    variants:
      ffp: {}
      no_flow: {loss.flow: 0}

Each (variant, seed) trains in OUT/<variant>/seed<k> (OUT/<dataset>/<variant>/seed<k> for several
datasets, as synthetic scenes or pseudo-validation) through the `pseudovad train` command in a
subprocess, so runs can go in parallel (`jobs`) with the CPU threads split between them (or
OMP_NUM_THREADS each, when it is set), and a grid that was interrupted continues where it stopped:
finished runs are kept, started runs resume, but only those whose saved config and code revisions
(training/pipelines.behaviour_revisions) are what the grid now defines; any other is refused by name.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TypeVar

import numpy as np

from pseudovad.checkpoint import load_checkpoint
from pseudovad.config import PACKAGED_CONFIGS, Config, build_config, config_to_dict, flat, load_config, read_yaml, short_repr
from pseudovad.errors import ConfigError, Interrupted, PseudovadError
from pseudovad.files import write_json, write_text
from pseudovad.runs import RunDir, read_summary
from pseudovad.training.base import headline
from pseudovad.training.pipelines import behaviour_revisions, read_sections, stale_revisions

T = TypeVar("T")
R = TypeVar("R")

AUC_KEYS = ("micro", "micro_raw", "macro")


@dataclass
class Grid:
    base: list[str]
    seeds: list[int]
    overrides: dict
    variants: dict[str, dict]
    incumbent: str | None = None  # what is shipped: a challenger replaces it only if higher on every pair (`select`)

    def variant_overrides(self, name: str) -> list[tuple[str, object]]:
        return list({**self.overrides, **(self.variants[name] or {})}.items())

    def config(self, name: str, seed: int, data: Path) -> Config:
        """The config that (variant, seed) trains with on `data`."""
        return load_config(self.base, [*self.variant_overrides(name), ("data.root", str(data)), ("train.seed", seed)])


def _definition(config: Config) -> dict:
    """A config as its run's config.yaml saves it: the sections its pipeline reads."""
    return config_to_dict(config, read_sections(config))


def _saved_definition(run: RunDir) -> dict:
    """The run's saved config with every option it predates at that option's default. Options are added
    with the default that keeps the earlier behaviour, so a new one must not make every earlier run
    stale; an option the file names that no longer exists is kept as saved, so it shows as a difference."""
    saved = read_yaml(run.config.read_text(), str(run.config))
    try:
        return _definition(build_config(saved, source=str(run.config)))
    except ConfigError:
        return saved


# Options that change how fast a run scores, never what it learns or scores: a run that differs only in
# them is the same run (an earlier one saved eval.batch_size 16, the value before `auto`).
SPEED_ONLY = frozenset({"eval.batch_size", "eval.compile"})


def _check_definition(grid: Grid, name: str, seed: int, data: Path, run: RunDir) -> None:
    """Refuse to reuse (or resume) a run whose saved config, or the code revisions that trained it
    (training/pipelines.behaviour_revisions), are not what the grid now defines."""
    if not run.config.is_file():
        return
    config = grid.config(name, seed, data)
    saved, wanted = flat(_saved_definition(run)), flat(_definition(config))
    changed = sorted(key for key in (wanted.keys() | saved.keys()) - SPEED_ONLY if wanted.get(key) != saved.get(key))
    if changed:
        raise PseudovadError(
            f"variant '{name}' seed {seed}: {run.path} was trained with another definition (differs in "
            f"{', '.join(changed[:6])}{' ...' if len(changed) > 6 else ''}); rename the variant, or delete that "
            "run folder to train it again"
        )
    summary = read_summary(run)
    if run.summary.is_file() and summary is None:
        raise PseudovadError(f"variant '{name}' seed {seed}: {run.summary} is damaged, so what trained that run is unknown; "
                             "delete that run folder to train it again")
    stale = summary is not None and stale_revisions(summary.get("revisions"), behaviour_revisions(config))
    if stale:
        raise PseudovadError(
            f"variant '{name}' seed {seed}: {run.path} was trained by other revisions of the code ({stale}; each "
            "class's docstring says what changed); delete that run folder to train it again, or use another --out"
        )


# A variant's name becomes a folder: letters, digits, '_', '-' and '.', not starting with '.'.
VARIANT_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}")


GRIDS = PACKAGED_CONFIGS / "grids"
# Grid files of earlier versions -> the packaged grid and scale that replace them.
RENAMED_GRIDS = {
    "synthetic_pipelines": "pipelines", "ped2_pipelines": "pipelines --scale ped2_128",
    "synthetic_ffp_ablation": "ffp_ablation", "ped2_ffp_128_ablation": "ffp_ablation --scale ped2_128",
    "ped2_ffp_ablation": "ffp_ablation --scale ped2_256", "ped2_ffp_seeds": "ffp_ablation --scale ped2_256 (variant ffp)",
    "ped2_ffp_128_seeds": "ffp_ablation --scale ped2_128 (variant ffp)", "ped2_ffp_128_flow_weight": "ffp_flow_weight",
    "ped2_ffp_resolution": "ffp_resolution",
    **{f"{d}_thesis_{k}": f"thesis_{k}" + (" --scale ped2_128" if d == "ped2" else "")
       for d in ("synthetic", "ped2") for k in ("classifier_lr", "kl", "lambda_flow")},
}


def grid_path(name_or_path: str | Path) -> Path:
    """A grid file: a path, or the name of a packaged grid (`pseudovad experiment pipelines`)."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    name = path.name.removesuffix(".yaml")
    if (GRIDS / f"{name}.yaml").is_file():
        return GRIDS / f"{name}.yaml"
    if name in RENAMED_GRIDS:
        raise ConfigError(f"grid {name_or_path} is now `pseudovad experiment {RENAMED_GRIDS[name]}`")
    names = ", ".join(sorted(p.stem for p in GRIDS.glob("*.yaml")))
    raise ConfigError(f"grid {name_or_path} not found; give a YAML path or one of: {names}")


def load_grid(path: Path, scale: str | None = None) -> Grid:
    """Read and validate a grid file; every variant's config is checked before anything trains.
    `scale` (as `--scale`) replaces the grid's own."""
    path = grid_path(path)
    try:
        text = Path(path).read_text()
    except OSError as error:
        raise ConfigError(f"{path}: cannot read grid: {error}") from None
    values = read_yaml(text, str(path)) or {}
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: a grid is a mapping with 'base' and 'variants'")
    unknown = set(values) - {"base", "scale", "seeds", "overrides", "variants", "incumbent"}
    if unknown or "base" not in values or not isinstance(values.get("variants"), dict) or not values["variants"]:
        raise ConfigError(f"{path}: a grid needs 'base' and 'variants' (optional: scale, seeds, overrides, incumbent); "
                          f"unknown: {sorted(unknown)}")
    incumbent = values.get("incumbent")
    if incumbent is not None and incumbent not in values["variants"]:
        raise ConfigError(f"{path}: 'incumbent' must name one of the variants {sorted(values['variants'])}, got {short_repr(incumbent)}")
    seeds = values.get("seeds", [0])
    if not isinstance(seeds, list) or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds):
        raise ConfigError(f"{path}: 'seeds' must be a list of non-negative integers, got {short_repr(seeds)}")
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"{path}: 'seeds' lists a seed twice ({short_repr(seeds)}); each seed is one run")
    for name in values["variants"]:
        if not isinstance(name, str) or not VARIANT_NAME.fullmatch(name) or ".." in name:
            raise ConfigError(f"{path}: variant name {short_repr(name)} must be a plain folder name "
                              "(letters, digits, '_', '-', '.'; no '/', no '..')")
    scale = scale or values.get("scale")
    bases = values["base"] if isinstance(values["base"], list) else [values["base"]]
    bases = [str(Path(path).parent / str(b)) if (Path(path).parent / str(b)).is_file() else str(b) for b in bases]
    grid = Grid([f"scale/{scale}", *bases] if scale else bases, seeds, values.get("overrides") or {}, values["variants"], incumbent)
    for name in grid.variants:
        load_config(grid.base, grid.variant_overrides(name))
    return grid


class Trainings:
    """The `pseudovad train` processes a grid has running, so that stopping the grid stops them too:
    each finishes its step, saves a checkpoint and exits 130 on SIGTERM. Without this, SIGTERM to the
    grid alone left its trainings running on, and a grid started in the background from a script
    hands its trainings an ignored SIGINT, so Ctrl-C cannot reach them either."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: set[subprocess.Popen] = set()
        self._stopping = False

    def call(self, command: list[str], env: dict[str, str], log: IO[str]) -> int:
        """Run `command` to its end (output to `log`) and return its exit status; 130 once stopping."""
        with self._lock:
            if self._stopping:
                return Interrupted.exit_status
            process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
            self._running.add(process)
        try:
            return process.wait()
        finally:
            with self._lock:
                self._running.discard(process)

    def stop(self) -> None:
        """SIGTERM to every training under way, and none started after."""
        with self._lock:
            self._stopping = True
            for process in self._running:
                process.terminate()


def _run_dir(out: Path, name: str, seed: int) -> RunDir:
    """Where (variant, seed) of one dataset trains: OUT/<variant>/seed<k>."""
    return RunDir(out / name / f"seed{seed}")


def _run_one(grid: Grid, name: str, seed: int, data: Path, out: Path, threads: int, trainings: Trainings) -> dict:
    """Train and evaluate (variant, seed) on `data` in OUT/<variant>/seed<k>, unless it is done."""
    run = _run_dir(out, name, seed)
    _check_definition(grid, name, seed, data, run)
    results = run.results
    if not results.exists():
        command = [sys.executable, "-m", "pseudovad", "train", *grid.base, "--out", str(run.path), "--data", str(data),
                   "--seed", str(seed), "--evaluate", "--no-calibrate"]
        for key, value in grid.variant_overrides(name):
            command += ["--set", f"{key}={json.dumps(value)}"]
        if run.checkpoint.exists():
            command.append("--resume")
        elif run.config.exists():  # killed before its first checkpoint: nothing to keep, start it over
            command.append("--force")
        env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
        log = run.path.parent / f"seed{seed}.log"
        run.path.parent.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        with open(log, "a") as handle:
            code = trainings.call(command, env, handle)
        if code == Interrupted.exit_status:
            raise Interrupted(f"run {name} seed {seed} stopped with its checkpoint saved; the same command continues it ({log})")
        if code != 0:
            raise PseudovadError(f"run {name} seed {seed} failed (exit {code}); see {log}")
        write_text(f"{time.perf_counter() - started:.1f}\n", run.wall_seconds)
    content = json.loads(results.read_text())
    summary = read_summary(run)
    if summary is None:
        raise PseudovadError(f"run {name} seed {seed}: {run.summary} is missing or damaged; delete that run folder "
                             "to train it again")
    return {"variant": name, "seed": seed, "data": str(data), "auc": content["auc"],
            "auc_per_kind": content.get("auc_per_kind", {}), "label_version": content["label_version"],
            "iterations": summary["iterations"], "train_seconds": summary["seconds"], "resumed_from": summary["resumed_from"],
            "trained_on": summary.get("trained_on", "not recorded"),
            **({"diagnostics": summary["diagnostics"]} if "diagnostics" in summary else {})}


def resolve_datasets(spec: str, out: Path, choosing: bool, make: bool = True) -> tuple[dict[str, Path], str]:
    """The datasets a `--data` or `--validation` spec names (made under OUT/data if generated, unless
    `make` is false: then only where they are or would be) and the split in words.

    A folder: that dataset. `synthetic:0,1,2`: the built-in scene (default preset) drawn with those
    seeds; the seeds used to choose (`--validation`) must not be the ones reported (`--data`).
    `heldout:ROOT`: pseudo-validation, the last 3 training videos of ROOT held out with injected
    anomalies (data/pseudo_validation.py), for choosing only."""
    kind, _, argument = spec.partition(":")
    role = "validation, for choosing" if choosing else "reported, never used to choose"
    if kind == "heldout" and argument:
        from pseudovad.data.pseudo_validation import make_pseudo_validation

        root = Path(argument).resolve()
        folder = out / "data" / f"heldout_{root.name}"
        made = make_pseudo_validation(root, folder) if make else folder
        return {"heldout": made.resolve()}, (f"pseudo-validation: the last 3 training videos of {root} held out, with "
                                             f"injected speed-ups and foreign objects, no test video ({role})")
    if kind == "synthetic" and argument:
        seeds = parse_seeds(argument, f"{spec!r}: scene seeds", "synthetic:10,11,12")
        scenes = _synthetic_scenes(seeds, out, make)
        return scenes, f"synthetic default scene, seeds {', '.join(map(str, seeds))} ({role})"
    if choosing:
        raise ConfigError(f"--validation {spec!r}: expected synthetic:SEED,SEED,... (scene seeds kept for choosing) "
                          "or heldout:ROOT (training videos of ROOT held out)")
    root = Path(spec).resolve()
    return {"": root}, f"{root} ({role}: if it holds test labels, do not choose on it)"


def _synthetic_scenes(seeds: list[int], out: Path, make: bool = True) -> dict[str, Path]:
    from pseudovad.data.synthetic import synthetic_scene

    folders = {f"scene{seed}": (seed, out / "data" / f"synthetic_{seed}") for seed in seeds}
    return {name: (synthetic_scene(folder, seed, overwrite=True) if make else folder).resolve()
            for name, (seed, folder) in folders.items()}


def run_grid(grid_path: Path, data: str | Path | None, out: Path, jobs: int = 1, scale: str | None = None,
             validation: str | None = None, seeds: list[int] | None = None) -> dict:
    """Train and evaluate every (variant, seed) on `data`, or on each validation dataset; write
    OUT/experiment.json and OUT/experiment.md. With `validation` the best variant is selected (on
    those data alone) and recorded with the split that chose it. `seeds`, a subset of the grid's,
    runs only those: every variant of a seed then trains on one machine in one sitting, which is
    what a comparison needs when runs are longer than a session and machines differ between them."""
    if jobs < 1:
        raise ConfigError(f"--jobs must be at least 1, got {jobs}")
    _check_split(data, validation)
    grid = load_grid(grid_path, scale)
    seeds = _chosen_seeds(grid_path, grid.seeds, seeds)
    out.mkdir(parents=True, exist_ok=True)
    datasets, split = resolve_datasets(str(validation or data), out, choosing=validation is not None)
    threads = job_threads(jobs)
    tasks = [(data_name, name, seed) for data_name in datasets for seed in seeds for name in grid.variants]
    trainings = Trainings()
    try:
        runs = in_parallel(lambda task: _run_one(grid, task[1], task[2], datasets[task[0]], out / task[0], threads, trainings),
                           tasks, jobs, quick=lambda task: _run_dir(out / task[0], task[1], task[2]).results.exists(),
                           on_interrupt=trainings.stop)
    except KeyboardInterrupt:
        raise Interrupted("stopped; every run under way saved its checkpoint, and the same command continues the grid") from None
    table = summarise(runs)
    report = {"grid": str(grid_path), "base": grid.base, "data": {k or "data": str(v) for k, v in datasets.items()},
              "split": split, "seeds": seeds, "overrides": grid.overrides, "variants": grid.variants,
              "runs": runs, "summary": table, **({"incumbent": grid.incumbent} if grid.incumbent else {})}
    if validation:
        report["selection"] = select(table, runs, split, grid.incumbent)
    write_json(report, out / "experiment.json")
    write_text(markdown_table(table, runs, split, report.get("selection"), grid.incumbent), out / "experiment.md")
    return report


def _check_split(data: str | Path | None, validation: str | None) -> None:
    if (data is None) == (validation is None):
        raise ConfigError("give --data (a table to report) or --validation (data to choose on), not both")


def grid_status(grid_path: Path, data: str | Path | None, out: Path, scale: str | None = None,
                validation: str | None = None, seeds: list[int] | None = None) -> list[dict]:
    """Where each (dataset, variant, seed) of a grid stands in OUT: done (with its headline micro AUC),
    under way (the step its checkpoint reached), not started, or stale (trained with another definition
    or code, which the grid would refuse). Read from OUT alone: it trains, writes and generates nothing,
    so it can be asked while the grid runs, of grids that take days."""
    _check_split(data, validation)
    grid = load_grid(grid_path, scale)
    seeds = _chosen_seeds(grid_path, grid.seeds, seeds)
    datasets, _ = resolve_datasets(str(validation or data), out, choosing=validation is not None, make=False)
    return [_run_status(grid, name, seed, path, out / data_name)
            for data_name, path in datasets.items() for seed in seeds for name in grid.variants]


def _run_status(grid: Grid, name: str, seed: int, data: Path, out: Path) -> dict:
    run = _run_dir(out, name, seed)
    entry = {"run": str(run.path), "iterations": grid.config(name, seed, data).train.iterations}
    try:
        _check_definition(grid, name, seed, data, run)
    except PseudovadError as error:
        return {**entry, "state": "stale", "why": str(error)}
    if run.results.exists():
        scores = json.loads(run.results.read_text())["auc"]
        return {**entry, "state": "done", "score": headline(scores), "micro": scores[headline(scores)]["micro"]}
    if run.checkpoint.exists():
        state = load_checkpoint(run.checkpoint)
        return {**entry, "state": "under way", "step": state["iteration"], "trained_on": state.get("trained_on", [])}
    return {**entry, "state": "not started"}


def in_parallel(function: Callable[[T], R], tasks: list[T], jobs: int, quick: Callable[[T], bool],
                on_interrupt: Callable[[], None] = lambda: None) -> list[R]:
    """`function` of every task, in the tasks' order: the `quick` ones (runs already done) first, one by
    one, the rest on `jobs` threads. ThreadPoolExecutor starts a thread only when none is idle, so
    quick tasks mixed among long ones can leave it a single thread for all the long ones. Once a task
    raises (a run stopped by SIGTERM, or failed), no further task starts: the others finish and the
    error is raised. Ctrl-C or SIGTERM to this process calls `on_interrupt` (which must end the tasks
    under way: the pool waits for them) and starts nothing more."""
    results = {index: function(task) for index, task in enumerate(tasks) if quick(task)}
    rest = [index for index in range(len(tasks)) if index not in results]
    stop = threading.Event()

    def guarded(index: int) -> R | None:
        if stop.is_set():
            return None  # never read: an earlier task's error is raised first (tasks start in order)
        try:
            return function(tasks[index])
        except BaseException:
            stop.set()
            raise

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        try:
            results.update(zip(rest, pool.map(guarded, rest)))
        except KeyboardInterrupt:
            stop.set()
            on_interrupt()
            raise
    return [results[index] for index in range(len(tasks))]


def parse_seeds(text: str, what: str, example: str) -> list[int]:
    """`0,1,2` as [0, 1, 2]; anything else is a ConfigError that shows `example`."""
    try:
        return [int(part) for part in text.split(",")]
    except ValueError:
        raise ConfigError(f"{what} must be integers, e.g. {example}") from None


def _chosen_seeds(grid_path: Path, grid_seeds: list[int], seeds: list[int] | None) -> list[int]:
    if seeds is None:
        return grid_seeds
    if not seeds or not set(seeds) <= set(grid_seeds):
        raise ConfigError(f"{grid_path}: --seeds {','.join(map(str, seeds))} is not a subset of the grid's seeds "
                          f"{grid_seeds}; give some of those, or add the seed to the grid")
    return sorted(set(seeds))


def job_threads(jobs: int) -> int:
    """CPU threads for each of `jobs` parallel runs: OMP_NUM_THREADS (else the CPU count) split between
    them, since runs that together ask for more threads than there are cores spin-wait and slow down
    several-fold (seen on 2 cores: two 2-thread runs left a 1-thread run beside them a third of a core)."""
    total = int(os.environ.get("OMP_NUM_THREADS") or os.cpu_count() or 1)
    return max(1, total // jobs)


def select(table: dict, runs: list[dict], split: str, incumbent: str | None = None) -> dict:
    """The variant with the best mean micro AUC of its headline score; with an `incumbent` (what is
    shipped), the best among the challengers whose headline micro AUC is higher than the incumbent's on
    every (dataset, seed) pair the incumbent trained, or the incumbent where none is. A mean over a few
    pairs can be carried by one lucky pair; a change that is better everywhere it was asked cannot."""
    candidates = list(table)
    if incumbent is not None:
        cells = _pair_cells(runs)
        candidates = [v for v in table if v != incumbent and all(_above(cells, incumbent, v))] or [incumbent]
    best = max(candidates, key=lambda variant: table[variant][headline(table[variant])]["micro"]["mean"])
    score = headline(table[best])
    entry = table[best][score]["micro"]
    rule = ({"rule": f"a challenger replaces {incumbent} only if higher on every (dataset, seed) pair"}
            if incumbent is not None else {})
    return {"variant": best, "score": score, "micro_mean": entry["mean"], "runs": entry["n"], "chosen_on": split, **rule}


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


def markdown_table(table: dict, runs: list[dict], split: str, selection: dict | None = None,
                   incumbent: str | None = None) -> str:
    label_versions = sorted({run["label_version"] for run in runs})
    lines = [f"Data: {split}. Labels: {', '.join(label_versions)}. Mean ± std over seeds (and datasets); fixed iteration "
             "budget, last checkpoint.", ""]
    if selection:
        lines += [f"**Selected: {selection['variant']}** (mean micro AUC of {selection['score']} {selection['micro_mean']:.4f} "
                  f"over {selection['runs']} runs), chosen on {selection['chosen_on']}"
                  + (f"; the rule: {selection['rule']}." if "rule" in selection else "."), ""]
    lines += ["| variant | score | micro AUC | micro raw | macro AUC | train s |", "|---|---|---|---|---|---|"]
    for variant, scores in table.items():
        own = [run for run in runs if run["variant"] == variant]
        seconds = f"{np.mean([run['train_seconds'] for run in own]):.0f}" + ("*" if any(map(_resumed, own)) else "")
        for score, keys in scores.items():
            cells = [f"{keys[k]['mean']:.4f} ± {keys[k]['std']:.4f}" if k in keys else "-" for k in AUC_KEYS]
            lines.append(f"| {variant} | {score} | {' | '.join(cells)} | {seconds} |")
    if any(map(_resumed, runs)):
        lines += ["", "\\* a run of this variant was resumed: its seconds are those since its last resume "
                  "(a training records only its own process's time), so the mean is too low."]
    return "\n".join(lines + paired_table(runs, incumbent)) + "\n"


def _resumed(run: dict) -> bool:
    """Whether a run's recorded training time misses the stretch before a resume (older records do not say: no)."""
    return bool(run.get("resumed_from"))


def _machines(run: dict) -> frozenset[tuple[str, str]]:
    """The (machine, precision) of every recorded stretch of a run's training."""
    stretches = run.get("trained_on")
    if not isinstance(stretches, list):
        return frozenset()
    return frozenset((s["machine"], s["precision"]) for s in stretches if s["machine"] != "not recorded")


def _pair_cells(runs: list[dict]) -> dict[tuple[str, int, str], float]:
    """(dataset, seed, variant) -> the run's headline micro AUC (fused where it has one)."""
    return {(Path(run["data"]).name, run["seed"], run["variant"]): run["auc"][headline(run["auc"])]["micro"] for run in runs}


def _above(cells: dict[tuple[str, int, str], float], reference: str, other: str) -> list[bool | None]:
    """On each (dataset, seed) pair `reference` trained: is `other` higher there (None: not trained there)."""
    return [None if (data, seed, other) not in cells else cells[(data, seed, other)] > auc
            for (data, seed, variant), auc in cells.items() if variant == reference]


def paired_table(runs: list[dict], reference: str | None = None) -> list[str]:
    """Each (dataset, seed) as a row, the headline micro AUC of every variant side by side, and each
    variant's difference from `reference` (the grid's incumbent; else the first variant) in points. A
    mean over seeds can hide that one lucky seed carries it; a pair trained on the same data and seed
    (and, with --seeds, the same machine) cannot."""
    variants = list(dict.fromkeys(run["variant"] for run in runs))
    if len(variants) < 2:
        return []
    if reference is not None:
        variants = [reference, *(v for v in variants if v != reference)]
    cells = _pair_cells(runs)
    pairs = list(dict.fromkeys((data, seed) for data, seed, _ in cells))
    others = variants[1:]
    lines = ["", f"Per (dataset, seed), headline micro AUC (fused where a variant has it, else its first score); "
                 f"difference from {variants[0]} in points:", "",
             "| data | seed | " + " | ".join(variants) + "".join(f" | {v} - {variants[0]}" for v in others) + " |",
             "|---|---|" + "---|" * (len(variants) + len(others))]
    machines = {(Path(run["data"]).name, run["seed"], run["variant"]): _machines(run) for run in runs}
    mixed = False
    for data, seed in pairs:
        aucs = [cells.get((data, seed, v)) for v in variants]
        shown = [f"{a:.4f}" if a is not None else "-" for a in aucs]
        deltas = [f"{100 * (a - aucs[0]):+.2f}" if a is not None and aucs[0] is not None else "-" for a in aucs[1:]]
        apart = len(frozenset().union(*(machines.get((data, seed, v), frozenset()) for v in variants))) > 1
        mixed |= apart
        lines.append(f"| {data} | {seed}{' †' if apart else ''} | " + " | ".join(shown + deltas) + " |")
    if mixed:
        lines.append("\n† its variants trained on different machines or precisions (`trained_on` in experiment.json): "
                     "the same run moved by up to 1.8 points between two CPUs (docs/RESULTS.md).")
    for other in others:
        compared = [above for above in _above(cells, variants[0], other) if above is not None]
        lines.append(f"\n{other} is above {variants[0]} on {sum(compared)} of {len(compared)} pairs.")
    return lines
