"""Write files and folders so that a reader sees the old complete version or the new complete one, never a half.

Every writer of a result file in the project (checkpoints, exports, reports, tables, metrics logs, dataset
folders, run summaries) goes through these helpers: write beside the target under a temporary name, then rename.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def _sibling(path: Path, kind: str) -> Path:
    """A hidden temporary name beside ``path`` (same folder, so the final rename never crosses filesystems)."""
    return path.parent / f".{path.name}.{kind}-{uuid.uuid4().hex[:8]}"


@contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """Yield a temporary file path beside ``path`` to write; on success it replaces ``path`` in one rename, on any
    error it is removed and ``path`` is left as it was. Creates the parent folder."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = _sibling(target, "tmp")
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_bytes(path: Path | str, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_text(path: Path | str, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def atomic_write_json(path: Path | str, value: Any, *, indent: int | None = 1, sort_keys: bool = True) -> Path:
    """JSON with a final newline; values JSON cannot hold (paths, datetimes) are written as strings."""
    text = json.dumps(value, indent=indent, sort_keys=sort_keys, default=str)
    return atomic_write_text(path, text + "\n")


@contextmanager
def atomic_folder(folder: Path | str, *, replace: bool = True) -> Iterator[Path]:
    """Yield a temp folder beside ``folder`` to fill; on success it takes ``folder``'s place, on any error it is
    removed and ``folder`` is left as it was. An existing ``folder`` is replaced only at that moment, or, with
    ``replace=False``, kept: the first complete folder wins (a cache entry another process finished first, and may
    have memory-mapped already, must not be swapped under it)."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = _sibling(folder, "tmp")
    tmp.mkdir()
    try:
        yield tmp
        if folder.exists() and replace:
            _swap(tmp, folder)
        elif not folder.exists():
            try:
                os.replace(tmp, folder)
            except OSError:
                if replace or not folder.is_dir():  # only a concurrent writer finishing first is fine
                    raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _swap(new: Path, folder: Path) -> None:
    """Replace ``folder`` by ``new``; the old folder is put back if the second rename fails."""
    old = _sibling(folder, "old")
    os.replace(folder, old)
    try:
        os.replace(new, folder)
    except BaseException:
        os.replace(old, folder)
        raise
    shutil.rmtree(old, ignore_errors=True)
