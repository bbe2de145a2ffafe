"""Flow `publish`: put an exported model into the artifact store as a new immutable version with its lineage.

An unreachable store (S3 endpoint down) is retried at two scales: botocore retries each request a few times within
seconds (``TRM_STORE_RETRIES``), and this task retries the whole publish with exponential backoff for outages that
last longer. Only ``StoreUnavailableError`` is retried; a refused publish (existing version, bad name, bad files)
fails at once. A failed attempt leaves no visible version (the manifest is written last), so retrying is safe.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.tasks import exponential_backoff
from pydantic import BaseModel

from pipelines.retries import retry_if_transient
from trm.store import Manifest, ModelStore, PublishRequest

DEFAULT_RETRIES = 3
DEFAULT_RETRY_DELAY_S = 5.0


class PublishedModel(BaseModel):
    name: str
    version: int
    store_url: str  # redacted: safe to show
    uri: str  # what trm.load_model accepts
    version_url: str  # the version folder
    card_url: str  # README.md (model card) inside it
    curve_url: str  # training_curve.png inside it
    metrics: dict[str, Any] = {}

    @classmethod
    def of(cls, store: ModelStore, manifest: Manifest) -> PublishedModel:
        """Where a published version is, and what it claims."""
        base = f"{store.url.rstrip('/')}/models/{manifest.name}/{manifest.version}"
        return cls(
            name=manifest.name,
            version=manifest.version,
            store_url=store.url,
            uri=f"{store.url}#{manifest.name}:{manifest.version}",
            version_url=base,
            card_url=f"{base}/README.md",
            curve_url=f"{base}/training_curve.png",
            metrics=manifest.metrics,
        )


@task(
    cache_policy=NO_CACHE,
    retries=DEFAULT_RETRIES,
    retry_delay_seconds=exponential_backoff(backoff_factor=DEFAULT_RETRY_DELAY_S),
    retry_condition_fn=retry_if_transient,
)
def publish_model(store_url: str | None, request: PublishRequest) -> PublishedModel:
    """One publish attempt."""
    store = ModelStore.open(store_url)
    manifest = store.publish(request)
    get_run_logger().info("published %s:%d to %s", manifest.name, manifest.version, store.url)
    return PublishedModel.of(store, manifest)


@flow(name="publish", log_prints=True)
def publish(
    request: PublishRequest,
    store_url: str | None = None,
    retries: int = DEFAULT_RETRIES,
    retry_delay_s: float = DEFAULT_RETRY_DELAY_S,
) -> PublishedModel:
    """Publish ``request`` (an exported model folder and its lineage) as the next version of ``request.name`` in
    ``store_url`` (default $TRM_STORE, else <repo>/artifacts). S3 endpoint and credentials come from AWS_* in the
    environment, never from parameters (Prefect records parameters)."""
    attempt = publish_model.with_options(
        retries=retries, retry_delay_seconds=exponential_backoff(backoff_factor=retry_delay_s)
    )
    return attempt(store_url, request)
