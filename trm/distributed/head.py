"""A local Ray head that outlives the process that started it, so training submitted to it as a Ray job survives
its orchestrator (a killed flow run or Prefect worker).

One head per state folder (``$TRM_RAY_HEAD_DIR``, default ``~/.cache/trm-pipeline/ray-head-<environment>``): the
first caller starts it with `ray start --head` in its own session (a Ctrl-C or SIGKILL of the caller's process group
does not reach it) and records its addresses in ``head.json``; later callers find it there and check that its
dashboard (the Jobs API) answers. A file lock keeps two callers from starting two heads. `trm ray stop` stops it.
After upgrading Ray, stop the old head: client and head must run the same Ray version.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import psutil
from filelock import FileLock
from pydantic import BaseModel

from trm.atomic import atomic_write_json
from trm.distributed.cluster import LOCAL_ENV_DEFAULTS
from trm.errors import PreflightError

STATE_FILE = "head.json"
START_TIMEOUT_S = 180.0


class LocalHead(BaseModel):
    """Where a running local head answers, and the folder whose processes are its own."""

    gcs_address: str  # host:port, what ray.init joins
    dashboard_url: str  # http://127.0.0.1:port, what the Jobs API client talks to
    temp_dir: str
    num_cpus: int
    session_id: int  # every process of the head runs in this session (the `ray start` call's own)


def head_dir() -> Path:
    """``$TRM_RAY_HEAD_DIR``, else one folder per Python environment: the head's workers run the interpreter that
    started it, so two virtual environments must not share one."""
    env_id = hashlib.sha256(sys.prefix.encode()).hexdigest()[:8]
    default = Path.home() / ".cache" / "trm-pipeline" / f"ray-head-{env_id}"
    return Path(os.environ.get("TRM_RAY_HEAD_DIR") or default).expanduser()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def answers(head: LocalHead, timeout_s: float = 3.0) -> bool:
    """The Jobs API of ``head`` responds."""
    try:
        with urllib.request.urlopen(f"{head.dashboard_url}/api/version", timeout=timeout_s) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def read_head(folder: Path | None = None) -> LocalHead | None:
    path = (folder or head_dir()) / STATE_FILE
    try:
        return LocalHead.model_validate_json(path.read_text())
    except (OSError, ValueError):
        return None


def _start(folder: Path, num_cpus: int) -> LocalHead:
    # Ray's socket paths must stay short (~107 chars): the temp folder sits directly under /tmp
    temp_dir = tempfile.mkdtemp(prefix="trm-head-", dir=os.environ.get("TRM_RAY_TMPDIR", "/tmp"))
    gcs_port, dashboard_port = _free_port(), _free_port()
    ports = {flag: _free_port() for flag in ("--ray-client-server-port", "--dashboard-agent-listen-port")}
    command = [str(Path(sys.executable).parent / "ray"), "start", "--head", f"--port={gcs_port}"]
    command += ["--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard_port}", f"--num-cpus={num_cpus}"]
    command += [f"--temp-dir={temp_dir}", "--disable-usage-stats", *(f"{k}={v}" for k, v in ports.items())]
    env = {**os.environ, **LOCAL_ENV_DEFAULTS, "RAY_TMPDIR": temp_dir}
    env.pop("RAY_ADDRESS", None)
    starter = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    head = LocalHead(
        gcs_address=f"127.0.0.1:{gcs_port}",
        dashboard_url=f"http://127.0.0.1:{dashboard_port}",
        temp_dir=temp_dir,
        num_cpus=num_cpus,
        session_id=starter.pid,
    )
    output, _ = starter.communicate(timeout=START_TIMEOUT_S)
    if starter.returncode != 0:
        stop_processes(head)
        tail = output.strip().splitlines()[-5:]
        raise PreflightError(f"`ray start --head` failed (exit {starter.returncode}): {' | '.join(tail)}")
    (Path(temp_dir) / "ray").mkdir(exist_ok=True)  # Ray helpers find their cluster here (see cluster.connect)
    (Path(temp_dir) / "ray" / "ray_current_cluster").write_text(head.gcs_address)
    deadline = time.monotonic() + START_TIMEOUT_S
    while not answers(head):
        if time.monotonic() > deadline:
            stop_processes(head)
            raise PreflightError(f"the local Ray head started but its Jobs API ({head.dashboard_url}) never answered")
        time.sleep(1.0)
    atomic_write_json(folder / STATE_FILE, head.model_dump())
    return head


def ensure_local_head(num_cpus: int | None = None, folder: Path | None = None) -> LocalHead:
    """The running local head (found through ``head.json``), or a new one with ``num_cpus`` (default: all)."""
    folder = folder or head_dir()
    folder.mkdir(parents=True, exist_ok=True)
    with FileLock(str(folder / ".lock")):
        head = read_head(folder)
        if head is not None and answers(head):
            return head
        if head is not None:  # recorded but dead: clean up what is left of it
            stop_processes(head)
        return _start(folder, num_cpus or os.cpu_count() or 1)


def _in_session(process: psutil.Process, session_id: int) -> bool:
    try:
        return os.getsid(process.pid) == session_id
    except OSError:
        return False


def head_processes(folder: Path | None = None) -> list[psutil.Process]:
    """The processes of the recorded local head (its jobs' drivers and workers included); [] without one."""
    head = read_head(folder)
    if head is None:
        return []
    return [p for p in psutil.process_iter() if _in_session(p, head.session_id)]


def stop_processes(head: LocalHead, grace_s: float = 10.0) -> int:
    """Stop every process of ``head`` (its session: nothing else on the machine), then remove its temp folder;
    returns how many were signalled."""
    mine = [p for p in psutil.process_iter() if p.pid != os.getpid() and _in_session(p, head.session_id)]
    for process in mine:
        try:
            process.send_signal(signal.SIGTERM)
        except psutil.NoSuchProcess:
            continue
    _, alive = psutil.wait_procs(mine, timeout=grace_s)
    for process in alive:
        try:
            process.kill()
        except psutil.NoSuchProcess:
            continue
    shutil.rmtree(head.temp_dir, ignore_errors=True)
    return len(mine)


def stop_local_head(folder: Path | None = None) -> LocalHead | None:
    """Stop the recorded head (and its jobs) and forget it; None when there was none."""
    folder = folder or head_dir()
    head = read_head(folder)
    if head is None:
        return None
    stop_processes(head)
    (folder / STATE_FILE).unlink(missing_ok=True)
    return head


def describe(head: LocalHead | None) -> str:
    if head is None:
        return "no local Ray head recorded"
    state = "running" if answers(head) else "not answering"
    return json.dumps({**head.model_dump(), "state": state})
