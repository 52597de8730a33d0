"""Data-parallel training: 2 gloo processes under torchrun on CPU against one process with the same
global batch. Tolerance: 1e-6 absolute on every parameter after 8 steps (what is left is the order of
floating-point sums in the gradient average; measured about 1.5e-8), where the two can match; else
trained alike (assert_trained_alike)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch

from pseudovad.checkpoint import load_checkpoint
from pseudovad.training.distributed import World, local_share

SETTINGS = [
    "--iterations", "8",
    "--set", "data.height=32", "--set", "data.width=32",
    "--set", "generator.width=4", "--set", "generator.levels=3",
    "--set", "discriminator.width=4", "--set", "classifier.width=4", "--set", "flow.iterations=5",
    "--set", "train.precision=fp32", "--set", "train.channels_last=false",
    "--set", "train.batch_size=4", "--set", "train.sample_every=100",
    "--set", "loss.flow=2",  # all four of FFP's losses: synthetic_ffp itself drops the flow term
]
TOLERANCE = 1e-6


def train(launcher: list[str], config: str, data: Path, out: Path, *extra: str) -> dict:
    command = [*launcher, "pseudovad", "train", config, "--data", str(data), "--out", str(out), *SETTINGS, *extra]
    done = subprocess.run(command, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    return load_checkpoint(out / "checkpoints" / "latest.pt")["networks"]


SINGLE = [sys.executable, "-m"]
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m"]


def assert_same(single: dict, parallel: dict) -> None:
    for name, value in single.items():
        torch.testing.assert_close(parallel[name], value, rtol=0, atol=TOLERANCE, msg=name)


def untrained(config: str, data: Path, out: Path, *extra: str) -> dict:
    """The networks as a run of `config` starts them: one step at a learning rate of 1e-30."""
    rates = [f"{key}=1.0e-30" for key in ("train.lr_generator", "train.lr_discriminator", "classifier.lr")]
    return train(SINGLE, config, data, out, *extra, "--iterations", "1", *(arg for rate in rates for arg in ("--set", rate)))


def mean_change(after: dict, before: dict) -> float:
    """Mean absolute difference of a network's trained values (batch norm's running statistics left out)."""
    names = [name for name, value in after.items() if value.is_floating_point() and "running_" not in name]
    return sum((after[n].float() - before[n].float()).abs().sum().item() for n in names) / sum(after[n].numel() for n in names)


def assert_trained_alike(single: dict, parallel: dict, start: dict) -> None:
    """Where one and two processes may not match to the bit, two processes must still train the network
    (move it at least half as far as one process does) and train it the same way (end within a fifth of
    that distance of one process's result; measured: under 3 %, 2026-12-07)."""
    moved = mean_change(single, start)
    assert mean_change(parallel, start) > 0.5 * moved, "two processes did not train it"
    assert mean_change(parallel, single) < 0.2 * moved, "two processes trained it differently from one"


def test_two_processes_match_one_process_with_the_same_global_batch(tiny_data, tmp_path):
    """FFP without batch norm (CPU has no SyncBatchNorm; on CUDA batch norm layers are synchronised)."""
    norm = ("--set", "discriminator.norm=none")
    single = train(SINGLE, "synthetic_ffp", tiny_data, tmp_path / "single", *norm)
    parallel = train(TORCHRUN, "synthetic_ffp", tiny_data, tmp_path / "parallel", *norm)
    for network in ("generator", "discriminator"):
        assert_same(single[network], parallel[network])


def test_two_branch_pipeline_trains_in_two_processes(tiny_data, tmp_path):
    """Branch B (plain FFP) matches one process. Branch A draws its dropout masks per process and the
    classifier's batch norm normalises each process's share on CPU, so these are trained alike, not
    to the bit (assert_trained_alike)."""
    norm = ("--set", "discriminator.norm=none")
    start = untrained("synthetic_two_branch", tiny_data, tmp_path / "start", *norm)
    single = train(SINGLE, "synthetic_two_branch", tiny_data, tmp_path / "single", *norm)
    parallel = train(TORCHRUN, "synthetic_two_branch", tiny_data, tmp_path / "parallel", *norm)
    for network in ("normal_generator", "normal_discriminator"):
        assert_same(single[network], parallel[network])
    for network in ("classifier", "pseudo_generator", "pseudo_discriminator"):
        assert_trained_alike(single[network], parallel[network], start[network])


def test_learning_not_to_predict_trains_in_two_processes(tiny_data, tmp_path):
    """Each process draws its share of the global batch's pseudo-anomalies; the normal and pseudo
    terms are means over each process's own samples, so one and two processes differ slightly
    (a process may hold no normal sample): the predictor must be trained alike, not to the bit."""
    objective = ("--set", "objective={name: learn_not_to_predict, probability: 0.5, sources: [{name: skip_frames}, {name: patch}]}")
    start = untrained("synthetic_ffp", tiny_data, tmp_path / "start", *objective)
    single = train(SINGLE, "synthetic_ffp", tiny_data, tmp_path / "single", *objective)
    parallel = train(TORCHRUN, "synthetic_ffp", tiny_data, tmp_path / "parallel", *objective)
    assert all(torch.isfinite(value).all() for value in parallel["generator"].values())
    assert_trained_alike(single["generator"], parallel["generator"], start["generator"])


def test_pipelines_without_data_parallel_support_say_so(tiny_data, tmp_path):
    command = [*TORCHRUN, "pseudovad", "train", "synthetic_ognet", "--data", str(tiny_data), "--out", str(tmp_path / "run"),
               "--iterations", "4", "--set", "ognet.old_at=1", "--set", "ognet.phase2_iterations=1"]
    done = subprocess.run(command, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True)
    assert done.returncode != 0
    assert "pipeline 'ognet' trains in one process only; run it without torchrun" in done.stderr


def test_each_process_trains_on_its_own_part_of_the_global_batch():
    """Rank r of n takes every n-th clip from r: the parts are disjoint and together the global batch.
    (Two processes each training on the whole batch would average to one process's step as well, so the
    comparison with one process above cannot see this.)"""
    batch = torch.arange(8)
    parts = [local_share(batch, World(rank=rank, size=2)) for rank in range(2)]
    assert [part.tolist() for part in parts] == [[0, 2, 4, 6], [1, 3, 5, 7]]
    assert torch.equal(local_share(batch, World()), batch)
