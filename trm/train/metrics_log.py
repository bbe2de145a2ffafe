"""The per-step metrics log of a run (``metrics.jsonl``): one JSON object per line, appended and flushed per write,
so a crashed run keeps everything written so far and a curve can be drawn while training runs."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

from trm.atomic import atomic_write_text

RESUME = "resume"  # the kind of the record a resumed run writes first: where a new stretch of training begins


def _clean(value: Any) -> Any:
    """A JSON-safe scalar: tensors/numpy scalars unwrapped, NaN and infinities written as strings."""
    if hasattr(value, "item"):
        return _clean(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


class MetricsLog:
    """Writes ``path`` on the rank that owns the log (``enabled``); a no-op elsewhere."""

    def __init__(self, path: Path, enabled: bool = True) -> None:
        self.path = Path(path)
        self.enabled = enabled

    def start(self, resumed_at: int | None) -> None:
        """A fresh run replaces an old log; a resumed run drops the lines logged after its checkpoint's step, so
        the log continues without gaps or repeats, and marks where it resumed (a ``resume`` record), so the time
        it was stopped is not counted as training (``training_segments``)."""
        if not self.enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if resumed_at is None:
            self.path.unlink(missing_ok=True)
        elif self.path.exists():
            kept = [
                line
                for line in self.path.read_text().splitlines()
                if line.strip() and json.loads(line).get("step", 0) <= resumed_at
            ]
            atomic_write_text(self.path, "".join(line + "\n" for line in kept))
        if resumed_at is not None:
            self.write(RESUME, resumed_at, {})

    def write(self, kind: str, step: int, values: dict[str, Any]) -> None:
        if not self.enabled:
            return
        record = {"kind": kind, "step": int(step), "time": round(time.time(), 3)}
        record.update({k: _clean(v) for k, v in values.items()})
        with self.path.open("a") as handle:
            handle.write(json.dumps(record, sort_keys=True) + "\n")


def read_metrics(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def _timed(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in records if isinstance(r.get("time"), (int, float))]


def training_segments(records: list[dict[str, Any]]) -> list[tuple[float, float]]:
    """(first, last) epoch seconds of each stretch a run trained without a stop. A resumed run's log starts a new
    stretch at its ``resume`` record; the lines after its checkpoint were dropped, so the time from the
    checkpoint's last line to the resume (the stop and the work it lost) belongs to no stretch."""
    segments: list[list[float]] = []
    for record in _timed(records):
        now = float(record["time"])
        if not segments or record.get("kind") == RESUME:
            segments.append([now, now])
        else:
            segments[-1][1] = max(segments[-1][1], now)
    return [(first, last) for first, last in segments]


def training_clock(records: list[dict[str, Any]]) -> list[tuple[dict[str, Any], float]]:
    """Each timed record with the seconds of training before it, stops left out (as ``training_segments``)."""
    clocked: list[tuple[dict[str, Any], float]] = []
    before, first, previous = 0.0, 0.0, 0.0
    for index, record in enumerate(_timed(records)):
        now = float(record["time"])
        if index == 0 or record.get("kind") == RESUME:
            before += previous - first if index else 0.0
            first = now
        clocked.append((record, before + now - first))
        previous = now
    return clocked


def covered_seconds(segments: list[tuple[float, float]]) -> float:
    """Seconds covered by at least one of ``segments`` (trials that train side by side are counted once)."""
    total, reached = 0.0, -math.inf
    for first, last in sorted(segments):
        if last > reached:
            total += last - max(first, reached)
            reached = last
    return total
