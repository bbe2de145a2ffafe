"""Wall time and peak RAM of each stage of a flow run, so a rehearsal can say what a stage cost on this machine.

RAM is the summed resident set of this process and every process below it (a local Ray's raylet and workers, DVC
and other child tools), sampled every 0.2 s by a background thread. Shared pages (memory-mapped data, libraries)
count once per process, so the figure is an upper bound. Workers on other machines of a Ray cluster are not seen.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import psutil
from pydantic import BaseModel

SAMPLE_EVERY_S = 0.2


class StageUsage(BaseModel):
    seconds: float
    peak_rss_gb: float
    start_rss_gb: float


def tree_rss_bytes(root: psutil.Process) -> int:
    """Resident bytes of ``root`` and all of its descendants (processes that vanish while counted are skipped)."""
    total = 0
    for process in [root, *root.children(recursive=True)]:
        try:
            total += process.memory_info().rss
        except psutil.Error:
            continue
    return total


class StageMeter:
    """Collects one ``StageUsage`` per named stage: ``with meter.stage("train"): ...``."""

    def __init__(self) -> None:
        self.stages: dict[str, StageUsage] = {}
        self._root = psutil.Process()

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start_rss = tree_rss_bytes(self._root)
        peak = [start_rss]
        stop = threading.Event()

        def sample() -> None:
            while not stop.wait(SAMPLE_EVERY_S):
                peak[0] = max(peak[0], tree_rss_bytes(self._root))

        sampler = threading.Thread(target=sample, name=f"rss-{name}", daemon=True)
        started = time.perf_counter()
        sampler.start()
        try:
            yield
        finally:
            stop.set()
            sampler.join()
            peak[0] = max(peak[0], tree_rss_bytes(self._root))
            self.stages[name] = StageUsage(
                seconds=round(time.perf_counter() - started, 1),
                peak_rss_gb=round(peak[0] / 2**30, 2),
                start_rss_gb=round(start_rss / 2**30, 2),
            )
