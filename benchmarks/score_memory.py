"""Peak memory and speed of `pseudovad score` on a long video: is memory bounded by the video's length?

Writes a 1-minute and a 10-minute video (160x120, MJPG .avi, written frame by frame, so the video is
never held in memory here either), trains a tiny two-branch run on the tiny synthetic preset in a
subprocess (so training's memory does not count), then scores the short video and the long one in
this process and reports the peak RSS after each (resource.getrusage) and the frames per second.
If scoring streams, the peak after the 10-minute video is the peak after the 1-minute one.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/score_memory.py [OUTPUT.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from pseudovad.data.synthetic import generate_synthetic
from pseudovad.scoring import score_source

TINY_RUN = [
    "--iterations", "3", "--set", "data.height=32", "--set", "data.width=32", "--set", "generator.width=4",
    "--set", "generator.levels=3", "--set", "discriminator.width=4", "--set", "classifier.width=4",
    "--set", "flow.iterations=5", "--set", "train.precision=fp32", "--set", "train.channels_last=false",
]


def write_video(path: Path, frames: int, fps: int, width: int = 160, height: int = 120) -> None:
    """A grey scene with a few moving blobs and sensor noise, written one frame at a time."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (width, height))
    rng = np.random.default_rng(0)
    background = np.full((height, width, 3), 110, np.uint8)
    for index in range(frames):
        frame = background.copy()
        for blob in range(3):
            x = int((index * (blob + 1) * 0.7 + blob * 50) % width)
            y = 30 + 30 * blob
            cv2.circle(frame, (x, y), 6, (60 + 40 * blob, 60, 60), -1)
        noise = rng.integers(-4, 5, frame.shape, dtype=np.int16)
        writer.write(np.clip(frame + noise, 0, 255).astype(np.uint8))
    writer.release()


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", nargs="?", type=Path, default=Path("benchmarks/results/score_memory.json"))
    parser.add_argument("--work", type=Path, default=Path("/tmp/pseudovad_score_memory"), help="scratch folder")
    parser.add_argument("--fps", type=int, default=25)
    parser.add_argument("--short-seconds", type=int, default=60)
    parser.add_argument("--long-seconds", type=int, default=600)
    args = parser.parse_args()

    args.work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PSEUDOVAD_CACHE": str(args.work / "cache")}
    os.environ["PSEUDOVAD_CACHE"] = env["PSEUDOVAD_CACHE"]
    data, run = args.work / "synthetic", args.work / "run"
    generate_synthetic(data, seed=0, preset="tiny", overwrite=True)
    subprocess.run([sys.executable, "-m", "pseudovad", "train", "synthetic_two_branch", "--data", str(data), "--out", str(run),
                    "--force", *TINY_RUN], check=True, env=env, stdout=subprocess.DEVNULL)

    measured = {}
    for name, seconds in (("short", args.short_seconds), ("long", args.long_seconds)):
        video = args.work / f"{name}.avi"
        frames = seconds * args.fps
        write_video(video, frames, args.fps)
        started = time.perf_counter()
        summary = score_source(video, run, args.work / f"scored_{name}")[0]
        elapsed = time.perf_counter() - started
        measured[name] = {
            "video_seconds": seconds,
            "frames": summary["frames"],
            "video_file_mib": round(video.stat().st_size / 2**20, 1),
            "decoded_size_mib": round(frames * 120 * 160 * 3 / 2**20, 1),
            "scoring_seconds": round(elapsed, 1),
            "frames_per_second": round(frames / elapsed, 1),
            "peak_rss_mib_after": round(peak_rss_mib(), 1),
        }
        print(f"{name}: {frames} frames in {elapsed:.1f} s ({frames / elapsed:.0f} frames/s), peak RSS {peak_rss_mib():.0f} MiB")
    result = {
        "what": "pseudovad score on generated 160x120 MJPG videos, tiny two-branch run at 32x32 (3 iterations); "
                "peak RSS of the scoring process (training ran in a subprocess)",
        "command": f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '(unset)')} python {' '.join(sys.argv)}",
        "torch_threads": torch.get_num_threads(),
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "torch": torch.__version__},
        "short": measured["short"],
        "long": measured["long"],
        "peak_rss_growth_mib": round(measured["long"]["peak_rss_mib_after"] - measured["short"]["peak_rss_mib_after"], 1),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"peak RSS growth from the 1-minute to the 10-minute video: {result['peak_rss_growth_mib']} MiB; wrote {args.output}")


if __name__ == "__main__":
    main()
