"""Every command line of README.md, run as written, so that a README command cannot fail again.

The commands run in one bash session, in order, in a folder that stands in for the repository: the
README's data paths exist there (`../shared/data/ped2` is the synthetic scene's tiny preset in the same
layout, `my_camera/` holds normal videos, `my_video.mp4` a video with an anomaly), `.venv` is one whose
`pseudovad`, `torchrun` and `tensorboard` run this checkout with the test's Python, and $PSEUDOVAD_SET
(the documented switch that adds overrides to every config read) gives every training a tiny budget.
The Python blocks run after them, in the same folder. Two lines are not run as written, for reasons
named in NOT_AS_WRITTEN; a server (tensorboard) must still be serving after a few seconds.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import pytest

from pseudovad.data.synthetic import generate_synthetic

REPO_ROOT = Path(__file__).resolve().parents[1]
TINY_BUDGET = " ".join([
    "train.iterations=2", "train.batch_size=4", "data.height=32", "data.width=32", "generator.width=4", "generator.levels=3",
    "discriminator.width=4", "classifier.width=4", "flow.iterations=5", "flow.levels=2", "train.precision=fp32",
    "train.channels_last=false", "train.gallery_at=[2]",
])
NOT_AS_WRITTEN = {
    "scripts/test.sh": (None, "it runs this test suite, this test included"),
    "scripts/demo.sh": (".venv/bin/pseudovad demo", "its first step creates .venv and installs packages; its second, run here, is the demo"),
}
SERVERS = {"tensorboard": 8}  # seconds a server must keep serving; then it is stopped
VENV_COMMANDS = {"pseudovad": "-m pseudovad", "torchrun": "-m torch.distributed.run", "tensorboard": "-m tensorboard.main"}


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", (REPO_ROOT / "README.md").read_text(), flags=re.S)


def command_lines() -> list[str]:
    """Each line of the README's bash blocks, without its trailing comment; comment lines are not commands."""
    lines = []
    for block in blocks("bash"):
        for line in block.splitlines():
            command = re.sub(r"\s+#.*$", "", line).strip()
            if command and not command.startswith("#"):
                lines.append(command)
    return lines


def write_video(frames: list[Path], path: Path, repeat: int = 1) -> None:
    images = [cv2.imread(str(p)) for p in frames] * repeat
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25, images[0].shape[1::-1])
    for image in images:
        writer.write(image)
    writer.release()


def stand_in_repository(root: Path) -> Path:
    """The folder the README's commands run in, and what they expect around it."""
    work = root / "repo"
    bin_dir = work / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    for name, module in VENV_COMMANDS.items():
        (bin_dir / name).write_text(f"#!/bin/sh\nexec {sys.executable} {module} \"$@\"\n")
        (bin_dir / name).chmod(0o755)
    (bin_dir / "activate").write_text(f"export VIRTUAL_ENV={bin_dir.parent}\nexport PATH={bin_dir}:$PATH\n")
    data = root / "shared" / "data" / "ped2"
    generate_synthetic(data, seed=0, preset="tiny", overwrite=True)
    (work / "my_camera").mkdir()
    for name in ("01", "02"):
        write_video(sorted((data / "training" / "frames" / name).iterdir()), work / "my_camera" / f"{name}.mp4", repeat=2)
    write_video(sorted((data / "testing" / "frames" / "02").iterdir()), work / "my_video.mp4")
    return work


def script(commands: list[str]) -> str:
    """One bash script: each line run as written (or as NOT_AS_WRITTEN says), stopping at the first failure."""
    lines = ["set -u"]
    for number, command in enumerate(commands, start=1):
        program = command.split()[0]
        if command in NOT_AS_WRITTEN:
            command = NOT_AS_WRITTEN[command][0]
            if command is None:
                continue
        report = f"{{ echo 'README command {number} failed: {command}' >&2; exit 1; }}"
        if program in SERVERS:
            lines.append(f"timeout {SERVERS[program]} {command}; test $? -eq 124 || {report}")
        else:
            lines.append(f"{command} || {report}")
    return "\n".join(lines) + "\n"


def test_the_readme_lists_the_commands_this_test_knows():
    commands = command_lines()
    assert set(NOT_AS_WRITTEN) <= set(commands)
    for needed in ("pseudovad train --out runs/ped2_ffp --resume", "pseudovad export runs/camera"):
        assert needed in commands


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("timeout") is None, reason="needs coreutils' timeout")
def test_every_readme_command_runs(tmp_path):
    work = stand_in_repository(tmp_path)
    env = {**os.environ, "PSEUDOVAD_SET": TINY_BUDGET, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(REPO_ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(["bash", "-c", script(command_lines())], cwd=work, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (work / "runs" / "ped2_ffp" / "report" / "index.html").is_file()
    assert (work / "runs" / "camera" / "export" / "scorer.pt2").is_file()
    assert (work / "watched" / "segments.json").is_file() and (work / "scored" / "annotated.mp4").is_file()
    for number, block in enumerate(blocks("python"), start=1):
        ran = subprocess.run([sys.executable, "-c", block], cwd=work, env=env, capture_output=True, text=True, timeout=300)
        assert ran.returncode == 0, f"README Python block {number}:\n{ran.stderr[-3000:]}"
