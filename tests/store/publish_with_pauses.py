"""Test harness: the real publish, with a pause after each uploaded file, so a test can SIGKILL a publishing
process midway or make concurrent publishers overlap. Production code has no such hook.

As a script: ``python publish_with_pauses.py STORE_URL NAME MODEL_DIR PAUSE_S``.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from trm.store import ModelStore, PublishRequest
from trm.store.objects import StoreObjects


@contextmanager
def pause_after_each_upload(seconds: float) -> Iterator[None]:
    """Wrap the real ``StoreObjects.upload``: upload the file, then sleep ``seconds``."""
    upload = StoreObjects.upload

    def upload_then_pause(self: StoreObjects, local: Path, path: str) -> None:
        upload(self, local, path)
        time.sleep(seconds)

    StoreObjects.upload = upload_then_pause  # type: ignore[method-assign]
    try:
        yield
    finally:
        StoreObjects.upload = upload  # type: ignore[method-assign]


def main(store_url: str, name: str, model_dir: str, pause_s: str) -> None:
    with pause_after_each_upload(float(pause_s)):
        ModelStore.open(store_url).publish(PublishRequest(name=name, model_dir=Path(model_dir)))


if __name__ == "__main__":
    main(*sys.argv[1:])
