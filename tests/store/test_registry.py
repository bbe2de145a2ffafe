"""Publish -> list/show -> download -> verify, immutability, aliases and tamper detection, on a local folder and
on a real S3 server (moto on 127.0.0.1)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trm.store import (
    ChecksumError,
    InvalidNameError,
    ModelStore,
    NotFoundError,
    PublishRequest,
    VersionExistsError,
    load_model,
)
from trm.store.manifest import Manifest, sha256_file
from trm.store.registry import VERSION_FILES

from .conftest import make_export


def _store_path(store: ModelStore, *parts: str) -> str:
    return store.location.join(*parts)


def test_publish_list_show_download_verify(store_url: str, exported: Path, tmp_path: Path) -> None:
    store = ModelStore.open(store_url)
    manifest = store.publish(
        PublishRequest(
            name="sudoku-4x4",
            model_dir=exported,
            metrics={"exact_accuracy": 0.97, "steps": 20},
            ray_run_name="ray-run-1",
            tune_run_name="tune-a",
        )
    )
    assert manifest.version == 1
    assert set(manifest.files) == set(VERSION_FILES)
    for name in ("model.safetensors", "config.json"):
        assert manifest.files[name].sha256 == sha256_file(exported / name)
    assert manifest.config == json.loads((exported / "config.json").read_text())
    assert manifest.environment is not None and "torch" in manifest.environment.packages
    assert manifest.git.commit is not None and len(manifest.git.commit) == 40  # the test runs inside the checkout

    second = store.publish(PublishRequest(name="sudoku-4x4", model_dir=make_export(tmp_path / "export2", seed=1)))
    assert second.version == 2
    assert store.versions("sudoku-4x4") == [1, 2]
    assert store.names() == ["sudoku-4x4"]
    rows = store.list()
    assert [(r.version, r.aliases) for r in rows] == [(1, ()), (2, ("latest",))]
    assert rows[0].metrics == {"exact_accuracy": 0.97, "steps": 20}
    assert store.resolve("sudoku-4x4") == 2 and store.resolve("sudoku-4x4@latest") == 2
    shown = store.manifest("sudoku-4x4", 1)
    assert shown == manifest and shown.ray_run_name == "ray-run-1" and shown.tune_run_name == "tune-a"

    got, folder = store.download("sudoku-4x4:1", tmp_path / "dl")
    assert got == manifest
    assert sorted(p.name for p in folder.iterdir()) == sorted([*VERSION_FILES, "manifest.json"])
    assert (folder / "model.safetensors").read_bytes() == (exported / "model.safetensors").read_bytes()
    assert Manifest.model_validate_json((folder / "manifest.json").read_text()) == manifest
    card = (folder / "README.md").read_text()
    assert "| exact_accuracy | 0.97 |" in card and "![training curve](training_curve.png)" in card
    assert (folder / "training_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((folder / "metrics.json").read_text()) == {"exact_accuracy": 0.97, "steps": 20}


def test_versions_are_immutable(store_url: str, exported: Path, tmp_path: Path) -> None:
    store = ModelStore.open(store_url)
    store.publish(PublishRequest(name="maze", model_dir=exported, metrics={"exact_accuracy": 0.5}))
    before = store.location.fs.cat_file(_store_path(store, "models", "maze", "1", "manifest.json"))
    with pytest.raises(VersionExistsError, match=r"maze:1 already exists"):
        store.publish(
            PublishRequest(
                name="maze",
                model_dir=make_export(tmp_path / "other", seed=3),
                version=1,
                metrics={"exact_accuracy": 0.9},
            )
        )
    after = store.location.fs.cat_file(_store_path(store, "models", "maze", "1", "manifest.json"))
    assert after == before
    _, folder = store.download("maze:1", tmp_path / "dl")  # the old files are intact and still verify
    assert (folder / "model.safetensors").read_bytes() == (exported / "model.safetensors").read_bytes()
    assert store.versions("maze") == [1]
    # an explicit new version number is fine, and the next automatic one follows it
    assert store.publish(PublishRequest(name="maze", model_dir=exported, version=5)).version == 5
    assert store.publish(PublishRequest(name="maze", model_dir=exported)).version == 6


def test_aliases_move(store_url: str, exported: Path) -> None:
    store = ModelStore.open(store_url)
    for _ in range(2):
        store.publish(PublishRequest(name="arc", model_dir=exported))
    assert store.aliases("arc") == {"latest": 2}
    assert store.promote("arc", 1, "production") == 1
    assert store.aliases("arc") == {"latest": 2, "production": 1}
    store.publish(PublishRequest(name="arc", model_dir=exported, aliases=["staging"]))
    assert store.aliases("arc") == {"latest": 3, "production": 1, "staging": 3}
    assert store.promote("arc", "@staging", "production") == 3
    assert store.resolve("arc@production") == 3
    alias_file = _store_path(store, "models", "arc", "aliases", "production.json")
    assert json.loads(store.location.fs.cat_file(alias_file))["version"] == 3
    with pytest.raises(NotFoundError, match="does not exist"):
        store.promote("arc", 9, "production")
    with pytest.raises(NotFoundError, match="no alias 'nope'"):
        store.resolve("arc@nope")
    with pytest.raises(InvalidNameError):
        store.promote("arc", 1, "Bad_Alias")
    assert store.resolve("arc@production") == 3  # failed promotions changed nothing


def test_tampered_file_fails_verification(store_url: str, exported: Path, tmp_path: Path) -> None:
    store = ModelStore.open(store_url)
    store.publish(PublishRequest(name="tamper", model_dir=exported))
    weights = _store_path(store, "models", "tamper", "1", "model.safetensors")
    data = bytearray(store.location.fs.cat_file(weights))
    data[-1] ^= 0xFF  # same size, different content
    store.location.fs.pipe_file(weights, bytes(data))
    with pytest.raises(ChecksumError, match=r"tamper/1/model\.safetensors: checksum mismatch"):
        store.download("tamper", tmp_path / "dl")
    assert not (tmp_path / "dl").exists()  # nothing half-downloaded is left behind
    with pytest.raises(ChecksumError, match=r"model\.safetensors"):
        load_model(f"{store_url}#tamper:1")
    with pytest.raises(ChecksumError, match=r"model\.safetensors"):
        load_model("tamper@latest", store=store_url, cache_dir=tmp_path / "cache")


def test_missing_things_are_clear_errors(store_url: str, exported: Path, tmp_path: Path) -> None:
    store = ModelStore.open(store_url)
    with pytest.raises(NotFoundError, match="no published version"):
        store.resolve("ghost")
    store.publish(PublishRequest(name="real", model_dir=exported))
    with pytest.raises(NotFoundError, match=r"model real:4 does not exist in .*published versions: \[1\]"):
        store.download("real:4", tmp_path / "dl")
    assert store.list("ghost") == []


def test_the_card_shows_validation_beside_test_and_the_selected_step(tmp_path: Path, exported: Path) -> None:
    run = tmp_path / "run"
    (run / "export").mkdir(parents=True)
    for file in exported.iterdir():
        (run / "export" / file.name).write_bytes(file.read_bytes())
    selection = {
        "rule": "best",
        "split": "val",
        "metric": "fixed/exact_accuracy",
        "step": 40,
        "value": 0.9,
        "metrics": {"fixed/exact_accuracy": 0.9, "fixed/accuracy": 0.97},
        "evaluations": 5,
        "stopped_early": False,
    }
    (run / "selection.json").write_text(json.dumps(selection))  # as the training loop leaves it beside export/
    store = ModelStore.open(str(tmp_path / "store"))
    manifest = store.publish(PublishRequest(name="m", model_dir=run / "export", metrics={"fixed/exact_accuracy": 0.85}))
    assert manifest.selection == selection and manifest.metrics == {"fixed/exact_accuracy": 0.85}
    card = (tmp_path / "store" / "models" / "m" / "1" / "README.md").read_text()
    assert "| metric | val (step 40) | test |" in card
    assert "| fixed/exact_accuracy | 0.9 | 0.85 |" in card and "| fixed/accuracy | 0.97 |  |" in card
    assert "step 40: best fixed/exact_accuracy = 0.9000 on the val split among 5 evaluation(s)" in card
