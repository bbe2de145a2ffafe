#!/usr/bin/env bash
# Install (pinned) if needed, then run the whole test suite. `.ci/run` calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
export RAY_AUTH_MODE=disabled PREFECT_SERVER_ANALYTICS_ENABLED=false DVC_NO_ANALYTICS=1
exec .venv/bin/python -m pytest -q -p no:cacheprovider --timeout=900 "$@" tests
