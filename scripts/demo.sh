#!/usr/bin/env bash
# The main job on a fresh machine: set up .venv, then synthetic data -> train FFP -> evaluate.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
exec .venv/bin/pseudovad demo "$@"
