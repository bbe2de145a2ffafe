"""The per-step metrics log of a run (``metrics.jsonl``): one JSON object per line, appended and flushed per write,
so a crashed run keeps everything written so far and a curve can be drawn while training runs."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

from trm.atomic import atomic_write_text


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
        the log continues without gaps or repeats."""
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

    def write(self, kind: str, step: int, values: dict[str, Any]) -> None:
        if not self.enabled:
            return
        record = {"kind": kind, "step": int(step), "time": round(time.time(), 3)}
        record.update({k: _clean(v) for k, v in values.items()})
        with self.path.open("a") as handle:
            handle.write(json.dumps(record, sort_keys=True) + "\n")


def read_metrics(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
