#!/usr/bin/env bash
# Create .venv and install pseudovad into it (torch==2.13.0 CPU first, so pip never pulls a CUDA build).
# Re-running is cheap: it reinstalls only when pyproject.toml changed.
# Machines without a local torch 2.13.0 wheel: TORCH_INDEX=https://download.pytorch.org/whl/cpu
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
stamp=.venv/.pseudovad-installed
want=$(sha1sum pyproject.toml | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    # pip byte-compiles what it installs; keep it so: where PYTHONDONTWRITEBYTECODE=1 is set (containers
    # often do) nothing else ever writes a .pyc, and with pip --no-compile the suite took 667 s, not 494.
    if ! .venv/bin/python -c "import torch" 2>/dev/null; then
        .venv/bin/pip install --quiet "torch==2.13.0" ${TORCH_INDEX:+--index-url "$TORCH_INDEX"}
    fi
    .venv/bin/pip install --quiet -e ".[test,perceptual,onnx]"
    echo "$want" > "$stamp"
fi
