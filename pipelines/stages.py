"""Wall time and peak RAM of each stage of a flow run, so a rehearsal can say what a stage cost on this machine.

RAM is the summed proportional set size (PSS) of this process and every process below it (a local Ray's raylet and
workers, DVC and other child tools), plus the processes of the local Ray head that training jobs run on (not below
this process: it outlives the flow), sampled every 0.2 s by a background thread. PSS splits a shared page (the
memory-mapped decoded dataset that both Ray workers read, libraries) among the processes that map it, so the sum is
what the tree really occupies; summed resident sets would count such a page once per process (on ARC-AGI-1 that
reported 29 GB on a 24 GB machine). Where the OS has no PSS (not Linux) it falls back to RSS, an upper bound.
Workers on other machines of a Ray cluster are not seen.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import psutil
from pydantic import BaseModel

SAMPLE_EVERY_S = 0.2


class StageUsage(BaseModel):
    seconds: float
    peak_memory_gb: float
    start_memory_gb: float


def process_memory_bytes(process: psutil.Process) -> int:
    """PSS of one process where the OS reports it (Linux), else its RSS."""
    try:
        return int(process.memory_full_info().pss)
    except (AttributeError, psutil.AccessDenied):
        return int(process.memory_info().rss)


def tree_memory_bytes(root: psutil.Process, also: list[psutil.Process] | None = None) -> int:
    """Memory of ``root``, all of its descendants and ``also`` (each process once; processes that vanish while
    counted are skipped)."""
    members = {p.pid: p for p in [*(also or []), root, *root.children(recursive=True)]}
    total = 0
    for process in members.values():
        try:
            total += process_memory_bytes(process)
        except psutil.Error:
            continue
    return total


class StageMeter:
    """Collects one ``StageUsage`` per named stage: ``with meter.stage("train"): ...``; ``also`` names processes
    outside this process tree that work for it (asked at every sample: they may start during a stage)."""

    def __init__(self, also: Callable[[], list[psutil.Process]] | None = None) -> None:
        self.stages: dict[str, StageUsage] = {}
        self._root = psutil.Process()
        self._also = also or list

    def _memory(self) -> int:
        return tree_memory_bytes(self._root, self._also())

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = self._memory()
        peak = [start]
        stop = threading.Event()

        def sample() -> None:
            while not stop.wait(SAMPLE_EVERY_S):
                peak[0] = max(peak[0], self._memory())

        sampler = threading.Thread(target=sample, name=f"rss-{name}", daemon=True)
        started = time.perf_counter()
        sampler.start()
        try:
            yield
        finally:
            stop.set()
            sampler.join()
            peak[0] = max(peak[0], self._memory())
            self.stages[name] = StageUsage(
                seconds=round(time.perf_counter() - started, 1),
                peak_memory_gb=round(peak[0] / 2**30, 2),
                start_memory_gb=round(start / 2**30, 2),
            )
