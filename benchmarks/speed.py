"""Training-step and inference speed of a pipeline, plain fp32 against the shipped precision settings.

For a config (default `ped2_128_ffp`: 128x128 grayscale, width 32, batch 4, FFP's four losses) it times, on random clips:
- the full training step (D then G, every loss) in fp32 NCHW and with bf16 autocast + channels_last;
- the same step with the flow weight at 0, whose difference is the flow term's cost; the step
  with flow is timed twice: on one repeated batch (the flow of its real frames is remembered after
  the first call, as for every clip after a run's first epoch) and on a new batch each call (the
  first epoch: every real-frame flow computed);
- inference (`pipeline.score` of a pipeline built for scoring, eval batch) as frames per second,
  compiled where eval.compile says a long job should be (training.trained.compile_if_it_pays), its warm-up apart;
- the FLOPs of one training step (`torch.utils.flop_counter`: convolutions and matrix products,
  forward and backward) and the GFLOP/s achieved, as a fraction of the peak of one large 3x3
  convolution timed in the same setting and process;
- with `--data DIR`: the time to assemble a training batch from the real frames (frame cache,
  clip stacking), against the step;
- peak memory (resident set on CPU, allocated on CUDA).
Steps are timed after warm-up; on CUDA with synchronisation. Writes JSON.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/speed.py [--config ped2_128_ffp] [--device cpu] [--out FILE]

On a GPU machine it is one step of `benchmarks/gpu_check.sh` (the prepared check, with its expected
output), which runs it on ped2_ffp_paper (256x256 RGB, U-Net width 64: the numbers to set against
FFP's reported ~25 frames/s).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import resource
import time
from dataclasses import replace
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from pseudovad.config import Config, load_config, parse_override
from pseudovad.training.trained import compile_if_it_pays
from pseudovad.training.loop import batch_indices, training_clips
from pseudovad.training.hardware import cpu_bf16_features, cpu_model
from pseudovad.training.pipelines import build_pipeline

SETTINGS = {
    "fp32": [("train.precision", "fp32"), ("train.channels_last", False), ("eval.compile", "off")],
    "bf16_channels_last": [("train.precision", "bf16"), ("train.channels_last", True), ("eval.compile", "off")],
    "compiled": [("train.precision", "bf16"), ("train.channels_last", True), ("train.compile", True), ("eval.compile", "on")],
    "auto": [("train.precision", "auto"), ("train.channels_last", True), ("eval.compile", "auto")],
}


def timed(function, repeats: int, device: torch.device, warm: int = 2) -> float:
    """Seconds per call of `function`, after `warm` warm-up calls."""
    for _ in range(warm):
        function()
    if device.type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(repeats):
        function()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - started) / repeats


def conv_peak_gflops(config: Config, device: torch.device, steps: int) -> float:
    """GFLOP/s of one large 3x3 convolution (64 -> 64 channels, batch 4, 128x128, forward) in the
    config's precision and memory layout: the ceiling a U-Net step could approach here."""
    shape = (4, 64, 128, 128)
    conv = torch.nn.Conv2d(64, 64, 3, padding=1).to(device)
    images = torch.randn(shape, device=device)
    if config.train.channels_last:
        conv.to(memory_format=torch.channels_last)
        images = images.contiguous(memory_format=torch.channels_last)
    bf16 = config.train.precision == "bf16"

    def run() -> None:
        with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            conv(images)

    return 2 * math.prod(shape) * 64 * 9 / timed(run, steps, device) / 1e9


def random_clips(config: Config, batch_size: int, device: torch.device) -> torch.Tensor:
    """A batch of random clips (t input frames and the target) in the model's [-1, 1] range."""
    data = config.data
    return torch.rand((batch_size, data.clip_length + 1, data.channels, data.height, data.width), device=device) * 2 - 1


def measure(config: Config, device: torch.device, steps: int) -> dict:
    """Seconds per training step (on a repeated and on a new batch); with train.compile also the
    warm-up (the first step, compilation included)."""
    torch.compiler.reset()  # each setting compiles afresh, as in its own process (and within dynamo's recompile limit)
    torch.manual_seed(0)
    pipeline = build_pipeline(config, device)
    clips = random_clips(config, config.train.batch_size, device)
    warmup = {}
    if config.train.compile:
        warmup["compile_warmup_train_s"] = timed(lambda: pipeline.train_step({"clips": clips}), 1, device, warm=0)
    step = timed(lambda: pipeline.train_step({"clips": clips}), steps, device)
    step_new_clips = timed(lambda: pipeline.train_step({"clips": random_clips(config, config.train.batch_size, device)}), steps, device)
    return {"precision": pipeline.precision, "precision_reason": pipeline.precision_reason, "train_step_s": step,
            "train_step_new_clips_s": step_new_clips, **warmup}


