#!/usr/bin/env bash
# Install (pinned) if needed, then the linters and the whole test suite. `.ci/run` calls exactly this.
#   1. ruff (lint + format check) and mypy over the code; configuration in pyproject.toml
#   2. the command-line tests once at a narrow terminal width (their output must not depend on the terminal)
#   3. every test, then the 25 slowest (where the suite's time goes differs between machines)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
export RAY_AUTH_MODE=disabled PREFECT_SERVER_ANALYTICS_ENABLED=false DVC_NO_ANALYTICS=1
.venv/bin/ruff check trm pipelines tests bench
.venv/bin/ruff format --check trm pipelines tests bench
.venv/bin/mypy
COLUMNS=50 .venv/bin/python -m pytest -q -p no:cacheprovider --timeout=900 -m cli tests
exec .venv/bin/python -m pytest -q -p no:cacheprovider --timeout=900 --durations=25 "$@" tests
