"""Can the Ray cluster host the requested workers? Checked before a Ray Train job or a Tune search starts, because
Ray itself waits silently and forever for resources that never come.

A local Ray (no address) is this machine: the check needs no Ray at all and fails at once. A cluster may grow (an
autoscaler adds nodes): the check waits, saying what it waits for, up to a bounded time (``TRM_RAY_WAIT_S``,
default 300 s), then fails with the numbers and the fix.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass

import ray
import torch

from trm.errors import PreflightError, UsageError

WAIT_ENV = "TRM_RAY_WAIT_S"
DEFAULT_WAIT_S = 300.0
SAY_EVERY_S = 10.0
TRAINABLE_CPU = 0.01  # what a Tune trial's own function holds besides its Train workers


@dataclass(frozen=True)
class Demand:
    """What one job (a Train run, or one Tune trial) needs at once."""

    workers: int
    cpus_per_worker: float
    gpus_per_worker: float = 0.0
    extra_cpus: float = 0.0

    @property
    def cpus(self) -> float:
        return self.workers * self.cpus_per_worker + self.extra_cpus

    @property
    def gpus(self) -> float:
        return self.workers * self.gpus_per_worker

    def shortfall(self, resources: dict[str, float], where: str = "the cluster") -> str | None:
        """None when ``resources`` can host it, else what is missing, in words."""
        have_cpus, have_gpus = float(resources.get("CPU", 0.0)), float(resources.get("GPU", 0.0))
        if self.cpus > have_cpus + 1e-9:
            return (
                f"{self.workers} worker(s) x {self.cpus_per_worker:g} CPU need {self.cpus:g} CPUs; "
                f"{where} has {have_cpus:g}"
            )
        if self.gpus > have_gpus + 1e-9:
            return (
                f"{self.workers} worker(s) x {self.gpus_per_worker:g} GPU need {self.gpus:g} GPUs; "
                f"{where} has {have_gpus:g}"
            )
        return None


def starts_local_ray(address: str | None) -> bool:
    """Whether connecting to ``address`` would start a private local Ray (see trm.distributed.cluster.connect)."""
    return address is None and not os.environ.get("RAY_ADDRESS") and not ray.is_initialized()


def ensure_capacity(demand: Demand, address: str | None, say: Callable[[str], None] = print) -> None:
    """Before connecting: a local Ray-to-be is checked against this machine. After connecting to a cluster, call
    ``wait_for_capacity``."""
    if starts_local_ray(address):
        check_local(demand)


def local_resources() -> dict[str, float]:
    """What a local Ray started by ``trm.distributed.cluster.connect`` gets: every CPU and GPU of this machine."""
    return {"CPU": float(os.cpu_count() or 1), "GPU": float(torch.cuda.device_count())}


def check_local(demand: Demand) -> None:
    """Fail at once when this machine can never host ``demand`` (no Ray is started)."""
    missing = demand.shortfall(local_resources(), where="this machine")
    if missing is not None:
        raise UsageError(
            f"this machine cannot host the run: {missing}; lower --workers (or the CPUs per worker), "
            "or give the address of a bigger Ray cluster"
        )


def wait_for_capacity(
    demand: Demand, address: str, timeout_s: float | None = None, say: Callable[[str], None] = print
) -> None:
    """On a connected cluster: return when its resources can host ``demand``; say what is missing every 10 s; fail
    after ``timeout_s`` (default ``$TRM_RAY_WAIT_S`` or 300 s)."""
    timeout = float(os.environ.get(WAIT_ENV, DEFAULT_WAIT_S)) if timeout_s is None else timeout_s
    started, last_said = time.monotonic(), -SAY_EVERY_S
    while True:
        missing = demand.shortfall(dict(ray.cluster_resources()))
        if missing is None:
            return
        waited = time.monotonic() - started
        if waited >= timeout:
            raise PreflightError(
                f"Ray cluster {address}: {missing} (waited {waited:.0f} s for an autoscaler); add "
                f"nodes, lower the workers, or raise {WAIT_ENV}"
            )
        if time.monotonic() - last_said >= SAY_EVERY_S:
            say(
                f"waiting for {demand.workers} worker(s) on Ray cluster {address}: {missing} "
                f"({waited:.0f}/{timeout:.0f} s)"
            )
            last_said = time.monotonic()
        time.sleep(min(2.0, max(0.1, timeout - waited)))
