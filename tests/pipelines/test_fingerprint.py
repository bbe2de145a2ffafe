"""The pure parts of reproducible retrains: what a fingerprint is sensitive to, the recorded config as overrides,
and when a reproduction must refuse to run this checkout's code."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pipelines.fingerprint import RunInputs, portable_config
from pipelines.reproduce import code_source
from pipelines.reproduction import (
    DataMismatchError,
    RecordedRun,
    check_same_data,
    compare,
    config_overrides,
    recorded_run,
)
from trm.config import load_config, preset_names
from trm.errors import UsageError
from trm.store import Manifest
from trm.store.manifest import DataLineage, DvcEntry, FileEntry

BASE = RunInputs(
    code_commit="a" * 40,
    code_dirty=False,
    data_md5="0" * 32 + ".dir",
    config={"train": {"seed": 0, "lr": 1e-3}},
    lock_sha256="f" * 64,
    workers=2,
    kind={"tune": None, "rehearse": False, "eval_modes": None},
)


@pytest.mark.parametrize(
    "change",
    [
        {"code_commit": "b" * 40},
        {"data_md5": "1" * 32 + ".dir"},
        {"config": {"train": {"seed": 1, "lr": 1e-3}}},
        {"lock_sha256": "e" * 64},
        {"workers": 4},
        {"kind": {"tune": {"space": "smoke", "trials": None}, "rehearse": False, "eval_modes": None}},
    ],
)
def test_every_input_changes_the_fingerprint(change: dict) -> None:
    assert BASE.model_copy(update=change).sha256() != BASE.sha256()
    assert BASE.model_copy().sha256() == BASE.sha256()


def test_uncommitted_or_unknown_code_is_never_up_to_date() -> None:
    assert BASE.identifiable
    assert not BASE.model_copy(update={"code_dirty": True}).identifiable
    assert not BASE.model_copy(update={"code_commit": None}).identifiable
    assert not BASE.model_copy(update={"code_dirty": None}).identifiable


@pytest.mark.parametrize("preset", preset_names())
def test_a_recorded_config_round_trips_through_overrides(preset: str) -> None:
    """What a reproduction trains is the recorded config, leaf for leaf, whatever the preset says today."""
    recorded = load_config(preset, ["train.seed=7", "train.lr=0.000123"]).model_dump(mode="json")
    rebuilt = load_config(preset, config_overrides(recorded)).model_dump(mode="json")
    assert portable_config(rebuilt) == portable_config(recorded)
    # a recorded config has the model's sizes filled from the data; its reproduction fingerprints like the original
    recorded["model"].update(seq_len=81, vocab_size=11, num_puzzle_identifiers=1)
    rebuilt = load_config(preset, config_overrides(recorded)).model_dump(mode="json")
    preset_config = load_config(preset, ["train.seed=7", "train.lr=0.000123"]).model_dump(mode="json")
    assert portable_config(rebuilt) == portable_config(preset_config)


def commit(repo: Path, message: str) -> str:
    (repo / "file.txt").write_text(message)
    for args in (["add", "file.txt"], ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", message]):
        subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, check=True, capture_output=True, text=True).stdout


def test_reproduction_refuses_other_code_unless_told(tmp_path: Path) -> None:
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    first = commit(tmp_path, "one").strip()
    recorded = RecordedRun(
        reference="m:1",
        preset="smoke",
        dataset="sudoku-4x4",
        overrides=[],
        workers=2,
        commit=first,
        commit_was_dirty=False,
        data_md5=None,
    )
    assert code_source(recorded, tmp_path, at_commit=False, allow_code_drift=False) == "checkout"
    commit(tmp_path, "two")
    with pytest.raises(UsageError, match=f"m:1 was trained at commit {first[:12]}.*--at-commit.*--allow-code-drift"):
        code_source(recorded, tmp_path, at_commit=False, allow_code_drift=False)
    assert code_source(recorded, tmp_path, at_commit=True, allow_code_drift=False) == "worktree"
    assert code_source(recorded, tmp_path, at_commit=False, allow_code_drift=True) == "drift"
    dirty = recorded.model_copy(update={"commit_was_dirty": True})
    with pytest.raises(UsageError, match="uncommitted changes: its code cannot be checked out"):
        code_source(dirty, tmp_path, at_commit=True, allow_code_drift=False)


def recorded_manifest(md5: str) -> Manifest:
    config = load_config("smoke").model_dump(mode="json")
    return Manifest(
        name="m",
        version=1,
        created_at=datetime.now(UTC),
        files={"model.safetensors": FileEntry(sha256="a" * 64, size=1)},
        data=DataLineage(stage="sudoku-4x4", lock_file="dvc.lock", outs=[DvcEntry(path="data/sudoku-4x4", md5=md5)]),
        config=config,
        metrics={"fixed/exact_accuracy": 0.5},
        extra={"preset": "smoke", "workers": 2},
    )


def test_a_reproduction_refuses_other_data_and_compares_weights_and_metrics(tmp_path: Path) -> None:
    original = recorded_manifest("1" * 32 + ".dir")
    check_same_data(original, "1" * 32 + ".dir")
    with pytest.raises(DataMismatchError, match=r"data differs from m:1's: DVC md5 2+\.dir now, 1+\.dir recorded"):
        check_same_data(original, "2" * 32 + ".dir")
    (tmp_path / "model.safetensors").write_bytes(b"other weights")
    comparison = compare(original, tmp_path, {"fixed/exact_accuracy": 0.52, "fixed/count": 200})
    assert not comparison.weights_identical and comparison.metric_deltas == {
        "fixed/exact_accuracy": pytest.approx(0.02)
    }
    assert comparison.verdict(0.01).endswith("> 0.01") and comparison.verdict(0.05).endswith("<= 0.05")
    recorded = recorded_run(original)
    assert (recorded.preset, recorded.dataset, recorded.workers) == ("smoke", "sudoku-4x4", 2)
    assert recorded.data_md5 == "1" * 32 + ".dir"
    with pytest.raises(UsageError, match="only versions published by the retrain flow can be reproduced"):
        recorded_run(original.model_copy(update={"extra": {}}))
