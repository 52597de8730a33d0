"""The training loop shared by every pipeline: data, schedule, logging, checkpoints, resume.

Batches are a pure function of (seed, step) — a fresh permutation of all clips per epoch — so a run
resumed from a checkpoint sees exactly the batches the uninterrupted run would have seen.
"""

from __future__ import annotations

import json
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from pseudovad.config import Config, build_config, config_to_dict, save_config
from pseudovad.data.cache import load_frames
from pseudovad.data.clips import ClipDataset
from pseudovad.data.layouts import load_dataset
from pseudovad.errors import ConfigError, PseudovadError
from pseudovad.reporting.gallery import save_gallery
from pseudovad.runs import RunDir, claimed
from pseudovad.training.checkpoint import load_checkpoint, remove_stale_temporaries, save_checkpoint
from pseudovad.training.distributed import (
    World,
    check_batch_split,
    data_parallel,
    join_world,
    leave_world,
    local_share,
    wait_for_all,
)
from pseudovad.training.ffp import NonFiniteLoss
from pseudovad.training.pipelines import build_pipeline, load_pipeline_state, pick_device, pipeline_state

def batch_indices(num_clips: int, batch_size: int, seed: int, step: int) -> np.ndarray:
    """The clip indices of training step `step`: epoch-wise permutations, the last partial batch dropped."""
    if num_clips < batch_size:
        raise PseudovadError(f"only {num_clips} training clips for a batch of {batch_size}; lower train.batch_size")
    per_epoch = num_clips // batch_size
    epoch, position = divmod(step, per_epoch)
    order = np.random.default_rng([seed, epoch]).permutation(num_clips)
    return order[position * batch_size : (position + 1) * batch_size]


def training_clips(config: Config) -> ClipDataset:
    """The clips of the training videos of `config.data.root`, decoded through the frame cache."""
    data = config.data
    dataset = load_dataset(Path(data.root), data.layout, Path(data.labels) if data.labels else None)
    if not dataset.train:
        raise PseudovadError(f"{dataset.root}: no training videos (layout '{dataset.layout}'); training needs normal videos")
    frames = load_frames(dataset.train, data.height, data.width, data.channels, data.cache_dir, "training frames")
    return ClipDataset(frames, data.clip_length)


def learning_rate_scale(config: Config, step: int) -> float:
    decay_at = config.train.lr_decay_at
    return config.train.lr_decay_factor if decay_at is not None and step >= decay_at else 1.0


# What a resumed run may change: its budget, and where the same data now lives (a moved or re-mounted
# dataset, a relative --data given from another directory).
RESUMABLE_CHANGES = ("train.iterations", "data.root")


