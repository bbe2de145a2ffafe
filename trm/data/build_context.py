"""What every dataset builder needs besides its parameters: the output folder, a progress bar, source paths and the
metadata fields common to all datasets."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.progress import Progress as RichProgress

from trm.data.params import Params
from trm.data.schema import SourceFile
from trm.data.writer import sha256_file
from trm.paths import datasets_root

BUILDER_VERSION = "1"
GROUPS_PER_BATCH = 256  # groups handed to the writer at once (Sudoku/Maze); affects speed only, never the bytes


def source_path(value: str) -> Path:
    """A source path parameter: relative -> under the datasets root, absolute -> as given. Relative paths keep the
    recorded parameters of a default build the same on every machine."""
    path = Path(value).expanduser()
    return path if path.is_absolute() else datasets_root() / path


def source_file(label: str, path: Path) -> SourceFile:
    """The metadata record of one input file: the parameter value as given, its name and its sha256."""
    return SourceFile(path=label, name=path.name, sha256=sha256_file(path))


def csv_source_names(path: Path, rows: Any) -> list[str]:
    """``"<file name>:<data row>"`` per example, the ``source_id`` of CSV-sourced rows."""
    return [f"{path.name}:{int(r)}" for r in rows]


class Progress:
    """A rich progress bar when asked for, silent otherwise (builders call it the same way)."""

    def __init__(self, enabled: bool) -> None:
        self._bar: RichProgress | None = None
        self._task: TaskID | None = None
        if enabled:
            columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
            self._bar = RichProgress(*columns)
            self._bar.start()

    def stage(self, description: str, total: int | None) -> None:
        if self._bar is not None:
            if self._task is not None:
                self._bar.update(self._task, completed=self._bar.tasks[self._task].total)
            self._task = self._bar.add_task(description, total=total)

    def advance(self, n: int = 1) -> None:
        if self._bar is not None and self._task is not None:
            self._bar.advance(self._task, n)

    def set(self, completed: int) -> None:
        if self._bar is not None and self._task is not None:
            self._bar.update(self._task, completed=completed)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()


def running_total(progress: Progress) -> Callable[[int], None]:
    """Adapter for generator callbacks that report a running count per set (train first, then test)."""
    done = [0, 0]

    def tick(count: int) -> None:
        if count < done[1]:
            done[0] += done[1]
        done[1] = count
        progress.set(done[0] + count)

    return tick


@dataclass
class BuildContext:
    """One build's output folder, progress bar and resolved parameters."""

    name: str
    out: Path
    progress: Progress
    params: Params

    def metadata(self, **fields: Any) -> dict[str, Any]:
        """The metadata fields every dataset shares, plus the builder's own ``fields``."""
        params = self.params.model_dump(mode="json")
        return {"name": self.name, "builder_version": BUILDER_VERSION, "params": params, **fields}
