"""Flow `publish`: put an exported model into the artifact store as a new immutable version with its lineage.

An unreachable store (S3 endpoint down) is retried twice over: trm.store retries each call a few times within
seconds, and this task retries the whole publish with exponential backoff for outages that last longer. Only
``StoreUnavailableError`` is retried; a refused publish (existing version, bad name, bad files) fails at once.
A failed attempt leaves no visible version (the manifest is written last), so retrying is always safe.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.tasks import exponential_backoff
from pydantic import BaseModel

from trm.store import ModelStore, StoreUnavailableError

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


def _only_when_store_unreachable(task_obj: Any, task_run: Any, state: Any) -> bool:
    """Retry condition: the failure was the store being unreachable, not a refused publish."""
    try:
        state.result()
    except StoreUnavailableError:
        return True
    except BaseException:  # noqa: BLE001 - any other failure is final
        return False
    return False


@task(cache_policy=NO_CACHE, retries=DEFAULT_RETRIES,
      retry_delay_seconds=exponential_backoff(backoff_factor=DEFAULT_RETRY_DELAY_S),
      retry_condition_fn=_only_when_store_unreachable)
def publish_model(store_url: str | None, name: str, export_dir: Path, publish_args: dict[str, Any]) -> PublishedModel:
    """One publish attempt (``publish_args`` are ModelStore.publish keyword arguments)."""
    store = ModelStore.open(store_url)
    manifest = store.publish(name, export_dir, **publish_args)
    base = f"{store.url.rstrip('/')}/models/{manifest.name}/{manifest.version}"
    get_run_logger().info("published %s:%d to %s", manifest.name, manifest.version, store.url)
    return PublishedModel(
        name=manifest.name, version=manifest.version, store_url=store.url,
        uri=f"{store.url}#{manifest.name}:{manifest.version}", version_url=base,
        card_url=f"{base}/README.md", curve_url=f"{base}/training_curve.png", metrics=manifest.metrics,
    )


@flow(name="publish", log_prints=True)
def publish(export_dir: str, name: str, store_url: str | None = None, metrics: dict[str, Any] | None = None,
            metrics_log: str | None = None, dataset_dir: str | None = None, dvc_stage: str | None = None,
            repo_dir: str | None = None, ray_run_name: str | None = None, tune_run_name: str | None = None,
            tune_trial_name: str | None = None, aliases: list[str] | None = None,
            timestamps: dict[str, str] | None = None, extra: dict[str, Any] | None = None,
            retries: int = DEFAULT_RETRIES, retry_delay_s: float = DEFAULT_RETRY_DELAY_S) -> PublishedModel:
    """Publish ``export_dir`` as the next version of ``name`` in ``store_url`` (default $TRM_STORE, else
    <repo>/artifacts). S3 endpoint and credentials come from AWS_* in the environment, never from parameters."""
    repo = Path(repo_dir) if repo_dir else None
    args: dict[str, Any] = {
        "metrics": metrics, "metrics_log": Path(metrics_log) if metrics_log else None,
        "dataset_dir": Path(dataset_dir) if dataset_dir else None, "dvc_stage": dvc_stage,
        "dvc_lock": repo / "dvc.lock" if repo and dvc_stage else None, "repo_dir": repo,
        "ray_run_name": ray_run_name, "tune_run_name": tune_run_name, "tune_trial_name": tune_trial_name,
        "aliases": list(aliases or []),
        "timestamps": timestamps, "extra": extra,
    }
    attempt = publish_model.with_options(retries=retries,
                                         retry_delay_seconds=exponential_backoff(backoff_factor=retry_delay_s))
    return attempt(store_url, name, Path(export_dir), args)