def _check_same_experiment(saved: dict, requested: dict, run_dir: Path) -> None:
    """A resumed run may change only RESUMABLE_CHANGES: other changes would mix two experiments."""
    def flat(values: dict, prefix: str = "") -> dict:
        out = {}
        for key, value in values.items():
            out.update(flat(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}": value})
        return out

    saved_flat = flat(config_to_dict(build_config(saved, source=str(run_dir))))
    requested_flat = flat(requested)
    changed = [k for k in requested_flat if k not in RESUMABLE_CHANGES and saved_flat.get(k) != requested_flat[k]]
    if changed:
        details = ", ".join(f"{k}: {saved_flat.get(k)!r} -> {requested_flat[k]!r}" for k in changed)
        raise ConfigError(f"--resume {run_dir}: the config differs from the saved run ({details}); only --iterations and --data may change")


def train(config: Config, run_dir: Path, resume: bool = False, force: bool = False) -> Path:
    """Train `config.pipeline` for `config.train.iterations` steps; returns the checkpoint path.

    Under torchrun every process runs this function on its share of each batch; rank 0 alone writes."""
    if config.data.root is None:
        raise ConfigError("no dataset: pass --data ROOT or set data.root in the config")
    world, device = join_world(pick_device(config.train.device))
    run = RunDir(run_dir)
    try:
        with claimed(run, resume, force, Path(config.data.root)) if world.is_main else nullcontext():
            checkpoint = _train(config, run_dir, resume, world, device)
        wait_for_all(world)
        return checkpoint
    finally:
        leave_world(world)


def _train(config: Config, run_dir: Path, resume: bool, world: World, device: torch.device) -> Path:
    run = RunDir(run_dir)
    state, saved_iterations = None, 0
    if resume:
        if world.is_main:
            remove_stale_temporaries(run.checkpoints)
        state = load_checkpoint(run.checkpoint)
        saved_iterations = state["iteration"]
        _check_same_experiment(state["config"], config_to_dict(config), run_dir)
    if world.is_main:
        save_config(config, run.config)

    torch.manual_seed(config.train.seed)
    clips = training_clips(config)
    pipeline = build_pipeline(config, device)
    # The configured rates, read before a checkpoint's optimizer state (which holds decayed rates) is loaded.
    base_rates = {name: [g["lr"] for g in opt.param_groups] for name, opt in pipeline.optimizers.items()}
    if state is not None:
        load_pipeline_state(pipeline, state)
        torch.set_rng_state(state["torch_rng"])
    if world.distributed:
        check_batch_split(config.train.batch_size, world)
        if not hasattr(pipeline, "distribute"):
            raise ConfigError(f"pipeline '{config.pipeline}' trains in one process only; run it without torchrun")
        pipeline.distribute(lambda network: data_parallel(network, device))

    checkpoint_path = run.checkpoint
    sample = clips.batch(np.linspace(0, len(clips) - 1, 4).astype(int)).to(device)
    writer = SummaryWriter(str(run.tensorboard)) if world.is_main else None
    schedule = config.train
    step = saved_iterations

    def checkpoint() -> None:
        if not world.is_main:
            return
        save_checkpoint(
            {
                "iteration": step,
                "config": config_to_dict(config),
                "torch_rng": torch.get_rng_state(),
                **pipeline_state(pipeline),
            },
            checkpoint_path,
        )

    bar = tqdm(total=schedule.iterations, initial=step, desc=f"train {config.pipeline}", unit="step",
               dynamic_ncols=True, disable=not world.is_main)
    started = time.perf_counter()
    try:
        while step < schedule.iterations:
            scale = learning_rate_scale(config, step)
            for name, optimizer in pipeline.optimizers.items():
                for group, rate in zip(optimizer.param_groups, base_rates[name]):
                    group["lr"] = rate * scale
            indices = local_share(batch_indices(len(clips), schedule.batch_size, schedule.seed, step), world)
            batch = {name: value.to(device) for name, value in pipeline.make_batch(clips, indices).items()}
            try:
                losses = pipeline.train_step(batch)
            except NonFiniteLoss as error:
                if schedule.on_nonfinite == "skip":
                    if writer:
                        writer.add_scalar("train/skipped_nonfinite", 1, step)
                    step += 1
                    bar.update()
                    continue
                raise PseudovadError(
                    f"training stopped at iteration {step}: {error}. The last good checkpoint "
                    f"({checkpoint_path}) is kept; lower the learning rate, or set train.on_nonfinite=skip"
                ) from None
            step += 1
            bar.update()
            if writer and (step % schedule.log_every == 0 or step == schedule.iterations):
                for name, value in losses.items():
                    writer.add_scalar(f"loss/{name}", value, step)
                writer.add_scalar("speed/steps_per_second", (step - saved_iterations) / (time.perf_counter() - started), step)
                bar.set_postfix({name: f"{value:.4f}" for name, value in losses.items()}, refresh=False)
            if writer and (step % schedule.sample_every == 0 or step == schedule.iterations or step in schedule.gallery_at):
                _write_samples(writer, pipeline, sample, step, run_dir if step in schedule.gallery_at else None)
            if step % schedule.checkpoint_every == 0 or step == schedule.iterations:
                checkpoint()
    except KeyboardInterrupt:
        checkpoint()
        raise PseudovadError(f"interrupted at iteration {step}; checkpoint saved, continue with --resume") from None
    finally:
        bar.close()
        if writer:
            writer.close()
    if world.is_main:
        run.summary.write_text(
            json.dumps(
                {
                    "iterations": step,
                    "resumed_from": saved_iterations,
                    "seconds": time.perf_counter() - started,
                    "training_clips": len(clips),
                    "device": str(device),
                    "processes": world.size,
                },
                indent=2,
            )
        )
    return checkpoint_path


def _write_samples(writer: SummaryWriter, pipeline, sample: torch.Tensor, step: int, gallery_dir: Path | None) -> None:
    """The pipeline's sample images side by side in TensorBoard, and as a PNG gallery at the
    iterations listed in `train.gallery_at`."""
    columns = pipeline.sample_images(sample)
    rows = torch.cat(list(columns.values()), dim=-1)
    writer.add_images("samples/" + " | ".join(columns), (rows.float().cpu() + 1) / 2, step)
    if gallery_dir is not None:
        save_gallery(columns, gallery_dir / "gallery" / f"step_{step:06d}.png", f"iteration {step}")
