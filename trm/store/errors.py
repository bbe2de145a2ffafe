"""Errors the store raises on purpose; each message names the model/version/file/URL (redacted) involved."""

from __future__ import annotations

from trm.errors import UsageError


class StoreError(RuntimeError):
    """Base class of every deliberate store error (the CLI prints these without a traceback)."""


class InvalidNameError(StoreError, UsageError):
    """A model name or alias that could escape the store root or is otherwise not allowed."""


class InvalidLocationError(StoreError, UsageError):
    """A store URL or store setting that cannot work (unsupported scheme, bad bucket name, bad retry setting)."""


class StoreUnavailableError(StoreError):
    """The store could not be reached after all retries (endpoint down, DNS, timeouts)."""


class VersionExistsError(StoreError):
    """Versions are immutable: publishing onto an existing version is refused before anything is written."""


class NotFoundError(StoreError, LookupError):
    """No such model, version or alias (a version without manifest.json does not exist)."""


class ChecksumError(StoreError):
    """A downloaded file does not match the sha256/size its manifest records (tampered or corrupted)."""
