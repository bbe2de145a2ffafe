"""Which task failures a Prefect retry may fix: a lost connection, throttling, an unreachable store or remote, a
lost Ray node or worker, a preemption. Never a validation or configuration error: it fails the same way again."""

from __future__ import annotations

from typing import Any

from trm.distributed.errors import is_transient as is_transient_ray
from trm.errors import PreflightError, UsageError
from trm.store import StoreUnavailableError


def is_transient(error: BaseException) -> bool:
    if isinstance(error, UsageError | PreflightError):
        return False
    if isinstance(error, StoreUnavailableError):
        return True
    marked = getattr(error, "transient", None)  # errors that know, e.g. pipelines.prepare_data.DvcError
    if isinstance(marked, bool):
        return marked
    return is_transient_ray(error)


def retry_if_transient(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect ``retry_condition_fn``: retry only when the attempt failed for a transient reason."""
    try:
        state.result()
    except BaseException as error:  # noqa: BLE001 - classified right here
        return is_transient(error)
    return False
