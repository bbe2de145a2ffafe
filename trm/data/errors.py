"""The one error type every dataset reader raises, so callers (CLI, DVC stage, tests) can show *where* input is bad."""

from __future__ import annotations

from pathlib import Path


class DataError(ValueError):
    """Bad input data. ``file`` is the offending file, ``row`` a CSV row number (1-based, header excluded), an ARC
    task id, or None when the problem is about the file as a whole; ``message`` says what is wrong."""

    def __init__(self, file: str | Path | None, row: int | str | None, message: str) -> None:
        self.file = None if file is None else str(file)
        self.row = row
        self.message = message
        super().__init__(str(self))

    def __str__(self) -> str:
        where = self.file if self.file is not None else "<input>"
        if self.row is not None:
            label = "row" if isinstance(self.row, int) else "task"
            where = f"{where}, {label} {self.row}"
        return f"{where}: {self.message}"

    def __reduce__(self):  # keep the three fields when the error crosses a process boundary
        return (type(self), (self.file, self.row, self.message))
