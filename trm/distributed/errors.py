"""Which Ray failures are worth retrying: a lost node, actor or worker, a preemption, a lost connection. Not an
error raised by our own code inside a worker: a wrong config or bad data fails the same way on every attempt."""

from __future__ import annotations

from collections.abc import Iterator

import ray.exceptions as rex
from ray.train import ControllerError, WorkerGroupError

from trm.errors import UsageError

try:  # Train V2's preemption error (not in every Ray release)
    from ray.train import PreemptionError as _Preemption
except ImportError:  # pragma: no cover - older Ray
    _Preemption = rex.NodeDiedError

TRANSIENT = (
    _Preemption,
    rex.ActorDiedError,
    rex.ActorUnavailableError,
    rex.NodeDiedError,
    rex.WorkerCrashedError,
    rex.LocalRayletDiedError,
    rex.ObjectLostError,
    rex.OwnerDiedError,
    rex.RaySystemError,
    rex.GetTimeoutError,
    rex.RpcError,
    ConnectionError,
    TimeoutError,
)


def _chain(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def is_transient(error: BaseException) -> bool:
    """True for infrastructure failures (a retry may succeed), False for errors of the run itself."""
    for link in _chain(error):
        if isinstance(link, UsageError):
            return False
        if isinstance(link, WorkerGroupError):
            return bool(link.worker_failures) and all(is_transient(f) for f in link.worker_failures.values())
        if isinstance(link, ControllerError):
            return is_transient(link.controller_failure)
        if isinstance(link, rex.RayTaskError):  # our code raised inside a task: look at what it raised
            return is_transient(link.cause) if link.cause is not None else False
        if isinstance(link, TRANSIENT):
            return True
    return False
