#!/usr/bin/env bash
# Create .venv (once) with the CPU build of PyTorch and genmodels with its test and plot extras.
# Idempotent: a second run only re-checks the installation.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
# PyTorch first and pinned: installing it before genmodels keeps pip from pulling a CUDA build.
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q "torch==2.13.0"
.venv/bin/python -m pip install -q -e ".[dev]"
