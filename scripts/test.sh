#!/usr/bin/env bash
# The whole test suite on a fresh machine: set up .venv, then pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
exec .venv/bin/python -m pytest "$@"
