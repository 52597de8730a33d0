#!/usr/bin/env bash
# The GPU check, prepared for the first session that is lent a GPU (no session so far has had one).
# One script, about 6 minutes on one H200; it needs PyTorch with CUDA, numpy, opencv, PyYAML,
# scikit-learn, scipy, tqdm and tensorboard (the device image has all of them), nothing downloaded.
#
#   bash benchmarks/gpu_check.sh [OUT]          # OUT defaults to benchmarks/results/gpu
#
# What it writes and what to expect:
#   OUT/env.txt          torch version, CUDA, the GPU's name.
#   OUT/speed_gpu.json   benchmarks/speed.py on ped2_ffp_paper (256x256 RGB, U-Net width 64, batch 4):
#                        fp32, bf16 + channels_last, compiled (train.compile, eval.compile on) and auto
#                        (bf16 where supported, scoring compiled as for a long job; eval batch auto: 32 on a GPU,
#                        scoring_batch_size in each result) side by side. Expected:
#                        auto picks bf16 (reason names the GPU), bf16 faster than fp32, inference well above
#                        FFP's reported ~25 frames/s on a Titan; compile_warmup_* seconds are the compilation's cost.
#   OUT/synthetic/       FFP trained 1500 steps on the GPU on the built-in scene (seed 0) and evaluated:
#                        results.json holds the micro AUC, to set beside the CPU run of the same config
#                        (docs/RESULTS.md, "FFP on the synthetic default": scene 0, 0.9571): GPU kernels are not bit-identical to CPU ones, so
#                        expect the same AUC within a few points, not to the digit.
#   OUT/ddp/             the same config for 50 steps under torchrun (DDP, NCCL, one process per GPU):
#                        must finish with exit 0 and a checkpoint at step 50.
# Every step prints what it runs; the first failure stops the script with its exit status.
set -euo pipefail
OUT=${1:-benchmarks/results/gpu}
PYTHON=${PYTHON:-python3}
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
mkdir -p "$OUT"
set -x
"$PYTHON" -c "import torch; print(torch.__version__, torch.version.cuda, torch.cuda.get_device_name(0))" | tee "$OUT/env.txt"
"$PYTHON" benchmarks/speed.py --config ped2_ffp_paper --device cuda --steps 8 --out "$OUT/speed_gpu.json"
"$PYTHON" -m pseudovad synth "$OUT/scene" --seed 0
"$PYTHON" -m pseudovad train synthetic_ffp --data "$OUT/scene" --out "$OUT/synthetic" --set train.device=cuda --evaluate
"$PYTHON" -m torch.distributed.run --nproc_per_node "$("$PYTHON" -c 'import torch; print(torch.cuda.device_count())')" \
    -m pseudovad train synthetic_ffp --data "$OUT/scene" --out "$OUT/ddp" --set train.device=cuda --iterations 50
