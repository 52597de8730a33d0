"""The training loop shared by every pipeline: data, schedule, logging, checkpoints, resume.

Batches are a pure function of (seed, step) — a fresh permutation of all clips per epoch — so a run
resumed from a checkpoint sees exactly the batches the uninterrupted run would have seen. The loop
knows pipelines only through training/base.py's Pipeline, and writes pictures through the
`sample_writer` it is given (the CLI passes the gallery writer), so it imports nothing above it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from pseudovad.checkpoint import load_checkpoint, remove_stale_temporaries, save_checkpoint
from pseudovad.config import Config, build_config, config_to_dict, flat, save_config
from pseudovad.data.cache import FrameArray, load_frames
from pseudovad.data.clips import ClipDataset
from pseudovad.data.layouts import load_dataset
from pseudovad.errors import ConfigError, Interrupted, PseudovadError, RuntimeFailure
from pseudovad.files import write_json
from pseudovad.interrupts import whole_unit
from pseudovad.runs import RunDir, claimed
from pseudovad.training.base import NonFiniteLoss, Pipeline
from pseudovad.training.distributed import (World, check_batch_split, data_parallel, join_world, leave_world, local_share,
                                             wait_for_all)
from pseudovad.training.hardware import cpu_model, device_name
from pseudovad.training.pipelines import behaviour_revisions, build_pipeline, pick_device, read_sections, stale_revisions

# (image columns, PNG path, title): how galleries are written; given by the caller.
SampleWriter = Callable[[dict[str, Tensor], Path, str], None]

# What a resumed run may change: its budget, where the same data now lives (a moved or re-mounted
# dataset, a relative --data given from another directory), and where its decoded frames are cached.
RESUMABLE_CHANGES = ("train.iterations", "data.root", "data.cache_dir")


def batch_indices(num_clips: int, batch_size: int, seed: int, step: int) -> np.ndarray:
    """The clip indices of training step `step`: epoch-wise permutations, the last partial batch dropped."""
    if num_clips < batch_size:
        raise PseudovadError(f"only {num_clips} training clips for a batch of {batch_size}; lower train.batch_size")
    per_epoch = num_clips // batch_size
    epoch, position = divmod(step, per_epoch)
    order = np.random.default_rng([seed, epoch]).permutation(num_clips)
    return order[position * batch_size : (position + 1) * batch_size]


def training_frames(config: Config) -> FrameArray:
    """The frames of the training videos of `config.data.root`, decoded through the frame cache."""
    data = config.data
    dataset = load_dataset(Path(data.root), data.layout, Path(data.labels) if data.labels else None)
    if not dataset.train:
        raise PseudovadError(f"{dataset.root}: no training videos (layout '{dataset.layout}'); training needs normal videos")
    return load_frames(dataset.train, data.height, data.width, data.channels, data.cache_dir, "training frames")


def training_clips(config: Config, held_out: bool = False, frames: FrameArray | None = None) -> ClipDataset:
    """The training clips of `frames` (default: `training_frames(config)`): those training steps on,
    or with `held_out` those `data.holdout` keeps out of training for calibration (the training clips
    themselves when it is 0)."""
    frames = training_frames(config) if frames is None else frames
    return ClipDataset(frames, config.data.clip_length, config.data.holdout, held_out)


def learning_rate_scale(config: Config, step: int) -> float:
    decay_at = config.train.lr_decay_at
    return config.train.lr_decay_factor if decay_at is not None and step >= decay_at else 1.0


def _check_same_experiment(saved: dict, config: Config, run_dir: Path) -> None:
    """A resumed run may change only RESUMABLE_CHANGES: other changes would mix two experiments."""
    sections = read_sections(config)
    saved_flat = flat(config_to_dict(build_config(saved, source=str(run_dir)), sections))
    requested_flat = flat(config_to_dict(config, sections))
    changed = [k for k in requested_flat if k not in RESUMABLE_CHANGES and saved_flat.get(k) != requested_flat[k]]
    if changed:
        details = ", ".join(f"{k}: {saved_flat.get(k)!r} -> {requested_flat[k]!r}" for k in changed)
        raise ConfigError(f"--resume {run_dir}: the config differs from the saved run ({details}); only --iterations, --data and data.cache_dir may change")


def keep_saved_precision(pipeline: Pipeline, saved: str | None) -> None:
    """A resumed run keeps the precision its checkpoint trained in. `train.precision: auto` resolves
    per machine, so a run continued on a CPU with (or without) native bf16 would otherwise change
    precision midway: one result made by two experiments. Checkpoints older than this record have
    no precision, and resolve as before."""
    if saved is not None and saved != pipeline.precision:
        pipeline.precision_reason = (f"kept from the checkpoint, which trained in {saved}; this machine alone "
                                     f"would pick {pipeline.precision} ({pipeline.precision_reason})")
        pipeline.precision = saved


def training_history(state: dict | None, step: int, machine: str, precision: str) -> list[dict]:
    """Each stretch of a run's training with the machine and precision it ran on, the first stretch
    from iteration 0: a number is reported with the machine that made it, and a run resumed across
    sessions may have met several."""
    if state is None:
        history = []
    else:
        history = list(state.get("trained_on", [{"from_iteration": 0, "machine": "not recorded", "precision": "not recorded"}]))
    last = history[-1] if history else {}
    if (last.get("machine"), last.get("precision")) != (machine, precision):
        history.append({"from_iteration": step, "machine": machine, "precision": precision})
    return history


def absolute_paths(config: Config) -> Config:
    """The data paths made absolute, so the saved run works from any working directory."""
    data = config.data
    for key in ("root", "labels", "cache_dir"):
        value = getattr(data, key)
        if value is not None:
            setattr(data, key, str(Path(value).expanduser().resolve()))
    return config


def train(config: Config, run_dir: Path, resume: bool = False, force: bool = False,
          sample_writer: SampleWriter | None = None) -> Path:
    """Train `config.pipeline` for `config.train.iterations` steps; returns the checkpoint path.

    Under torchrun every process runs this function on its share of each batch; rank 0 alone writes."""
    if config.data.root is None:
        raise ConfigError("no dataset: pass --data ROOT or set data.root in the config")
    config = absolute_paths(config)
    world, device = join_world(pick_device(config.train.device))
    run = RunDir(run_dir)
    try:
        with claimed(run, resume, force, Path(config.data.root)) if world.is_main else nullcontext():
            Trainer(config, run, world, device, sample_writer).run(resume)
        wait_for_all(world)
        return run.checkpoint
    finally:
        leave_world(world)


class Trainer:
    """One training run: restore, then per step set the rates, step, log, sample and checkpoint."""

    def __init__(self, config: Config, run: RunDir, world: World, device: torch.device, sample_writer: SampleWriter | None) -> None:
        self.config, self.run_dir, self.world, self.device = config, run, world, device
        self.sample_writer = sample_writer
        self.step = 0
        self.revisions = behaviour_revisions(config)  # recorded in every checkpoint and the summary

    def run(self, resume: bool) -> None:
        state = self.restore_state(resume)
        if self.world.is_main:
            save_config(self.config, self.run_dir.config, read_sections(self.config))
        torch.manual_seed(self.config.train.seed)
        self.clips = training_clips(self.config)
        self.pipeline = build_pipeline(self.config, self.device)
        # The configured rates, read before a checkpoint's optimizer state (which holds decayed rates) is loaded.
        self.base_rates = {name: [g["lr"] for g in opt.param_groups] for name, opt in self.pipeline.optimizers.items()}
        if state is not None:
            self.pipeline.load_state(state)
            torch.set_rng_state(state["torch_rng"])
            keep_saved_precision(self.pipeline, state.get("precision"))
        self.trained_on = training_history(state, self.step, device_name(self.device), self.pipeline.precision)
        if self.world.distributed:
            check_batch_split(self.config.train.batch_size, self.world)
            self.pipeline.distribute(lambda network: data_parallel(network, self.device))
        if self.world.is_main:
            tqdm.write(f"precision {self.pipeline.precision} ({self.pipeline.precision_reason})")
        self.loop()

    def restore_state(self, resume: bool) -> dict | None:
        """The checkpoint to continue from (its config must match), or None for a new run."""
        if not resume:
            return None
        if self.world.is_main:
            remove_stale_temporaries(self.run_dir.checkpoints)
        state = load_checkpoint(self.run_dir.checkpoint)
        _check_same_experiment(state["config"], self.config, self.run_dir.path)
        stale = stale_revisions(state.get("revisions"), self.revisions)
        if stale:
            raise ConfigError(f"--resume {self.run_dir.path}: trained so far by other revisions of its code ({stale}; "
                              "each class's docstring says what changed), so it would mix two experiments; "
                              "start it again with --force, or train into another --out")
        self.step = state["iteration"]
        return state

    def loop(self) -> None:
        schedule = self.config.train
        self.resumed_from = self.step
        sample_indices = np.linspace(0, len(self.clips) - 1, 4).astype(int)
        self.sample = {k: v.to(self.device) for k, v in self.pipeline.sample_batch(self.clips, sample_indices).items()}
        self.writer = SummaryWriter(str(self.run_dir.tensorboard)) if self.world.is_main else None
        bar = tqdm(total=schedule.iterations, initial=self.step, desc=f"train {self.config.pipeline}", unit="step",
                   dynamic_ncols=True, disable=not self.world.is_main)
        self.started = self.last_saved = time.perf_counter()
        try:
            while self.step < schedule.iterations:
                with whole_unit():   # a stop mid-step would save some networks' update and not the others'
                    losses = self.train_one_step()
                    self.step += 1
                    bar.update()
                    if losses is not None:
                        self.after_step(losses, bar)
        except KeyboardInterrupt:
            self.save_checkpoint()
            raise Interrupted(f"stopped at iteration {self.step}; checkpoint saved, continue with --resume") from None
        finally:
            bar.close()
            if self.writer:
                self.writer.close()
        self.write_summary()

    def train_one_step(self) -> dict[str, float] | None:
        """Set the step's learning rates and take it; None if a non-finite loss was skipped."""
        scale = learning_rate_scale(self.config, self.step)
        for name, optimizer in self.pipeline.optimizers.items():
            for group, rate in zip(optimizer.param_groups, self.base_rates[name]):
                group["lr"] = rate * scale
        indices = batch_indices(len(self.clips), self.config.train.batch_size, self.config.train.seed, self.step)
        batch = {name: local_share(value, self.world).to(self.device)
                 for name, value in self.pipeline.make_batch(self.clips, indices, self.step).items()}
        try:
            return self.pipeline.train_step(batch)
        except NonFiniteLoss as error:
            if self.config.train.on_nonfinite == "skip":
                if self.writer:
                    self.writer.add_scalar("train/skipped_nonfinite", 1, self.step)
                return None
            raise RuntimeFailure(
                f"training stopped at iteration {self.step}: {error}. The last good checkpoint "
                f"({self.run_dir.checkpoint}) is kept; lower the learning rate, or set train.on_nonfinite=skip"
            ) from None

    def after_step(self, losses: dict[str, float], bar: tqdm) -> None:
        schedule, step = self.config.train, self.step
        last = step == schedule.iterations
        if self.writer and (step % schedule.log_every == 0 or last):
            for name, value in losses.items():
                self.writer.add_scalar(f"loss/{name}", value, step)
            seconds = time.perf_counter() - self.started
            self.writer.add_scalar("speed/steps_per_second", (step - self.resumed_from) / seconds, step)
            bar.set_postfix({name: f"{value:.4f}" for name, value in losses.items()}, refresh=False)
        if self.writer and (step % schedule.sample_every == 0 or last or step in schedule.gallery_at):
            self.write_samples(step in schedule.gallery_at)
        due = time.perf_counter() - self.last_saved >= 60 * schedule.checkpoint_minutes
        if step % schedule.checkpoint_every == 0 or last or due:
            self.save_checkpoint()

    def write_samples(self, gallery: bool) -> None:
        """The pipeline's sample images side by side in TensorBoard, and as a PNG gallery at the
        iterations listed in `train.gallery_at`."""
        columns = self.pipeline.sample_images(self.sample)
        rows = torch.cat(list(columns.values()), dim=-1)
        self.writer.add_images("samples/" + " | ".join(columns), (rows.float().cpu() + 1) / 2, self.step)
        if gallery and self.sample_writer is not None:
            self.sample_writer(columns, self.run_dir.gallery_image(self.step), f"iteration {self.step}")

    def save_checkpoint(self) -> None:
        if not self.world.is_main:
            return
        save_checkpoint(
            {"iteration": self.step, "config": config_to_dict(self.config), "revisions": self.revisions,
             "precision": self.pipeline.precision, "trained_on": self.trained_on,
             "torch_rng": torch.get_rng_state(), **self.pipeline.state()},
            self.run_dir.checkpoint,
        )
        self.last_saved = time.perf_counter()

    def write_summary(self) -> None:
        """The run's summary; where `data.holdout` keeps frames out of training, the pipeline's own
        checks on them too (timed apart: `seconds` is training alone)."""
        if not self.world.is_main:
            return
        summary = {
            "iterations": self.step,
            "resumed_from": self.resumed_from,
            "revisions": self.revisions,
            "seconds": time.perf_counter() - self.started,
            "training_clips": len(self.clips),
            "device": str(self.device),
            "cpu": cpu_model(),
            "threads": torch.get_num_threads(),
            "precision": self.pipeline.precision,
            "precision_reason": self.pipeline.precision_reason,
            "trained_on": self.trained_on,
            "compiled": self.config.train.compile,
            "processes": self.world.size,
        }
        if self.config.data.holdout > 0:
            started = time.perf_counter()
            diagnostics = self.pipeline.training_diagnostics(training_clips(self.config, True, self.clips.frames))
            if diagnostics:
                summary["diagnostics"] = diagnostics
                summary["diagnostics_on"] = f"the last {self.config.data.holdout:g} of each training video (data.holdout)"
                summary["diagnostics_seconds"] = time.perf_counter() - started
        write_json(summary, self.run_dir.summary, indent=2)
