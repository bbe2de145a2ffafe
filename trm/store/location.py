"""Where a store lives: turn a store URL into an fsspec filesystem + root, and an unreachable S3 endpoint into one
clear error.

Accepted URLs: a plain path (``artifacts``, ``/srv/models``), ``file:///srv/models``, and ``s3://bucket/prefix``
(or ``s3a://``), set up by :mod:`trm.s3`. No ``StoreLocation`` field, message or repr holds a credential, and every
URL shown to a user goes through :func:`redact` first.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from pydantic import ValidationError

from trm.paths import REPO_ROOT
from trm.s3 import DEFAULT_MAX_ATTEMPTS, S3ConfigError, S3Settings, parse_s3_url, redact, s3fs_filesystem
from trm.store.errors import InvalidLocationError, StoreUnavailableError

__all__ = ["DEFAULT_RETRY_ATTEMPTS", "StoreLocation", "default_store_url", "is_transient_error", "open_store", "redact"]

T = TypeVar("T")

DEFAULT_RETRY_ATTEMPTS = DEFAULT_MAX_ATTEMPTS
RETRIES_ENV = "TRM_STORE_RETRIES"
# S3 error codes that mean "slow down", retried by botocore like 5xx replies
THROTTLING_CODES = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "RequestLimitExceeded",
        "RequestThrottled",
        "TooManyRequestsException",
    }
)
# open_store option names -> S3Settings fields; every other option goes to s3fs as is
_SETTING_OPTIONS = {
    "endpoint_url": "endpoint_url",
    "key": "access_key",
    "secret": "secret_key",
    "token": "session_token",
    "region": "region",
}


def default_store_url() -> str:
    """``$TRM_STORE`` if set, else ``<repo>/artifacts`` (git-ignored), so a laptop needs no configuration."""
    return os.environ.get("TRM_STORE") or str(REPO_ROOT / "artifacts")


@dataclass(frozen=True)
class StoreLocation:
    """An opened store: the filesystem, the root inside it, and a display URL that is safe to print."""

    fs: Any = field(repr=False)
    root: str  # path inside ``fs`` (no protocol), without trailing slash
    display_url: str  # redacted
    is_local: bool
    retry_attempts: int = DEFAULT_RETRY_ATTEMPTS  # tries per S3 request, made by botocore

    def join(self, *parts: str) -> str:
        """The fs path of ``parts`` below the root (parts are validated names, never user paths)."""
        return "/".join([self.root.rstrip("/"), *parts]) if self.root else "/".join(parts)

    def call(self, what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run one filesystem call. On S3, botocore has already retried a transient failure (connection, timeout,
        throttling, 5xx) up to ``retry_attempts`` times; one that persists becomes a :class:`StoreUnavailableError`
        naming the redacted store URL and the operation. Answers (not found, denied, precondition) pass through."""
        try:
            return fn(*args, **kwargs)
        except Exception as error:
            if self.is_local or not is_transient_error(error):
                raise
            raise StoreUnavailableError(
                f"store {self.display_url} is unreachable: {what} failed after {self.retry_attempts} attempts; "
                f"last error: {type(error).__name__}: {_scrub(str(error))}"
            ) from error


def _scrub(text: str) -> str:
    """Library messages may quote an endpoint URL; drop any user:password part from URLs inside them."""
    return re.sub(r"://[^/@\s\"']+@", "://***@", text)


def _network_error_types() -> tuple[type[BaseException], ...]:
    """What the S3 client stack raises when the endpoint cannot be reached or answers too slowly."""
    import aiohttp  # lazy: an s3fs dependency, already loaded whenever an S3 call has failed
    from botocore import exceptions as boto  # lazy: an s3fs dependency, already loaded whenever an S3 call failed
    from fsspec.exceptions import FSTimeoutError  # lazy: fsspec costs ~0.1 s and `trm --help` imports the store

    return (
        ConnectionError,
        TimeoutError,
        boto.ConnectionError,
        boto.HTTPClientError,
        aiohttp.ClientConnectionError,
        FSTimeoutError,
    )


