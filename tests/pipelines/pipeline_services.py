"""Helpers for the pipeline tests: real services on 127.0.0.1 (a Prefect server with its own PREFECT_HOME, a
process worker) and a throw-away copy of the project, so `dvc repro` and the flows never touch the real checkout."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
SERVER_START_TIMEOUT_S = 120.0
CLEAN_PREFIXES = ("PREFECT_", "AWS_", "TRM_", "DVC_", "RAY_ADDRESS")
KEPT = {"TRM_RAY_HEAD_DIR"}  # the test session's local Ray head (tests/conftest.py), never the developer's


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def base_env(**extra: str) -> dict[str, str]:
    """This environment without any Prefect/AWS/TRM/DVC settings the developer may have (but with the session's
    Ray head), plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(CLEAN_PREFIXES) or k in KEPT}
    env.update(
        PATH=f"{Path(PYTHON).parent}{os.pathsep}{env.get('PATH', '')}",
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        DVC_NO_ANALYTICS="1",
        RAY_AUTH_MODE="disabled",
        RAY_USAGE_STATS_ENABLED="0",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


def stop_group(process: subprocess.Popen, sig: int, grace_s: float = 30.0) -> None:
    """Signal the process group we started, then make sure it is gone."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, sig)
        process.wait(timeout=grace_s)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


@dataclass
class PrefectServer:
    api_url: str
    home: Path
    log: Path
    env: dict[str, str] = field(default_factory=dict)

    def cli(
        self, *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 180, check: bool = True
    ) -> subprocess.CompletedProcess:
        done = subprocess.run(
            [PYTHON, "-m", "prefect", *args],
            cwd=cwd,
            env=env or self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check:
            output = f"{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
            assert done.returncode == 0, f"prefect {' '.join(args)} failed ({done.returncode}):\n{output}"
        return done


@contextmanager
def running_prefect_server(home: Path) -> Iterator[PrefectServer]:
    """`prefect server start` on a free loopback port with its own PREFECT_HOME; stopped with SIGTERM after."""
    port = free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    # the scheduler service looks for due schedules every 2 s instead of every 60 s, so a schedule fires in a test
    env = base_env(PREFECT_HOME=str(home), PREFECT_API_URL=api_url, PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS="2")
    log = home / "server.log"
    with open(log, "w") as out:
        process = subprocess.Popen(
            [PYTHON, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=home,
        )
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while True:
            assert process.poll() is None, f"prefect server exited early:\n{log.read_text()[-3000:]}"
            try:
                with urllib.request.urlopen(f"{api_url}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, (
                f"prefect server not healthy in {SERVER_START_TIMEOUT_S}s:\n{log.read_text()[-3000:]}"
            )
            time.sleep(0.5)
        yield PrefectServer(api_url=api_url, home=home, log=log, env=env)
    finally:
        drain_prefect_clients()
        stop_group(process, signal.SIGTERM)


def drain_prefect_clients(timeout_s: float = 15.0) -> None:
    """Send what this process's in-process flows still queue (logs, events) while the server is up: otherwise the
    background workers retry against a stopped server for a minute at interpreter exit."""
    if "prefect.logging.handlers" not in sys.modules:
        return
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    for worker in (APILogWorker, EventsWorker):
        with contextlib.suppress(Exception):  # best effort at teardown
            worker.drain_all(timeout=timeout_s)


def copy_project(dest_root: Path, shared_datasets: Path) -> Path:
    """``dest_root/repo``: the project's files (what git tracks or would track, tests and benchmarks left out) as a
    fresh one-commit git repository, with ``dest_root/shared/datasets`` -> the offline data like the real layout."""
    repo = dest_root / "repo"
    (dest_root / "shared").mkdir(parents=True)
    (dest_root / "shared" / "datasets").symlink_to(shared_datasets, target_is_directory=True)
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    for name in listed:
        if name.startswith(("tests/", "bench/")) or not (REPO / name).is_file():
            continue
        target = repo / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, target)
    # numba's on-disk cache for the puzzle generators lives in __pycache__: reuse it instead of recompiling
    for cache in (REPO / "trm").rglob("__pycache__"):
        shutil.copytree(cache, repo / cache.relative_to(REPO), dirs_exist_ok=True)
    git_env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
    }
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "project copy for tests"]):
        subprocess.run(["git", *args], cwd=repo, env=git_env, check=True, capture_output=True, timeout=60)
    return repo


@dataclass
class Worker:
    process: subprocess.Popen
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-6000:]


def start_worker(server: PrefectServer, cwd: Path, env: dict[str, str], pool: str = "trm-local") -> Worker:
    """A process worker polling every second; its own session so SIGINT reaches it (and only it) at teardown."""
    log = cwd.parent / "worker.log"
    with open(log, "w") as out:
        process = subprocess.Popen(
            [PYTHON, "-m", "prefect", "worker", "start", "--pool", pool, "--type", "process"],
            cwd=cwd,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Worker(process, log)
