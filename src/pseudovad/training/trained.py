"""A finished run, loaded for scoring: its pipeline from its last checkpoint, with the scoring network
compiled when the job is long enough to earn the compile back.

Above `runs` (which knows the folder and reads the checkpoint) and below every command that scores
(`evaluate`, `calibrate`, `score`, `live`, the report, `export`): training itself never loads a run this way.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from pseudovad.config import Config, build_config, without_training_files
from pseudovad.runs import RunDir, read_state, saved_values
from pseudovad.training.base import Pipeline
from pseudovad.training.pipelines import build_pipeline, pick_device

# Frames from which compiling the scoring network earns back its warm-up. On the AMD EPYC at 128 px and
# the `auto` eval batch (docs/RESULTS.md) compiling saves ~0.45 ms a frame (174 against 161 frames/s)
# and costs a fresh process ~4.5 s with inductor's cache warm, ~11 s cold: break-even from ~10000
# frames. Ped2's test set (2010 frames) stays below it; a long video (7 minutes at 25 fps) or a camera does not.
COMPILE_PAYS_FROM = 10000


def compile_if_it_pays(pipeline: Pipeline, frames: float, setting: str | None = None) -> bool:
    """Compile the scoring network of a job that will score `frames` frames (math.inf for a stream) as
    `setting` (default: the run's eval.compile) says: `on` always, `off` never, `auto` from
    COMPILE_PAYS_FROM on. Whether it did."""
    setting = setting or pipeline.config.eval.compile
    if setting == "off" or (setting == "auto" and frames < COMPILE_PAYS_FROM):
        return False
    compiled = pipeline.compile_scoring()
    if compiled:  # the first frames wait for it, which would otherwise look like a hang
        print("note: compiling the scoring network; the first frames wait for it (seconds, or a minute on a slow CPU; "
              "--compile off skips it)", file=sys.stderr)
    elif setting == "on" and type(pipeline).compile_scoring is Pipeline.compile_scoring:  # asked for, and cannot
        print(f"note: the {pipeline.config.pipeline} pipeline has no compiled scoring; it scores uncompiled",
              file=sys.stderr)
    return compiled


def load_trained(run_dir: Path, device: torch.device | None = None) -> tuple[Config, Pipeline, int]:
    """(config, pipeline, iteration) of a trained run: its last checkpoint, built for scoring.

    The config comes from the checkpoint minus every file only training opens, the weights files (see
    config.without_training_files), and minus its cache folder (runs.saved_values): loading someone else's
    run never opens a weights file it names, nor writes where it says."""
    run = RunDir(run_dir)
    state = read_state(run)
    config = without_training_files(build_config(saved_values(state), source=str(run.checkpoint)))
    pipeline = build_pipeline(config, device or pick_device(config.train.device), training=False)
    pipeline.load_state(state, with_optimizers=False)
    return config, pipeline, state["iteration"]