def _http_reply(error: BaseException) -> tuple[int | None, str | None]:
    """(HTTP status, S3 error code) of the botocore ``ClientError`` s3fs translated into ``error``, if any."""
    response = getattr(error.__cause__, "response", None) or getattr(error, "response", None)
    if not isinstance(response, dict):
        return None, None
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    code = response.get("Error", {}).get("Code")
    return (status if isinstance(status, int) else None), (code if isinstance(code, str) else None)


def is_transient_error(error: BaseException) -> bool:
    """What botocore's "standard" retry mode retries: connection failures, timeouts, throttling and 5xx. Not:
    missing keys, permissions, precondition failures (an exclusive create that lost), bad requests."""
    if isinstance(error, (FileNotFoundError, FileExistsError, PermissionError)):
        return False
    if isinstance(error, _network_error_types()):
        return True
    status, code = _http_reply(error)
    return status is not None and (status >= 500 or status == 429 or code in THROTTLING_CODES)


def _retry_attempts(explicit: int | None) -> int:
    raw = os.environ.get(RETRIES_ENV)
    if explicit is not None:
        attempts = explicit
    elif raw:
        try:
            attempts = int(raw)
        except ValueError:
            raise InvalidLocationError(f"{RETRIES_ENV}={raw!r}: expected a whole number of attempts (>= 1)") from None
    else:
        attempts = DEFAULT_RETRY_ATTEMPTS
    if attempts < 1:
        raise InvalidLocationError(f"retry attempts must be >= 1, got {attempts}")
    return attempts


def open_store(
    url: str | os.PathLike[str] | None = None,
    options: Mapping[str, Any] | None = None,
    *,
    retry_attempts: int | None = None,
) -> StoreLocation:
    """Open the store at ``url`` (default :func:`default_store_url`). Opening does not touch the network.

    ``options`` for S3: ``endpoint_url``, ``key``, ``secret``, ``token``, ``region`` (override the environment) and
    any other s3fs keyword. ``retry_attempts``: tries per S3 request (default ``$TRM_STORE_RETRIES``, else 4).
    """
    text = str(url) if url is not None else default_store_url()
    attempts = _retry_attempts(retry_attempts)
    scheme = urlsplit(text).scheme if "://" in text else ""
    if scheme in ("", "file", "local"):
        import fsspec  # lazy: fsspec costs ~0.1 s and `trm --help` imports the store

        path = text.split("://", 1)[1] if scheme else text
        root = str(Path(path).expanduser().resolve())
        return StoreLocation(fsspec.filesystem("file"), root, root, True, attempts)
    if scheme in ("s3", "s3a"):
        return _open_s3(text, dict(options or {}), attempts)
    raise InvalidLocationError(f"unsupported store URL {redact(text)!r}: use a path, file://PATH or s3://BUCKET/PREFIX")


def _open_s3(url: str, options: dict[str, Any], attempts: int) -> StoreLocation:
    """An S3 store: settings from ``options`` (else the environment), botocore retrying each request."""
    try:
        root = parse_s3_url(url, schemes=("s3", "s3a")).path
    except S3ConfigError as error:
        raise InvalidLocationError(f"store URL {error}") from error
    given = {name: options.pop(option) for option, name in _SETTING_OPTIONS.items() if option in options}
    try:
        settings = S3Settings(**given)
    except ValidationError as error:  # its text would quote the values: name the fields only
        fields = sorted({str(item["loc"][0]) for item in error.errors()})
        raise InvalidLocationError(f"store {redact(url)}: invalid S3 options {fields}") from None
    try:
        fs = s3fs_filesystem(settings, max_attempts=attempts, **options)
    except S3ConfigError as error:
        raise InvalidLocationError(f"store {redact(url)}: {error}") from error
    return StoreLocation(fs, root, redact(url), False, attempts)
