"""The local half of a publish: check what the publisher handed over, gather its lineage, and stage the version's
files (weights, config, metrics, model card, training curve) with their checksums in a local folder.

Everything that can be refused is refused by :func:`check_request`, before the store is touched.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trm.paths import REPO_ROOT
from trm.store import card, lineage
from trm.store.errors import InvalidNameError
from trm.store.inputs import MODEL_FILES, check_model_folder, plain_json, read_optional_json
from trm.store.manifest import DataLineage, FileEntry, Manifest, check_alias, check_name, sha256_file, utc_now
from trm.store.request import PublishRequest

# upload order: weights first; the manifest is not among them (it is the commit point, written after them all)
VERSION_FILES = (*MODEL_FILES, "metrics.json", "training_curve.png", "README.md")


@dataclass(frozen=True)
class CheckedRequest:
    """A request whose names are valid and whose local inputs were read: what the staging needs."""

    request: PublishRequest
    metrics: dict[str, Any]
    metrics_log: Path | None
    selection: dict[str, Any] | None
    config: dict[str, Any]
    repo_dir: Path
    data: DataLineage | None
    dataset_metadata: dict[str, Any] | None

    @property
    def name(self) -> str:
        return self.request.name


def check_request(request: PublishRequest) -> CheckedRequest:
    """Validate names, aliases, version and the model folder, and read metrics, config and lineage."""
    check_name(request.name)
    for alias in request.aliases:
        check_alias(alias)
    if request.version is not None and request.version < 1:
        raise InvalidNameError(f"invalid version {request.version!r}: versions are integers 1, 2, ...")
    model_dir = request.model_dir
    model_config = check_model_folder(model_dir)
    metrics = (
        plain_json(request.metrics) if request.metrics is not None else read_optional_json(model_dir / "metrics.json")
    )
    repo = request.repo_dir if request.repo_dir is not None else REPO_ROOT
    data = None
    if request.dvc_stage:
        data = lineage.read_dvc_lock(request.dvc_lock or repo / "dvc.lock", request.dvc_stage)
    dataset_metadata = request.dataset_metadata
    if dataset_metadata is None and request.dataset_dir is not None:
        dataset_metadata = lineage.read_dataset_metadata(request.dataset_dir)
    return CheckedRequest(
        request=request,
        metrics=metrics,
        metrics_log=request.metrics_log or _find_metrics_log(model_dir),
        selection=plain_json(request.selection) if request.selection is not None else _find_selection(model_dir),
        config=plain_json(request.config) if request.config is not None else model_config,
        repo_dir=repo,
        data=data,
        dataset_metadata=plain_json(dataset_metadata) if dataset_metadata is not None else None,
    )


def _find_selection(model_dir: Path) -> dict[str, Any] | None:
    """``selection.json`` of the run folder holding ``export/`` (written by the training loop), if any."""
    found = read_optional_json(model_dir.parent / "selection.json")
    return found or None


def _find_metrics_log(model_dir: Path) -> Path | None:
    """Beside the weights, or in the run folder holding ``export/`` (the trainer's layout)."""
    candidates = (model_dir / "metrics.jsonl", model_dir.parent / "metrics.jsonl")
    return next((path for path in candidates if path.is_file()), None)


def draft_manifest(checked: CheckedRequest, version: int) -> Manifest:
    """The manifest of ``version`` without its file checksums (the model card is rendered from it)."""
    request = checked.request
    return Manifest(
        name=request.name,
        version=version,
        created_at=utc_now(),
        files={},
        git=lineage.collect_git(checked.repo_dir),
        data=checked.data,
        dataset_metadata=checked.dataset_metadata,
        config=checked.config,
        ray_run_name=request.ray_run_name,
        tune_run_name=request.tune_run_name,
        tune_trial_name=request.tune_trial_name,
        timestamps=dict(request.timestamps),
        environment=lineage.collect_environment(),
        metrics=checked.metrics,
        selection=checked.selection,
        extra=plain_json(request.extra),
    )


def stage_version(checked: CheckedRequest, version: int, store_url: str, folder: Path) -> Manifest:
    """Write every file of ``version`` into ``folder`` and return the complete manifest listing them."""
    draft = draft_manifest(checked, version)
    for file_name in MODEL_FILES:
        shutil.copyfile(checked.request.model_dir / file_name, folder / file_name)
    metrics_text = json.dumps(checked.metrics, indent=2, sort_keys=True) + "\n"
    (folder / "metrics.json").write_text(metrics_text, encoding="utf-8")
    curve_title = f"{checked.name}:{version}"
    card.render_training_curve(checked.metrics_log, folder / "training_curve.png", title=curve_title)
    (folder / "README.md").write_text(card.render_model_card(draft, store_url), encoding="utf-8")
    files = {
        file_name: FileEntry(sha256=sha256_file(folder / file_name), size=(folder / file_name).stat().st_size)
        for file_name in VERSION_FILES
    }
    return Manifest.model_validate(draft.model_copy(update={"files": files}).model_dump())
