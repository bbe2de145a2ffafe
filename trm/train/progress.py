"""The training progress bar: rich on the rank that owns the console, nothing elsewhere or when disabled."""

from __future__ import annotations

from types import TracebackType

from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


class TrainingProgress:
    def __init__(self, enabled: bool, total: int, done: int) -> None:
        self.bar: Progress | None = None
        if not enabled:
            return
        self.bar = Progress(
            TextColumn("[bold]train"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[info]}"),
        )
        self.task = self.bar.add_task("train", total=total, completed=done, info="")

    def __enter__(self) -> TrainingProgress:
        if self.bar is not None:
            self.bar.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if self.bar is not None:
            self.bar.stop()

    def update(self, step: int, info: str | None = None) -> None:
        if self.bar is not None:
            if info is None:
                self.bar.update(self.task, completed=step)
            else:
                self.bar.update(self.task, completed=step, info=info)

    def print(self, text: str) -> None:
        if self.bar is not None:
            self.bar.console.print(escape(text), highlight=False)
