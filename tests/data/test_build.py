"""The build registry and the writer: parameters, determinism (byte-identical files), atomic output, row groups."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml

from trm.data.build import build_dataset, dataset_names, ensure_built, resolve_params
from trm.data.errors import DataError
from trm.data.params import ParamsError
from trm.data.sudoku_gen import HARD_MIN_RATING
from trm.data.writer import DatasetWriter, ExampleBatch, ExampleWriter
from trm.paths import params_file

SMALL = {
    "sudoku-extreme-1k": {"num_aug": 2, "test_count": 3, "test_min_rating": 0},
    "maze-small": {"train_count": 40, "val_count": 3, "test_count": 10},
    "sudoku-6x6": {"train_count": 30, "val_count": 3, "test_count": 10, "num_aug": 3},
    "arc-agi-2": {"num_aug": 2, "val_tasks": 4},
}


def _hashes(folder: Path) -> dict[str, str]:
    return {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in sorted(folder.iterdir())}


def test_registry_has_the_dvc_stage_names() -> None:
    assert set(dataset_names()) >= {
        "sudoku-extreme-1k",
        "sudoku-extreme-full",
        "maze-hard-1k",
        "arc-agi-1",
        "arc-agi-2",
        "sudoku-4x4",
        "sudoku-6x6",
        "sudoku-9x9-cpu",
        "maze-small",
    }
    assert resolve_params("arc-agi-1").seed == 42  # the values of params.yaml, the one source
    assert resolve_params("sudoku-extreme-1k").num_aug == 1000
    assert resolve_params("maze-hard-1k").aug is False
    assert resolve_params("sudoku-extreme-1k").test_min_rating == HARD_MIN_RATING


def test_every_registered_dataset_has_a_complete_section_in_params_yaml() -> None:
    sections = yaml.safe_load(params_file().read_text())
    for name in dataset_names():
        assert name in sections, f"params.yaml has no section {name!r}"
        resolve_params(name)  # every key present, none unknown


def _params_file(folder: Path, sections: dict) -> Path:
    path = folder / "params.yaml"
    path.write_text(yaml.safe_dump(sections))
    return path


def test_a_key_missing_from_the_section_names_file_section_and_key(tmp_path: Path) -> None:
    section = {
        "train_count": 12,
        "val_count": 3,
        "test_count": 4,
        "num_aug": 2,
        "min_rating": 0,
        "blanks": None,
        "seed": 0,
    }
    del section["seed"]
    path = _params_file(tmp_path, {"sudoku-4x4": section})
    with pytest.raises(ParamsError) as error:
        resolve_params("sudoku-4x4", params_file=path)
    assert str(path) in str(error.value) and "'sudoku-4x4'" in str(error.value) and "'seed'" in str(error.value)
    assert "missing key" in str(error.value)
    assert resolve_params("sudoku-4x4", {"seed": 3}, params_file=path).seed == 3  # an override may supply it
    with pytest.raises(ParamsError, match="missing key 'seed'"):
        build_dataset("sudoku-4x4", out_root=tmp_path / "out", params_file=path)
    assert not (tmp_path / "out").exists()


def test_an_unknown_key_in_the_section_or_the_overrides_is_refused(tmp_path: Path) -> None:
    section = {
        "train_count": 12,
        "val_count": 3,
        "test_count": 4,
        "num_aug": 2,
        "min_rating": 0,
        "blanks": None,
        "seed": 0,
    }
    path = _params_file(tmp_path, {"sudoku-4x4": {**section, "colour": "red"}})
    with pytest.raises(ParamsError, match=r"params\.yaml: section 'sudoku-4x4': unknown parameter 'colour'"):
        resolve_params("sudoku-4x4", params_file=path)
    path = _params_file(tmp_path, {"sudoku-4x4": section})
    with pytest.raises(ParamsError, match="unknown parameter 'colour'"):
        resolve_params("sudoku-4x4", {"colour": "red"}, params_file=path)
    with pytest.raises(ParamsError, match="no section 'maze-small'"):
        resolve_params("maze-small", params_file=path)
    with pytest.raises(ParamsError, match="params file not found"):
        resolve_params("sudoku-4x4", params_file=tmp_path / "missing.yaml")


def test_the_params_file_comes_from_trm_params_when_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    section = {
        "train_count": 12,
        "val_count": 3,
        "test_count": 4,
        "num_aug": 2,
        "min_rating": 0,
        "blanks": None,
        "seed": 7,
    }
    monkeypatch.setenv("TRM_PARAMS", str(_params_file(tmp_path, {"sudoku-4x4": section})))
    assert params_file() == tmp_path / "params.yaml"
    assert resolve_params("sudoku-4x4").seed == 7


def test_ensure_built_builds_a_missing_registered_dataset_once(tmp_path: Path) -> None:
    section = {
        "rows": 6,
        "cols": 6,
        "train_count": 8,
        "val_count": 3,
        "test_count": 2,
        "min_path_len": 4,
        "density_min": 0.2,
        "density_max": 0.3,
        "aug": False,
        "seed": 0,
    }
    path = _params_file(tmp_path, {"maze-small": section})
    folder = tmp_path / "data" / "maze-small"
    assert ensure_built(folder, "maze-small", params_file=path, progress=False) == folder
    meta = json.loads((folder / "metadata.json").read_text())
    assert meta["params"] == section and meta["splits"]["test"]["examples"] == 2
    before = {f.name: f.stat().st_mtime_ns for f in folder.iterdir()}
    assert ensure_built(folder, "maze-small", params_file=path) == folder  # already built: returned as is
    assert {f.name: f.stat().st_mtime_ns for f in folder.iterdir()} == before
    assert ensure_built(folder, "not-registered") == folder  # any built folder is accepted, whatever its name


def test_ensure_built_refuses_an_unknown_name_and_a_folder_named_otherwise(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"no built dataset.*'sudoku-99x99'.*registered: .*maze-small"):
        ensure_built(tmp_path / "sudoku-99x99", "sudoku-99x99")
    with pytest.raises(FileNotFoundError, match="folder named 'maze-small'"):
        ensure_built(tmp_path / "mazes", "maze-small")
    assert list(tmp_path.iterdir()) == []


def small_kaggle_dir(shared_datasets: Path, folder: Path, per_subset: int = 12) -> Path:
    """The first tasks of each ARC-AGI-2 recipe subset, in the Kaggle layout (keeps ARC build tests fast)."""
    folder.mkdir(parents=True, exist_ok=True)
    for subset in ("training2", "evaluation2", "concept"):
        for kind in ("challenges", "solutions"):
            data = json.loads((shared_datasets / "trm-kaggle-combined" / f"arc-agi_{subset}_{kind}.json").read_text())
            keep = sorted(data)[:per_subset]
            (folder / f"arc-agi_{subset}_{kind}.json").write_text(json.dumps({k: data[k] for k in keep}))
    return folder


@pytest.mark.parametrize("name", sorted(SMALL))
def test_same_parameters_give_identical_files_and_another_seed_does_not(
    name: str, tmp_path: Path, shared_datasets: Path
) -> None:
    params = dict(SMALL[name])
    if name.startswith("arc"):
        params["kaggle_dir"] = str(small_kaggle_dir(shared_datasets, tmp_path / "kaggle"))
    first = build_dataset(name, params, out_root=tmp_path / "a")
    second = build_dataset(name, params, out_root=tmp_path / "b")
    hashes = _hashes(first)
    assert hashes == _hashes(second)
    expected = {"metadata.json", "identifiers.json", "train.parquet", "val.parquet", "test.parquet"}
    assert set(hashes) == expected | ({"test_puzzles.json", "val_puzzles.json"} if name.startswith("arc") else set())
    meta = json.loads((first / "metadata.json").read_text())
    for split in ("train", "val", "test"):
        assert meta["splits"][split]["sha256"] == hashes[f"{split}.parquet"]
    text = (first / "metadata.json").read_text()
    if not name.startswith("arc"):
        assert str(tmp_path) not in text and "/work/" not in text  # nothing machine-specific is recorded
    other_seed = build_dataset(name, {**params, "seed": 12345}, out_root=tmp_path / "c")
    assert _hashes(other_seed)["train.parquet"] != hashes["train.parquet"]
    assert _hashes(other_seed)["val.parquet"] != hashes["val.parquet"]  # the validation draw follows the seed


def test_overrides_are_coerced_checked_and_recorded(tmp_path: Path) -> None:
    params = resolve_params("sudoku-extreme-full", {"num_aug": "7", "min_difficulty": None, "subsample_size": "5"})
    assert (params.num_aug, params.min_difficulty, params.subsample_size) == (7, None, 5)
    params = resolve_params("arc-agi-1", {"json_folders.concept": "/elsewhere", "source": "json"})
    assert params.json_folders["concept"] == "/elsewhere" and params.json_folders["training"]
    with pytest.raises(ValueError, match=r"unknown parameter 'num_augs'.*num_aug"):
        resolve_params("sudoku-4x4", {"num_augs": 3})
    with pytest.raises(ValueError, match="num_aug"):
        resolve_params("sudoku-4x4", {"num_aug": "many"})
    with pytest.raises(ValueError, match="source"):
        resolve_params("arc-agi-1", {"source": "s3"})
    with pytest.raises(ValueError, match="unknown dataset 'sudoku'"):
        build_dataset("sudoku", out_root=tmp_path)
    out = build_dataset(
        "sudoku-4x4", {"train_count": "12", "val_count": 3, "test_count": 4, "num_aug": 2}, out_root=tmp_path
    )
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["params"] == {
        "train_count": 12,
        "val_count": 3,
        "test_count": 4,
        "num_aug": 2,
        "min_rating": 0,
        "blanks": None,
        "seed": 0,
    }
    assert meta["splits"]["train"]["examples"] == 12 * 3 and meta["splits"]["train"]["groups"] == 12
    assert (meta["seq_len"], meta["vocab_size"], meta["grid_shape"]) == (16, 6, [4, 4])


def test_source_paths_relative_to_datasets_root_or_absolute(shared_datasets: Path, tmp_path: Path) -> None:
    csv = tmp_path / "mine.csv"
    csv.write_bytes((shared_datasets / "maze-hard" / "test.csv").read_bytes())
    out = build_dataset("maze-hard-1k", {"train_csv": str(csv)}, out_root=tmp_path / "out")
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["sources"][0]["path"] == str(csv) and meta["sources"][0]["name"] == "mine.csv"
    assert meta["sources"][1]["path"] == "maze-hard/test.csv"
    assert meta["sources"][0]["sha256"] == meta["sources"][1]["sha256"]


def test_failed_build_leaves_nothing_and_keeps_the_previous_build(tmp_path: Path) -> None:
    good = build_dataset(
        "sudoku-4x4", {"train_count": 10, "val_count": 3, "test_count": 2, "num_aug": 1}, out_root=tmp_path
    )
    before = _hashes(good)
    bad_csv = tmp_path / "bad.csv"
    bad_csv.write_text("source,question,answer,rating\n,1234,5678,\n")
    with pytest.raises(DataError):
        build_dataset("maze-hard-1k", {"train_csv": str(bad_csv)}, out_root=tmp_path)
    with pytest.raises(DataError, match="file not found"):
        build_dataset("sudoku-extreme-full", out_root=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.csv", "sudoku-4x4"]
    assert _hashes(good) == before
    rebuilt = build_dataset(
        "sudoku-4x4", {"train_count": 10, "val_count": 3, "test_count": 2, "num_aug": 1, "seed": 1}, out_root=tmp_path
    )
    assert _hashes(rebuilt)["train.parquet"] != before["train.parquet"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.csv", "sudoku-4x4"]


def _batch(rows: np.ndarray, puzzle: np.ndarray, group: np.ndarray) -> ExampleBatch:
    n = len(rows)
    tokens = np.stack([rows % 256, rows // 256], axis=1).astype(np.uint8)
    return ExampleBatch(
        inputs=tokens,
        labels=tokens,
        puzzle_identifier=np.zeros(n, np.int32),
        puzzle_index=puzzle.astype(np.int32),
        group_index=group.astype(np.int32),
        source_names=["x"],
        source_codes=np.zeros(n, np.int32),
    )


def test_writer_row_groups_are_fixed_size_whatever_the_batches(tmp_path: Path) -> None:
    writer = ExampleWriter(tmp_path / "a.parquet", 2, row_group_size=100)
    start = 0
    for size in (7, 250, 1, 93, 699):
        rows = np.arange(start, start + size)
        writer.write(_batch(rows, rows, rows // 3))
        start += size
    stats = writer.close()
    meta = pq.ParquetFile(tmp_path / "a.parquet").metadata
    assert [meta.row_group(i).num_rows for i in range(meta.num_row_groups)] == [100] * 10 + [50]
    assert (stats.examples, stats.puzzles, stats.groups) == (1050, 1050, 350)
    table = pq.read_table(tmp_path / "a.parquet", columns=["puzzle_index"])
    assert np.array_equal(table.column("puzzle_index").to_numpy(), np.arange(1050))


def test_writer_rejects_broken_hierarchy_and_cleans_up(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="grow by 0 or 1"), DatasetWriter(tmp_path / "ds", 2) as dw:
        dw.split("train").write(_batch(np.arange(3), np.array([0, 2, 3]), np.array([0, 1, 2])))
    with pytest.raises(ValueError, match="new group must start a new puzzle"), DatasetWriter(tmp_path / "ds", 2) as dw:
        dw.split("train").write(_batch(np.arange(3), np.array([0, 0, 1]), np.array([0, 1, 1])))
    with DatasetWriter(tmp_path / "ds", 2) as dw:  # leaving without commit discards everything as well
        dw.split("train").write(_batch(np.arange(3), np.arange(3), np.arange(3)))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("name", "size"), [("sudoku-6x6", 6), ("sudoku-extreme-1k", 9)])
def test_built_test_split_shares_no_solution_grid_with_train(name: str, size: int, tmp_path: Path) -> None:
    out = build_dataset(name, SMALL[name], out_root=tmp_path)
    grids = {}
    for split in ("train", "test"):
        table = pq.read_table(out / f"{split}.parquet", columns=["labels"])
        grids[split] = {
            row.tobytes()
            for row in table.column("labels").combine_chunks().flatten().to_numpy().reshape(table.num_rows, size * size)
        }
    assert grids["test"] and not grids["test"] & grids["train"]
