"""A training killed with SIGKILL at an arbitrary moment resumes from its last checkpoint and ends with
exactly the parameters of an uninterrupted run (same seed, same schedule, CPU, one thread).

The kill lands at a different point of the run for each case: just after a checkpoint appears, inside
the steps after it, or while the next checkpoint is being written.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from pseudovad.checkpoint import load_checkpoint
from pseudovad.errors import PseudovadError

ITERATIONS = 64
SETTINGS = [
    "--set", "data.height=32", "--set", "data.width=32",
    "--set", "generator.width=4", "--set", "generator.levels=3",
    "--set", "discriminator.width=4", "--set", "flow.iterations=5",
    "--set", "train.checkpoint_every=7", "--set", "train.sample_every=1000",
    "--set", "train.lr_decay_at=32",
    "--set", "loss.flow=2",  # all four of FFP's losses: synthetic_ffp itself drops the flow term
]


def command(data: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "pseudovad", "train", "synthetic_ffp", "--data", str(data), "--out", str(out),
            "--iterations", str(ITERATIONS), *SETTINGS, *extra]


def environment() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1"}


def networks(run: Path) -> dict:
    state = load_checkpoint(run / "checkpoints" / "latest.pt")
    assert state["iteration"] == ITERATIONS
    return state["networks"]


def saved_iteration(checkpoint: Path) -> int:
    """The iteration of the checkpoint on disk, 0 while there is none (it may be replaced meanwhile)."""
    try:
        return load_checkpoint(checkpoint)["iteration"]
    except PseudovadError:
        return 0


@pytest.fixture(scope="module")
def uninterrupted(tiny_data, tmp_path_factory) -> dict:
    run = tmp_path_factory.mktemp("uninterrupted") / "run"
    subprocess.run(command(tiny_data, run), env=environment(), check=True, capture_output=True)
    return networks(run)


# The kill lands at checkpoint 7 at once, or a little after 21 or 42 (mid-step, or mid-write of the next
# checkpoint): short delays, since on a fast CPU the 22 steps left after 42 take under 0.4 s.
@pytest.mark.parametrize("after_checkpoint, delay", [(7, 0.0), (21, 0.15), (42, 0.1)])
def test_killed_run_resumes_to_the_uninterrupted_result(tiny_data, tmp_path, uninterrupted, after_checkpoint, delay):
    run = tmp_path / "run"
    checkpoint = run / "checkpoints" / "latest.pt"
    process = subprocess.Popen(command(tiny_data, run), env=environment(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while saved_iteration(checkpoint) < after_checkpoint and process.poll() is None:
            time.sleep(0.02)
        time.sleep(delay)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert process.returncode == -signal.SIGKILL, "the run finished before it could be killed; raise ITERATIONS"
    killed_at = load_checkpoint(checkpoint)["iteration"]  # never half-written, whatever the kill moment
    assert after_checkpoint <= killed_at < ITERATIONS

    subprocess.run(command(tiny_data, run, "--resume"), env=environment(), check=True, capture_output=True)
    resumed = networks(run)
    assert not list(checkpoint.parent.glob(".*.tmp")), "a killed writer's temporary file was left behind"
    for network, parameters in uninterrupted.items():
        for name, value in parameters.items():
            torch.testing.assert_close(resumed[network][name], value, rtol=0, atol=0, msg=f"{network}.{name}")


def test_a_run_also_saved_by_the_clock_resumes_to_the_uninterrupted_result(tiny_data, tmp_path, uninterrupted):
    """`train.checkpoint_minutes` saves between the every-N-step checkpoints (here N is beyond the run, so
    any earlier checkpoint is the clock's), so a kill loses minutes, not up to N steps; and the saves
    change nothing learned: killed and resumed, the run ends on the uninterrupted run's parameters."""
    run = tmp_path / "run"
    checkpoint = run / "checkpoints" / "latest.pt"
    by_the_clock = ("--set", "train.checkpoint_every=1000", "--set", "train.checkpoint_minutes=1.0e-6")
    process = subprocess.Popen(command(tiny_data, run, *by_the_clock), env=environment(), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        while saved_iteration(checkpoint) < 3 and process.poll() is None:
            time.sleep(0.02)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert process.returncode == -signal.SIGKILL, "the run finished before it could be killed; raise ITERATIONS"
    assert 3 <= load_checkpoint(checkpoint)["iteration"] < ITERATIONS

    subprocess.run(command(tiny_data, run, *by_the_clock, "--resume"), env=environment(), check=True, capture_output=True)
    for network, parameters in uninterrupted.items():
        for name, value in networks(run)[network].items():
            torch.testing.assert_close(value, parameters[name], rtol=0, atol=0, msg=f"{network}.{name}")


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_stopped_run_saves_a_whole_step_and_resumes_to_the_uninterrupted_result(tiny_data, tmp_path, uninterrupted, stop):
    """SIGTERM (a service manager, torchrun, a session ending) or Ctrl-C mid-run: the step under way
    finishes, a checkpoint of it is saved, the exit is 130; resuming ends where an uninterrupted run
    does, to the bit. A stop that landed between two networks' updates would have saved one and not
    the other."""
    run = tmp_path / "run"
    checkpoint = run / "checkpoints" / "latest.pt"
    process = subprocess.Popen(command(tiny_data, run), env=environment(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    while saved_iteration(checkpoint) < 28 and process.poll() is None:
        time.sleep(0.02)
    time.sleep(0.1)
    process.send_signal(stop)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert "checkpoint saved, continue with --resume" in err
    stopped = int(re.search(r"stopped at iteration (\d+)", err).group(1))
    assert 28 <= stopped < ITERATIONS
    assert load_checkpoint(checkpoint)["iteration"] == stopped  # the stop's own save, not the last regular one

    subprocess.run(command(tiny_data, run, "--resume"), env=environment(), check=True, capture_output=True)
    for network, parameters in uninterrupted.items():
        for name, value in networks(run)[network].items():
            torch.testing.assert_close(value, parameters[name], rtol=0, atol=0, msg=f"{network}.{name}")


def test_sigterm_to_a_grid_stops_its_trainings_each_with_a_checkpoint(tiny_data, tmp_path):
    """A grid started in the background from a script (its trainings inherit an ignored SIGINT), then
    sent SIGTERM, as a session's end or a service manager does: the trainings stop too, each after a
    whole step with its checkpoint saved, and the grid exits 130. It used to die alone and leave them
    training on."""
    pairs = {key: yaml.safe_load(value) for key, value in (pair.split("=") for pair in SETTINGS[1::2])}
    grid = tmp_path / "grid.yaml"
    grid.write_text(json.dumps({"base": "synthetic_ffp", "overrides": {**pairs, "train.iterations": 100000},
                                "variants": {"v": {}}}))
    out = tmp_path / "exp"
    process = subprocess.Popen([sys.executable, "-m", "pseudovad", "experiment", str(grid), "--data", str(tiny_data),
                                "--out", str(out)], env=environment(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    while saved_iteration(out / "v" / "seed0" / "checkpoints" / "latest.pt") < 7 and process.poll() is None:
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert "every run under way saved its checkpoint, and the same command continues the grid" in err
    stopped = int(re.search(r"stopped at iteration (\d+)", (out / "v" / "seed0.log").read_text()).group(1))
    assert load_checkpoint(out / "v" / "seed0" / "checkpoints" / "latest.pt")["iteration"] == stopped
