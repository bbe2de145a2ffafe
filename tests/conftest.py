"""Fixtures shared by every test area: the offline datasets, a real S3-compatible server on loopback, and the local
Ray head that training jobs run on (one per test session, in its own folder, stopped at the end)."""

from __future__ import annotations

import atexit
import os
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATASETS = (REPO_ROOT.parent / "shared" / "datasets").resolve()

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")


FINISHED_SESSION = pytest.StashKey[pytest.Session]()


def pytest_sessionfinish(session: pytest.Session) -> None:
    session.config.stash[FINISHED_SESSION] = session


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    """End the test process with pytest's own status once everything Python-level has been cleaned up.

    Why: Ray's native library can crash in the interpreter's final teardown, after every test has passed and the
    summary is printed (seen once on a 2-core AMD EPYC: "[ray_log_sink] std::bad_alloc", then a segmentation fault,
    so the suite exited 139 after "650 passed"). The atexit handlers still run here (Ray and Prefect stop what
    they started in this process); only the native teardown after them is skipped."""
    session = config.stash.get(FINISHED_SESSION, None)
    if session is None:  # pytest stopped before a session ran: let it exit its own way
        return
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(int(session.exitstatus))


@pytest.fixture(scope="session", autouse=True)
def session_ray_head(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Flows submit training to the local Ray head recorded in $TRM_RAY_HEAD_DIR and leave it running (that is the
    point: it outlives them). The tests' head is recorded in a folder of this session (subprocesses inherit it) and
    stopped after the last test, so nothing outlives the session and no developer's own head is touched."""
    folder = tmp_path_factory.mktemp("ray-head")
    previous = os.environ.get("TRM_RAY_HEAD_DIR")
    os.environ["TRM_RAY_HEAD_DIR"] = str(folder)
    try:
        yield folder
    finally:
        from trm.distributed.head import stop_local_head  # lazy: only a session that started one pays for Ray

        stop_local_head(folder)
        if previous is None:
            os.environ.pop("TRM_RAY_HEAD_DIR", None)
        else:
            os.environ["TRM_RAY_HEAD_DIR"] = previous


@pytest.fixture(scope="session")
def shared_datasets() -> Path:
    """The real offline datasets (`../shared/datasets`). Missing data is an error, never a skip."""
    assert SHARED_DATASETS.is_dir(), f"offline datasets not found at {SHARED_DATASETS}"
    return SHARED_DATASETS


@dataclass(frozen=True)
class S3Server:
    endpoint_url: str
    access_key: str = "testing"
    secret_key: str = "testing"
    region: str = "us-east-1"

    def env(self) -> dict[str, str]:
        """Environment variables that point boto/s3fs/pyarrow/DVC clients at this server."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": self.region,
        }

    def filesystem(self):
        import s3fs

        return s3fs.S3FileSystem(
            key=self.access_key, secret=self.secret_key, client_kwargs={"endpoint_url": self.endpoint_url}
        )

    def new_bucket(self) -> str:
        name = f"trm-{uuid.uuid4().hex[:12]}"
        self.filesystem().mkdir(name)
        return name


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """A real moto S3 server over HTTP on 127.0.0.1, started for the session and stopped after it."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield S3Server(endpoint_url=f"http://{host}:{port}")
    finally:
        server.stop()
