"""Raw object I/O on an opened store, with the two atomic primitives the registry builds on.

Every call goes through ``StoreLocation.call`` (retries + redacted errors on S3). Local writes go to a temp name
then ``os.replace``; ``write_small(exclusive=True)`` is an atomic create-if-absent (local ``os.link``, S3
conditional PUT ``If-None-Match: *``) and raises ``FileExistsError`` when the object exists.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

from trm.store.errors import NotFoundError
from trm.store.location import StoreLocation


class StoreObjects:
    """Object operations below one store root; paths are fs paths built by the registry from validated names."""

    def __init__(self, location: StoreLocation) -> None:
        self.location = location

    def where(self, path: str) -> str:
        """A path for messages: the redacted store URL + the part below the root."""
        relative = path[len(self.location.root):].lstrip("/") if path.startswith(self.location.root) else path
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
            return self.location.call(f"read {self.where(path)}", self.location.fs.cat_file, path)
        except FileNotFoundError as error:
            raise NotFoundError(f"{self.where(path)}: not found in the store") from error

    def write_small(self, path: str, data: bytes, exclusive: bool = False) -> None:
        """Write a small object in one atomic step; ``exclusive`` fails if it already exists."""
        if self.location.is_local:
            target = Path(path)
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.tmp-{uuid.uuid4().hex}")
            tmp.write_bytes(data)
            try:
                if exclusive:
                    os.link(tmp, target)  # atomic create-if-absent
                else:
                    os.replace(tmp, target)
            finally:
                tmp.unlink(missing_ok=True)
            return
        mode = "create" if exclusive else "overwrite"
        self.location.call(f"write {self.where(path)}", self.location.fs.pipe_file, path, data, mode=mode)

    def upload(self, local: Path, path: str) -> None:
        if self.location.is_local:
            target = Path(path)
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.tmp-{uuid.uuid4().hex}")
            shutil.copyfile(local, tmp)
            os.replace(tmp, target)
            return
        self.location.call(f"upload {self.where(path)}", self.location.fs.put_file, str(local), path)

    def remove_tree(self, path: str) -> None:
        if self.location.is_local:
            shutil.rmtree(path, ignore_errors=True)
            return
        try:
            self.location.call(f"delete {self.where(path)}", self.location.fs.rm, path, recursive=True)
        except FileNotFoundError:
            pass

    def remove_file(self, path: str) -> None:
        try:
            if self.location.is_local:
                Path(path).unlink(missing_ok=True)
            else:
                self.location.call(f"delete {self.where(path)}", self.location.fs.rm_file, path)
        except FileNotFoundError:
            pass

    def find(self, path: str) -> list[str]:
        """Every object below ``path`` (one paginated listing on S3); [] if there is nothing."""
        try:
            return [str(p) for p in self.location.call(f"list {self.where(path)}", self.location.fs.find, path)]
        except FileNotFoundError:
            return []
