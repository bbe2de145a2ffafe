"""Where a store lives: turn a store URL into an fsspec filesystem + root, and retry the network calls.

Accepted URLs: a plain path (``artifacts``, ``/srv/models``), ``file:///srv/models``, and ``s3://bucket/prefix``.
For S3 the endpoint and credentials come from explicit ``options`` first, else from the environment
(``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``), else botocore's usual chain.
Credentials are handed to s3fs and nowhere else: no ``StoreLocation`` field, message or repr contains them,
and every URL shown to a user goes through :func:`redact` first.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from trm.paths import REPO_ROOT
from trm.store.errors import StoreError, StoreUnavailableError

log = logging.getLogger(__name__)
T = TypeVar("T")

DEFAULT_RETRY_ATTEMPTS = 4
DEFAULT_RETRY_BACKOFF_S = 0.5
_SECRET_QUERY_WORDS = ("secret", "key", "token", "password", "signature", "credential")


def default_store_url() -> str:
    """``$TRM_STORE`` if set, else ``<repo>/artifacts`` (git-ignored), so a laptop needs no configuration."""
    return os.environ.get("TRM_STORE") or str(REPO_ROOT / "artifacts")


def redact(url: str) -> str:
    """The URL with any user/password and secret-looking query values replaced by ``***``: safe to log."""
    text = str(url)
    if "://" not in text:
        return text
    parts = urlsplit(text)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "***@" + netloc.rsplit("@", 1)[1]
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode(
            [(k, "***" if any(w in k.lower() for w in _SECRET_QUERY_WORDS) else v) for k, v in pairs], safe="*"
        )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


@dataclass(frozen=True)
class StoreLocation:
    """An opened store: the filesystem, the root inside it, and a display URL that is safe to print."""

    fs: Any = field(repr=False)
    root: str  # path inside ``fs`` (no protocol), without trailing slash
    display_url: str  # redacted
    is_local: bool
    retry_attempts: int = DEFAULT_RETRY_ATTEMPTS
    retry_backoff_s: float = DEFAULT_RETRY_BACKOFF_S

    def join(self, *parts: str) -> str:
        """The fs path of ``parts`` below the root (parts are validated names, never user paths)."""
        return "/".join([self.root.rstrip("/"), *parts]) if self.root else "/".join(parts)

    def call(self, what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run one filesystem call; on a remote store, retry network failures with exponential backoff and then
        fail with a :class:`StoreUnavailableError` naming the (redacted) store URL and the operation."""
        if self.is_local:
            return fn(*args, **kwargs)
        last: BaseException | None = None
        for attempt in range(1, self.retry_attempts + 1):
            try:
                return fn(*args, **kwargs)
            except Exception as error:  # noqa: BLE001 - classified right below
                if not _is_network_error(error):
                    raise
                last = error
                if attempt < self.retry_attempts:
                    delay = self.retry_backoff_s * (2 ** (attempt - 1))
                    log.warning(
                        "store %s: %s failed (%s: %s), retry %d/%d in %.1fs",
                        self.display_url, what, type(error).__name__, _scrub(str(error)), attempt,
                        self.retry_attempts - 1, delay,
                    )
                    time.sleep(delay)
        raise StoreUnavailableError(
            f"store {self.display_url} is unreachable: {what} failed {self.retry_attempts} times; "
            f"last error: {type(last).__name__}: {_scrub(str(last))}"
        ) from last


def _scrub(text: str) -> str:
    """Library messages may quote an endpoint URL; drop any user:password part from URLs inside them."""
    return re.sub(r"://[^/@\s\"']+@", "://***@", text)


def _network_error_types() -> tuple[type[BaseException], ...]:
    types: list[type[BaseException]] = [ConnectionError, TimeoutError]
    try:
        from botocore import exceptions as boto

        types += [boto.ConnectionError, boto.HTTPClientError]
    except ImportError:  # pragma: no cover - s3fs pulls botocore in
        pass
    try:
        import aiohttp

        types.append(aiohttp.ClientConnectionError)
    except ImportError:  # pragma: no cover
        pass
    try:
        from fsspec.exceptions import FSTimeoutError

        types.append(FSTimeoutError)
    except ImportError:  # pragma: no cover
        pass
    return tuple(types)


