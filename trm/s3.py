"""The one S3 set-up behind the artifact store (s3fs) and Ray's run storage (pyarrow).

Endpoint, credentials and region come from explicit :class:`S3Settings` first, then the standard AWS variables.
:func:`parse_s3_url` is the only reader of ``s3://bucket/prefix`` URLs. Secrets are ``SecretStr``: they reach the
client libraries and nothing else (no repr, message or log line shows them).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from trm.errors import UsageError

DEFAULT_REGION = "us-east-1"
DEFAULT_MAX_ATTEMPTS = 4
BUCKET_PATTERN = re.compile(r"[a-z0-9][a-z0-9.-]*[a-z0-9]")
_SECRET_QUERY_WORDS = ("secret", "key", "token", "password", "signature", "credential")


class S3ConfigError(UsageError):
    """An S3 URL or setting that cannot be used; the message names it (redacted), never a secret."""


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


def _from_env(*names: str) -> str | None:
    return next((os.environ[name] for name in names if os.environ.get(name)), None)


def _secret_from_env(name: str) -> SecretStr | None:
    value = _from_env(name)
    return SecretStr(value) if value else None


class S3Settings(BaseModel):
    """Endpoint and credentials of an S3-compatible store; unset fields fall back to the standard AWS variables."""

    model_config = ConfigDict(extra="forbid")

    endpoint_url: str | None = Field(
        None, description="e.g. http://127.0.0.1:9000; default $AWS_ENDPOINT_URL_S3, else $AWS_ENDPOINT_URL"
    )
    access_key: SecretStr | None = Field(None, description="default $AWS_ACCESS_KEY_ID")
    secret_key: SecretStr | None = Field(None, description="default $AWS_SECRET_ACCESS_KEY")
    session_token: SecretStr | None = Field(None, description="default $AWS_SESSION_TOKEN")
    region: str | None = Field(None, description=f"default $AWS_DEFAULT_REGION / $AWS_REGION, else {DEFAULT_REGION}")

    def resolved(self) -> S3Settings:
        """Every field filled from the environment where it was not given (the endpoint may stay unset: AWS)."""
        return S3Settings(
            endpoint_url=self.endpoint_url or _from_env("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"),
            access_key=self.access_key or _secret_from_env("AWS_ACCESS_KEY_ID"),
            secret_key=self.secret_key or _secret_from_env("AWS_SECRET_ACCESS_KEY"),
            session_token=self.session_token or _secret_from_env("AWS_SESSION_TOKEN"),
            region=self.region or _from_env("AWS_DEFAULT_REGION", "AWS_REGION") or DEFAULT_REGION,
        )

    def credentials(self) -> tuple[str, str, str | None] | None:
        """(access key, secret key, session token) as plain strings for a client library, or None to leave the
        choice to the library's own chain (config files, instance roles). Half a key pair is an error."""
        if self.access_key is None and self.secret_key is None:
            return None
        if self.access_key is None or self.secret_key is None:
            raise S3ConfigError("S3 credentials: give both an access key and a secret key, or neither")
        token = self.session_token.get_secret_value() if self.session_token is not None else None
        return self.access_key.get_secret_value(), self.secret_key.get_secret_value(), token

    def endpoint(self) -> tuple[str, str] | None:
        """(scheme, host[:port]) of the endpoint, or None for AWS itself; a bare ``host:port`` means https."""
        if not self.endpoint_url:
            return None
        text = self.endpoint_url if "://" in self.endpoint_url else f"https://{self.endpoint_url}"
        parts = urlsplit(text)
        if parts.scheme not in ("http", "https") or not parts.hostname or "@" in parts.netloc:
            raise S3ConfigError(f"S3 endpoint {redact(self.endpoint_url)!r}: expected a URL like http://host:port")
        return parts.scheme, parts.netloc


@dataclass(frozen=True)
class S3Url:
    """A checked ``s3://bucket/prefix``; ``prefix`` has no leading or trailing slash and may be empty."""

    bucket: str
    prefix: str

    @property
    def path(self) -> str:
        """``bucket/prefix``: how s3fs and pyarrow name the location (no scheme)."""
        return f"{self.bucket}/{self.prefix}" if self.prefix else self.bucket

    @property
    def uri(self) -> str:
        return f"s3://{self.path}"


