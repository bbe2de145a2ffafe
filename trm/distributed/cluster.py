"""Connect to a Ray cluster, or start a private local one on demand.

Why a private temp dir: Ray otherwise writes ``/tmp/ray`` and ``/tmp/_ray_lockfiles`` shared by every user and
test on the machine; our local sessions use their own folder and remove it on shutdown. The same code then runs on
a laptop (no address), a multi-node cluster (``ray://`` or ``host:port``) and KubeRay (the head service address),
changing configuration only.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import ray

from trm.errors import PreflightError

# Defaults for local sessions: no token auth (local only), fast Train health checks (each report otherwise blocks
# ~2 s on a 2-core machine). Set before Ray starts so the raylet and every worker inherit them. The dashboard must
# stay on: it serves Ray's state API, which Train's PlacementGroupCleaner polls to free the resources of a run whose
# controller died (an ASHA-stopped Tune trial); without it those CPUs leak and the next trial never starts.
LOCAL_ENV_DEFAULTS = {
    "RAY_AUTH_MODE": "disabled",
    "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.1",
    "RAY_TRAIN_V2_ENABLED": "1",
    "RAY_USAGE_STATS_ENABLED": "0",
}


@dataclass
class RaySession:
    """What we are connected to and whether we own it (only an owned session is shut down by ``close``)."""

    address: str
    started_here: bool  # we started this Ray instance (local); close() stops it and removes its temp dir
    connected_here: bool  # we called ray.init in this process; close() disconnects
    temp_dir: str | None
    resources: dict[str, float] = field(default_factory=dict)
    nodes: int = 1
    restore_env: dict[str, str | None] = field(default_factory=dict)  # driver env to put back on close

    @property
    def cpus(self) -> float:
        return float(self.resources.get("CPU", 0.0))

    @property
    def gpus(self) -> float:
        return float(self.resources.get("GPU", 0.0))

    def close(self) -> None:
        """Disconnect if we connected, stop Ray if we started it; a session reused from the caller is left alone."""
        if self.connected_here and ray.is_initialized():
            ray.shutdown()
        _restore_env(self.restore_env)
        self.restore_env = {}
        if self.started_here and self.temp_dir:
            shutil.rmtree(self.temp_dir, ignore_errors=True)


CONNECT_TIMEOUT_S = 10.0


def host_and_port(address: str) -> tuple[str, int] | None:
    """``host:port`` of a Ray address (GCS ``host:port`` or Ray Client ``ray://host:port``); None for ``auto``
    and anything without an explicit port, which Ray resolves itself."""
    bare = address.removeprefix("ray://").rstrip("/")
    host, _, port = bare.rpartition(":")
    if not host or not port.isdigit():
        return None
    return host.strip("[]"), int(port)


def check_answers(address: str, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
    """Open a TCP connection to the head before ``ray.init``: against a dead address Ray retries its GCS
    connection for minutes, so a typo would look like a hang."""
    target = host_and_port(address)
    if target is None:
        return
    try:
        with socket.create_connection(target, timeout=timeout_s):
            pass
    except OSError as error:
        why = f"no answer within {timeout_s:.0f} s" if isinstance(error, TimeoutError) else error.strerror or str(error)
        raise PreflightError(
            f"Ray cluster {address} does not answer ({why}); fix: the address (GCS host:6379 or "
            "ray://host:10001), and that the head is up"
        ) from None


def apply_local_env_defaults() -> None:
    for key, value in LOCAL_ENV_DEFAULTS.items():
        os.environ.setdefault(key, value)


def _describe(started_here: bool, connected_here: bool, temp_dir: str | None) -> RaySession:
    alive = [n for n in ray.nodes() if n.get("Alive")]
    return RaySession(
        address=ray.get_runtime_context().gcs_address,
        started_here=started_here,
        connected_here=connected_here,
        temp_dir=temp_dir,
        resources=dict(ray.cluster_resources()),
        nodes=len(alive),
    )


def connect(
    address: str | None = None,
    *,
    num_cpus: int | None = None,
    num_gpus: int | None = None,
    temp_dir: str | None = None,
    log_to_driver: bool = False,
) -> RaySession:
    """Join the cluster at ``address`` (or ``$RAY_ADDRESS``); without one start a local Ray with its own temp dir.
    Reuses an already initialised Ray in this process (then ``started_here`` is False, so we never stop it)."""
    if ray.is_initialized():
        return _describe(False, False, None)
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address is not None:
        check_answers(address)
        ray.init(address=address, log_to_driver=log_to_driver)
        return _describe(False, True, None)
    apply_local_env_defaults()
    owned = temp_dir is None
    # Ray's socket paths must stay short (~107 chars), so keep the folder directly under /tmp.
    folder = temp_dir or tempfile.mkdtemp(prefix="trm-ray-", dir=os.environ.get("TRM_RAY_TMPDIR", "/tmp"))
    # Ray-internal helpers (e.g. Train's placement-group cleaner) find "their" cluster through $RAY_ADDRESS or
    # $RAY_TMPDIR/ray/ray_current_cluster, and otherwise fail when another Ray runs on the machine. Workers inherit
    # the raylet's environment, so point RAY_TMPDIR at our folder before starting and record the address there.
    restore = {key: os.environ.get(key) for key in ("RAY_TMPDIR", "RAY_ADDRESS")}
    os.environ["RAY_TMPDIR"] = folder
    try:
        ray.init(
            num_cpus=num_cpus, num_gpus=num_gpus, _temp_dir=folder, log_to_driver=log_to_driver, include_dashboard=None
        )
        address = ray.get_runtime_context().gcs_address
        (Path(folder) / "ray").mkdir(exist_ok=True)
        (Path(folder) / "ray" / "ray_current_cluster").write_text(address)
        os.environ["RAY_ADDRESS"] = address
    except BaseException:
        _restore_env(restore)
        if ray.is_initialized():
            ray.shutdown()
        if owned:
            shutil.rmtree(folder, ignore_errors=True)
        raise
    session = _describe(True, True, folder if owned else None)
    session.restore_env = restore
    return session


def _restore_env(values: dict[str, str | None]) -> None:
    for key, value in values.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@contextmanager
def ray_session(address: str | None = None, **kwargs) -> Iterator[RaySession]:
    """``with ray_session(address) as s:`` — connect (or start locally) and clean up what we started."""
    session = connect(address, **kwargs)
    try:
        yield session
    finally:
        session.close()
