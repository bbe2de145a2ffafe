"""Prefect artifacts a retrain leaves behind: the metrics table, the training curve and a link to the model.

The curve is the PNG published with the model card: read back from the store and embedded in a markdown
artifact (so the Prefect UI shows it without access to the store), with the store location beside it; when the
store is served over http(s), an image artifact pointing at it is added too.
"""

from __future__ import annotations

import base64
import re
from typing import Any

from prefect.artifacts import create_image_artifact, create_link_artifact, create_markdown_artifact

from pipelines.publish import PublishedModel
from trm.markdown import table
from trm.store import ModelStore, StoreError

MAX_EMBEDDED_PNG_BYTES = 512 * 1024  # keep the artifact table small; bigger curves are linked only


def artifact_key(*parts: str) -> str:
    """Prefect keys allow lowercase letters, digits and dashes only."""
    return re.sub(r"-+", "-", re.sub(r"[^a-z0-9-]", "-", "-".join(parts).lower())).strip("-")


def metrics_markdown(title: str, metrics: dict[str, Any], facts: dict[str, Any]) -> str:
    """A two-part markdown document: the evaluation metrics, then the run's facts (data hash, Ray run, ...)."""
    metric_rows = table(["metric", "value"], sorted(metrics.items()), float_format=".4f")
    fact_rows = table(["fact", "value"], facts.items(), float_format=".4f")
    return f"# {title}\n\n{metric_rows}\n\n{fact_rows}\n"


def embedded_png(alt: str, png: bytes | None, otherwise: str) -> str:
    """A PNG inlined into an artifact's markdown, or ``otherwise`` when there is none or it is too big."""
    if png and len(png) <= MAX_EMBEDDED_PNG_BYTES:
        return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})"
    return otherwise


def curve_markdown(title: str, curve_url: str, png: bytes | None) -> str:
    lines = [f"# {title}", "", f"Published with the model card: `{curve_url}`", ""]
    lines.append(embedded_png("training curve", png, "(curve not embedded: see the link above)"))
    return "\n".join(lines) + "\n"


def read_published_file(store_url: str, name: str, version: int, file_name: str) -> bytes | None:
    """A file of a published version, or None when the store cannot be read right now (artifacts are extras)."""
    try:
        store = ModelStore.open(store_url)
        return store.objects.read(store.location.join("models", name, str(version), file_name))
    except (StoreError, OSError):
        return None


def record_run_artifacts(
    model: PublishedModel, metrics: dict[str, Any], facts: dict[str, Any], store_url: str | None
) -> None:
    """Create the three artifacts of a retrain for the published ``model``."""
    key = artifact_key(model.name)
    create_markdown_artifact(
        metrics_markdown(f"{model.name}:{model.version} metrics", metrics, facts),
        key=f"{key}-metrics",
        description=f"test metrics of {model.uri}",
    )
    png = read_published_file(store_url or model.store_url, model.name, model.version, "training_curve.png")
    create_markdown_artifact(
        curve_markdown(f"{model.name}:{model.version} training curve", model.curve_url, png),
        key=f"{key}-training-curve",
        description="training curve from the model card",
    )
    if model.curve_url.startswith(("http://", "https://")):
        create_image_artifact(image_url=model.curve_url, key=f"{key}-curve-image")
    card = model.card_url if "://" in model.card_url else f"file://{model.card_url}"
    create_link_artifact(
        link=card,
        link_text=f"{model.name}:{model.version} model card ({model.uri})",
        key=f"{key}-model",
        description="the published model version",
    )
