#!/usr/bin/env bash
# The README's first command on a fresh machine: pinned install, then the CPU smoke retrain end to end on embedded
# defaults -- DVC builds the 4x4 Sudoku data, a local Ray (started on demand) trains with 2 workers, the model is
# evaluated on the held-out test split and published to the local store ./artifacts -- and prints where the
# published model and its model card are. Prefect runs without a server (a temporary one inside the run).
# Extra arguments go to `python -m pipelines.retrain` (e.g. --store s3://bucket/trm, --set train.max_steps=300).
# TRM_SKIP_INSTALL=1 skips the install step when .venv is already set up.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${TRM_SKIP_INSTALL:-0}" != "1" ]; then
    bash scripts/install.sh
fi

# DVC stage commands say `python`: make it the project's interpreter.
export PATH="$PWD/.venv/bin:$PATH"
# Prefect without a server: its temporary server needs more than the default 20 s to start on 2 busy cores; keep
# its database inside the (git-ignored) runs/ folder so that nothing else on the machine shares or locks it.
export PREFECT_HOME="${PREFECT_HOME:-$PWD/runs/prefect-home}"
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="${PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS:-180}"
export PREFECT_SERVER_ANALYTICS_ENABLED=false DVC_NO_ANALYTICS=1 RAY_AUTH_MODE="${RAY_AUTH_MODE:-disabled}"
mkdir -p "$PREFECT_HOME"

start=$(date +%s)
.venv/bin/python -m pipelines.retrain --preset smoke --workers 2 "$@"
echo "quickstart finished in $(( $(date +%s) - start )) s (after install)"
echo "training ran as a job on a local Ray head, which stays up for the next run: .venv/bin/trm ray stop ends it"
