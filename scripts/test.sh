#!/usr/bin/env bash
# The whole test suite on a fresh machine: set up .venv, then pytest on every core (pytest-xdist;
# PSEUDOVAD_TEST_WORKERS=0 runs it in this one process, e.g. under a debugger).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
exec .venv/bin/python -m pytest -n "${PSEUDOVAD_TEST_WORKERS:-auto}" "$@"
