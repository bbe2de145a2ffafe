"""Raw object I/O on an opened store, with the two atomic primitives the registry builds on.

Every call goes through ``StoreLocation.call`` (one clear error when S3 is unreachable). Local writes go through
:mod:`trm.atomic`; ``write_small(exclusive=True)`` is an atomic create-if-absent (local ``os.link``, S3
conditional PUT ``If-None-Match: *``) and raises ``FileExistsError`` when the object exists.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from pathlib import Path

from trm.atomic import atomic_path, atomic_write_bytes
from trm.store.errors import NotFoundError
from trm.store.location import StoreLocation


class StoreObjects:
    """Object operations below one store root; paths are fs paths built by the registry from validated names."""

    def __init__(self, location: StoreLocation) -> None:
        self.location = location

    def where(self, path: str) -> str:
        """A path for messages: the redacted store URL + the part below the root."""
        root = self.location.root
        relative = path[len(root) :].lstrip("/") if path.startswith(root) else path
        return f"{self.location.display_url.rstrip('/')}/{relative}"

    def ls_names(self, path: str) -> list[str]:
        fs = self.location.fs
        try:
            entries = self.location.call(f"list {self.where(path)}", fs.ls, path, detail=False)
        except FileNotFoundError:
            return []
        return sorted({str(entry).rstrip("/").rsplit("/", 1)[-1] for entry in entries})

    def exists(self, path: str) -> bool:
        return bool(self.location.call(f"check {self.where(path)}", self.location.fs.exists, path))

    def read(self, path: str) -> bytes:
        try:
            data = self.location.call(f"read {self.where(path)}", self.location.fs.cat_file, path)
        except FileNotFoundError as error:
            raise NotFoundError(f"{self.where(path)}: not found in the store") from error
        return bytes(data)

    def write_small(self, path: str, data: bytes, exclusive: bool = False) -> None:
        """Write a small object in one atomic step; ``exclusive`` fails if it already exists."""
        if self.location.is_local and exclusive:
            _create_local(Path(path), data)
        elif self.location.is_local:
            atomic_write_bytes(path, data)
        else:
            mode = "create" if exclusive else "overwrite"
            self.location.call(f"write {self.where(path)}", self.location.fs.pipe_file, path, data, mode=mode)

    def upload(self, local: Path, path: str) -> None:
        if self.location.is_local:
            with atomic_path(path) as tmp:
                shutil.copyfile(local, tmp)
            return
        self.location.call(f"upload {self.where(path)}", self.location.fs.put_file, str(local), path)

    def remove_tree(self, path: str) -> None:
        if self.location.is_local:
            shutil.rmtree(path, ignore_errors=True)
            return
        with contextlib.suppress(FileNotFoundError):
            self.location.call(f"delete {self.where(path)}", self.location.fs.rm, path, recursive=True)

    def remove_file(self, path: str) -> None:
        if self.location.is_local:
            Path(path).unlink(missing_ok=True)
            return
        with contextlib.suppress(FileNotFoundError):
            self.location.call(f"delete {self.where(path)}", self.location.fs.rm_file, path)

    def find(self, path: str) -> list[str]:
        """Every object below ``path`` (one paginated listing on S3); [] if there is nothing."""
        try:
            found = self.location.call(f"list {self.where(path)}", self.location.fs.find, path)
        except FileNotFoundError:
            return []
        return [str(p) for p in found]


def _create_local(target: Path, data: bytes) -> None:
    """Atomic create-if-absent on a local disk: the complete bytes are written under a private name, then hard
    linked to ``target`` (``os.link`` fails with ``FileExistsError`` if it exists). A link, not a rename: a rename
    would replace an existing file, which is exactly what an exclusive create must not do.

    The private name sits beside ``target``'s folder, not in it: a concurrent publisher cleaning abandoned version
    folders would otherwise see a folder holding a file but no claim yet, and delete it under the claimant."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staged = target.parent.parent / f".{target.parent.name}-{target.name}.new-{uuid.uuid4().hex}"
    try:
        staged.write_bytes(data)
        os.link(staged, target)
    finally:
        staged.unlink(missing_ok=True)
