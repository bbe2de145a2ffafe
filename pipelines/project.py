"""Where a flow run works (the project checkout holding dvc.yaml), how child tools are run, and the settings a
run on a laptop needs.

A deployment runs in whatever checkout its pull step points to, and tests run flows in a throw-away copy so that
`dvc repro` never touches the real checkout: everything a flow writes (data/, runs/, artifacts/) goes below this
directory unless a parameter says otherwise.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefect.settings import (
    PREFECT_SERVER_ANALYTICS_ENABLED,
    PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS,
    temporary_settings,
)

from trm.errors import UsageError

# Prefect without a server starts a temporary one first: ~15 s on 2 busy cores, close to its default 20 s limit.
LOCAL_PREFECT_SETTINGS: dict[Any, Any] = {
    PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS: 180,
    PREFECT_SERVER_ANALYTICS_ENABLED: False,
}


@contextmanager
def local_prefect_settings() -> Iterator[None]:
    """Prefect settings for a run started from the command line, except those the user set in the environment
    (nothing is written to os.environ)."""
    chosen = {setting: value for setting, value in LOCAL_PREFECT_SETTINGS.items() if setting.name not in os.environ}
    with temporary_settings(updates=chosen):
        yield


def project_dir(repo_dir: str | os.PathLike[str] | None = None) -> Path:
    """The checkout a flow works in: ``repo_dir`` if given, else ``$TRM_PROJECT_DIR``, else the current directory
    when it holds a dvc.yaml, else the checkout this package was imported from."""
    if repo_dir:
        root = Path(repo_dir).expanduser().resolve()
    elif os.environ.get("TRM_PROJECT_DIR"):
        root = Path(os.environ["TRM_PROJECT_DIR"]).expanduser().resolve()
    elif (Path.cwd() / "dvc.yaml").is_file():
        root = Path.cwd().resolve()
    else:
        root = Path(__file__).resolve().parent.parent
    if not (root / "dvc.yaml").is_file():
        raise UsageError(f"{root}: not a trm-pipeline checkout (no dvc.yaml); pass repo_dir=<checkout>")
    return root


def tool_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for child tools: this interpreter's bin first on PATH (DVC stage commands say `python`), and
    DVC's analytics off unless the user decided otherwise."""
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env.setdefault("DVC_NO_ANALYTICS", "1")
    env.update(extra or {})
    return env


@dataclass(frozen=True)
class CommandResult:
    args: list[str]
    returncode: int
    output: str  # stdout + stderr, interleaving not preserved

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.output.strip().splitlines()[-lines:])


def run_tool(
    args: list[str], cwd: Path, timeout: float | None = None, env: dict[str, str] | None = None
) -> CommandResult:
    """Run a command (never through a shell) and capture its output; the caller decides what a failure means."""
    done = subprocess.run(args, cwd=cwd, env=env or tool_env(), capture_output=True, text=True, timeout=timeout)
    return CommandResult(list(args), done.returncode, (done.stdout or "") + (done.stderr or ""))
