#!/usr/bin/env bash
# Create .venv and install the project with every dependency pinned by requirements.lock (CPU torch).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade "pip>=24"
# torch first and alone: pinned to the CPU build so that nothing pulls a CUDA wheel.
.venv/bin/python -m pip install -q -c requirements.lock "torch==2.13.0"
.venv/bin/python -m pip install -q -c requirements.lock -e ".[test]"
.venv/bin/python -m pip check >/dev/null || { .venv/bin/python -m pip check; exit 1; }
echo "installed into $(pwd)/.venv"