# s3fs turns throttling / server errors (SlowDown, 503, InternalError, 500) into OSError with these errnos
_TRANSIENT_ERRNOS = {errno.EBUSY, getattr(errno, "EREMOTEIO", 121)}


def _is_network_error(error: BaseException) -> bool:
    """Worth retrying: connection failures, timeouts, throttling and 5xx. Not: missing keys, permissions,
    precondition failures (an exclusive create that lost), bad requests."""
    if isinstance(error, (FileNotFoundError, FileExistsError, PermissionError)):
        return False
    if isinstance(error, OSError) and error.errno in _TRANSIENT_ERRNOS:
        return True
    return isinstance(error, _network_error_types())


def open_store(
    url: str | os.PathLike[str] | None = None,
    options: Mapping[str, Any] | None = None,
    *,
    retry_attempts: int | None = None,
    retry_backoff_s: float | None = None,
) -> StoreLocation:
    """Open the store at ``url`` (default :func:`default_store_url`).

    ``options`` for S3: ``endpoint_url``, ``key``, ``secret``, ``token`` (override the environment) and any other
    s3fs keyword. Retry knobs default to 4 attempts with 0.5 s, 1 s, 2 s pauses (env ``TRM_STORE_RETRIES``,
    ``TRM_STORE_RETRY_BACKOFF`` override them). Opening does not touch the network.
    """
    text = str(url) if url is not None else default_store_url()
    attempts = retry_attempts or int(os.environ.get("TRM_STORE_RETRIES", DEFAULT_RETRY_ATTEMPTS))
    backoff = retry_backoff_s if retry_backoff_s is not None else float(
        os.environ.get("TRM_STORE_RETRY_BACKOFF", DEFAULT_RETRY_BACKOFF_S)
    )
    if attempts < 1:
        raise StoreError(f"retry attempts must be >= 1, got {attempts}")
    scheme = urlsplit(text).scheme if "://" in text else ""
    if scheme in ("", "file", "local"):
        import fsspec

        path = text.split("://", 1)[1] if scheme else text
        root = str(Path(path).expanduser().resolve())
        return StoreLocation(fsspec.filesystem("file"), root, root, True, attempts, backoff)
    if scheme in ("s3", "s3a"):
        root = _s3_root(text)
        return StoreLocation(_s3_filesystem(dict(options or {})), root, redact(text), False, attempts, backoff)
    raise StoreError(f"unsupported store URL {redact(text)!r}: use a path, file://PATH or s3://BUCKET/PREFIX")


def _s3_root(url: str) -> str:
    parts = urlsplit(url)
    if "@" in parts.netloc:
        raise StoreError(f"store URL {redact(url)!r} carries credentials; they would end up in logs and manifests: "
                         "use AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or open_store(url, options={'key', 'secret'})")
    bucket = parts.netloc
    if len(bucket) < 3:
        raise StoreError(f"store URL {redact(url)!r} needs a bucket name of at least 3 characters")
    return "/".join(p for p in (bucket, parts.path.strip("/")) if p)


def _s3_filesystem(options: dict[str, Any]):
    """An s3fs filesystem with our own retry policy (so 'endpoint down' fails in seconds, not minutes) and no
    listing cache (other processes publish concurrently; a stale listing would hide their versions)."""
    import s3fs

    endpoint = options.pop("endpoint_url", None) or os.environ.get("AWS_ENDPOINT_URL")
    key = options.pop("key", None) or os.environ.get("AWS_ACCESS_KEY_ID")
    secret = options.pop("secret", None) or os.environ.get("AWS_SECRET_ACCESS_KEY")
    token = options.pop("token", None) or os.environ.get("AWS_SESSION_TOKEN")
    client_kwargs = dict(options.pop("client_kwargs", {}) or {})
    if endpoint:
        client_kwargs.setdefault("endpoint_url", endpoint)
    config_kwargs = {"retries": {"max_attempts": 1}, "connect_timeout": 5, "read_timeout": 60}
    config_kwargs.update(options.pop("config_kwargs", {}) or {})
    fs = s3fs.S3FileSystem(
        key=key,
        secret=secret,
        token=token,
        client_kwargs=client_kwargs,
        config_kwargs=config_kwargs,
        use_listings_cache=False,
        skip_instance_cache=True,
        **options,
    )
    fs.retries = 1  # s3fs' own retry loop; ours (StoreLocation.call) does the backoff and the clear error
    return fs