def inference(config: Config, device: torch.device, steps: int) -> dict:
    """Frames/s of scoring as a long job (a camera, a long video) runs it: a pipeline built for
    scoring, compiled where eval.compile says such a job should be; the warm-up reported apart."""
    torch.compiler.reset()
    torch.manual_seed(0)
    pipeline = build_pipeline(config, device, training=False)
    compiled = compile_if_it_pays(pipeline, math.inf)
    clips = random_clips(config, pipeline.eval_batch_size, device)
    result = {"scoring_compiled": compiled, "scoring_batch_size": pipeline.eval_batch_size}
    if compiled:
        result["compile_warmup_score_s"] = timed(lambda: pipeline.score(clips), 1, device, warm=0)
    result["inference_frames_per_s"] = pipeline.eval_batch_size / timed(lambda: pipeline.score(clips), steps, device)
    return result


def step_gflop(config: Config, device: torch.device) -> float:
    """GFLOP of one training step: convolutions and matrix products, forward and backward."""
    pipeline = build_pipeline(config, device)
    with FlopCounterMode(display=False) as counter:
        pipeline.train_step({"clips": random_clips(config, config.train.batch_size, device)})
    return counter.get_total_flops() / 1e9


def batch_assembly_s(config: Config, data: Path, device: torch.device, steps: int) -> float:
    """Seconds to assemble one training batch from the real frames of `data` (frame cache, clips)."""
    config = replace(config, data=replace(config.data, root=str(data)))
    real = training_clips(config)
    pipeline = build_pipeline(config, device)
    visits = itertools.count()
    def assemble() -> None:
        step = next(visits)
        pipeline.make_batch(real, batch_indices(len(real), config.train.batch_size, 0, step), step)

    return timed(assemble, steps, device)


def peak_memory_mib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10  # KiB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="ped2_128_ffp")
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS),
                        help="which settings to time (compiled takes minutes to compile)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=8, help="timed calls per measurement")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/speed.json"))
    parser.add_argument("--data", type=Path, help="a dataset folder: also time batch assembly from its real frames")
    parser.add_argument("--set", dest="overrides", action="append", default=[], type=parse_override,
                        metavar="KEY=VALUE", help="override a config value, as for `pseudovad train`")
    args = parser.parse_args()
    device = torch.device(args.device)
    results = {}
    for name in args.settings:
        settings = SETTINGS[name]
        config = load_config(args.config, [*args.overrides, *settings])
        result = {**measure(config, device, args.steps), **inference(config, device, args.steps)}
        no_flow_settings = [item for item in settings if item[0] != "train.compile"]  # the flow share needs no second compile
        without_flow = measure(load_config(args.config, [*args.overrides, *no_flow_settings, ("loss.flow", 0)]), device, args.steps)
        gflop, peak = step_gflop(config, device), conv_peak_gflops(config, device, args.steps)
        result.update(
            train_samples_per_s=config.train.batch_size / result["train_step_s"],
            train_step_gflop=gflop,
            train_step_gflop_per_s=gflop / result["train_step_s"],
            conv_peak_gflop_per_s=peak,
            fraction_of_conv_peak=gflop / result["train_step_s"] / peak,
            train_step_no_flow_s=without_flow["train_step_s"],
            flow_share_of_step=1 - without_flow["train_step_s"] / result["train_step_s"],
            flow_share_of_step_new_clips=1 - without_flow["train_step_new_clips_s"] / result["train_step_new_clips_s"],
        )
        if args.data is not None:
            assemble = batch_assembly_s(config, args.data, device, args.steps)
            result.update(batch_assembly_s=assemble, batch_assembly_share_of_step=assemble / (assemble + result["train_step_s"]))
        results[name] = result
        print(name, json.dumps(result))
    report = {
        "config": args.config,
        "overrides": dict(args.overrides),
        "device": args.device,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu": cpu_model(),
        "cpu_bf16_features": cpu_bf16_features(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "results": results,
        "peak_memory_mib": peak_memory_mib(device),
        "train_speedup_over_fp32": {name: results["fp32"]["train_step_s"] / r["train_step_s"] for name, r in results.items()}
        if "fp32" in results else {},
        "inference_speedup_over_fp32": {name: r["inference_frames_per_s"] / results["fp32"]["inference_frames_per_s"]
                                        for name, r in results.items()} if "fp32" in results else {},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"{report['cpu']}: train speed-up over fp32 {report['train_speedup_over_fp32']}, inference "
          f"{report['inference_speedup_over_fp32']} -> {args.out}")


if __name__ == "__main__":
    main()