def parse_s3_url(url: str, schemes: tuple[str, ...] = ("s3",)) -> S3Url:
    """Check and split an ``s3://bucket/prefix`` URL (``schemes`` lists the accepted schemes, e.g. ``s3a``)."""
    shown = redact(url)
    parts = urlsplit(str(url))
    expected = " or ".join(f"{scheme}://bucket/prefix" for scheme in schemes)
    if parts.scheme not in schemes:
        raise S3ConfigError(f"{shown!r}: expected {expected}")
    if "@" in parts.netloc:
        raise S3ConfigError(
            f"{shown!r} carries credentials; they would end up in logs and manifests: set AWS_ACCESS_KEY_ID/"
            "AWS_SECRET_ACCESS_KEY or give them as settings (access key + secret key)"
        )
    if parts.query or parts.fragment:
        raise S3ConfigError(f"{shown!r}: expected {expected} without '?' or '#' parts")
    _check_bucket(parts.netloc, shown, expected)
    prefix = parts.path.strip("/")
    if any(segment in (".", "..") for segment in prefix.split("/")):
        raise S3ConfigError(f"{shown!r}: '.' and '..' are not allowed in the prefix")
    return S3Url(parts.netloc, prefix)


def _check_bucket(bucket: str, shown: str, expected: str) -> None:
    """S3's bucket naming rules, so a typo fails here with its reason instead of as a signature error later."""
    if not bucket:
        raise S3ConfigError(f"{shown!r}: no bucket name; expected {expected}")
    if len(bucket) < 3:
        raise S3ConfigError(f"{shown!r}: bucket name {bucket!r} is too short (S3 needs at least 3 characters)")
    if len(bucket) > 63:
        raise S3ConfigError(f"{shown!r}: bucket name {bucket!r} is too long (S3 allows at most 63 characters)")
    if not BUCKET_PATTERN.fullmatch(bucket) or ".." in bucket:
        raise S3ConfigError(
            f"{shown!r}: bucket name {bucket!r} is not valid: use lower-case letters, digits, '.' and '-', "
            "starting and ending with a letter or digit"
        )


def s3fs_kwargs(
    settings: S3Settings | None = None,
    *,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    connect_timeout_s: float = 5,
    read_timeout_s: float = 60,
) -> dict[str, Any]:
    """Keyword arguments for ``s3fs.S3FileSystem``.

    Retries are botocore's "standard" mode (connection errors, timeouts, throttling and 5xx, jittered exponential
    backoff), at most ``max_attempts`` tries per request including the first. No listing cache (other processes
    write concurrently) and no shared instance (each call gets the settings it asked for).
    """
    resolved = (settings or S3Settings()).resolved()
    client_kwargs: dict[str, Any] = {"region_name": resolved.region}
    endpoint = resolved.endpoint()
    if endpoint is not None:
        client_kwargs["endpoint_url"] = f"{endpoint[0]}://{endpoint[1]}"
    credentials = resolved.credentials()
    key, secret, token = credentials if credentials is not None else (None, None, None)
    return {
        "key": key,
        "secret": secret,
        "token": token,
        "client_kwargs": client_kwargs,
        "config_kwargs": {
            "retries": {"mode": "standard", "total_max_attempts": max_attempts},
            "connect_timeout": connect_timeout_s,
            "read_timeout": read_timeout_s,
        },
        "use_listings_cache": False,
        "skip_instance_cache": True,
    }


def s3fs_filesystem(
    settings: S3Settings | None = None, *, max_attempts: int = DEFAULT_MAX_ATTEMPTS, **extra: Any
) -> Any:
    """An ``s3fs.S3FileSystem`` from :func:`s3fs_kwargs` (``extra`` adds/overrides keywords; ``client_kwargs`` and
    ``config_kwargs`` are merged). s3fs's own retry loop is switched off, so botocore's bound is the only one."""
    import s3fs  # lazy: s3fs + botocore take ~0.5 s to import and local stores never need them

    kwargs = s3fs_kwargs(settings, max_attempts=max_attempts)
    for nested in ("client_kwargs", "config_kwargs"):
        kwargs[nested].update(extra.pop(nested, None) or {})
    filesystem = s3fs.S3FileSystem(**{**kwargs, **extra})
    filesystem.retries = 1  # a class attribute, not a constructor keyword: s3fs' loop makes exactly one try
    return filesystem


def pyarrow_filesystem(settings: S3Settings | None = None) -> Any:
    """A ``pyarrow.fs.S3FileSystem``: it pickles with its settings, so Ray workers on other nodes (which do not
    inherit the driver's environment) can use it."""
    import pyarrow.fs as pafs  # lazy: pyarrow takes ~0.2 s to import and only Ray's storage needs it

    resolved = (settings or S3Settings()).resolved()
    kwargs: dict[str, Any] = {"region": resolved.region}
    credentials = resolved.credentials()
    if credentials is not None:
        kwargs.update(access_key=credentials[0], secret_key=credentials[1])
        if credentials[2] is not None:
            kwargs["session_token"] = credentials[2]
    endpoint = resolved.endpoint()
    if endpoint is not None:
        kwargs["scheme"], kwargs["endpoint_override"] = endpoint
    return pafs.S3FileSystem(**kwargs)
