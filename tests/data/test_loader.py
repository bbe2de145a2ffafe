"""PuzzleDataset.open / make_batch / test_batches on datasets written by the real DatasetWriter."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from filelock import FileLock

from trm.data import loader
from trm.data.loader import DatasetFormatError, PuzzleDataset, decode_lock, make_batch

SHAPE = {"train": [[1, 3], [2], [1, 1, 1], [4]], "test": [[2], [1], [3]]}


def test_open_exposes_tensors_and_offsets(shaped_dataset, rows_of) -> None:
    folder = shaped_dataset(SHAPE)
    ds = PuzzleDataset.open(folder, "train")
    assert len(ds) == 13 and ds.num_puzzles == 7 and ds.num_groups == 4
    assert ds.inputs.dtype == torch.uint8 and ds.inputs.shape == (13, 4)
    assert ds.labels.dtype == torch.uint8 and ds.puzzle_identifiers.dtype == torch.int32
    assert ds.puzzle_offsets.tolist() == [0, 1, 4, 6, 7, 8, 9, 13]
    assert ds.group_offsets.tolist() == [0, 2, 3, 6, 7]
    assert ds.puzzle_offsets.dtype == torch.int64 and ds.group_offsets.dtype == torch.int64
    assert rows_of(ds.inputs.numpy()).tolist() == list(range(13))
    assert ds.puzzle_identifiers.tolist() == [1, 2, 2, 2, 3, 3, 4, 5, 6, 7, 7, 7, 7]
    assert ds.identifiers[0] == "<blank>" and ds.identifiers[2] == "train-p1"
    test = PuzzleDataset.open(folder, "test")
    assert test.puzzle_identifiers.tolist() == [8, 8, 9, 10, 10, 10]  # ids are global across splits
    assert ds.metadata.splits["train"].examples == 13


def test_many_row_groups_read_like_one(shaped_dataset) -> None:
    one = PuzzleDataset.open(shaped_dataset(SHAPE, name="one"), "train")
    many = PuzzleDataset.open(shaped_dataset(SHAPE, name="many", row_group_size=3), "train")
    assert pq.ParquetFile(many.path / "train.parquet").num_row_groups == 5
    for field in ("inputs", "labels", "puzzle_identifiers", "puzzle_offsets", "group_offsets"):
        assert torch.equal(getattr(one, field), getattr(many, field)), field


def test_bare_name_resolves_under_data_root(shaped_dataset, monkeypatch) -> None:
    folder = shaped_dataset(SHAPE, name="by-name")
    monkeypatch.setenv("TRM_DATA", str(folder.parent))
    assert PuzzleDataset.open("by-name", "test").path == folder


def test_make_batch_types_and_ignore_label(shaped_dataset, rows_of) -> None:
    ds = PuzzleDataset.open(shaped_dataset(SHAPE), "train")
    batch = make_batch(ds, [5, 0, 12])
    assert batch["inputs"].dtype == torch.int32 and batch["labels"].dtype == torch.int64
    assert batch["puzzle_identifiers"].dtype == torch.int32
    assert rows_of(batch["inputs"].numpy()).tolist() == [5, 0, 12]
    # labels of row i encode i + 1; byte value 0 is ignore_label_id -> -100
    raw = ds.labels[[5, 0, 12]].to(torch.int64)
    assert torch.equal(batch["labels"], torch.where(raw == 0, torch.tensor(-100), raw))
    assert (batch["labels"] == -100).any()
    assert batch["puzzle_identifiers"].tolist() == [3, 1, 7]


@pytest.mark.parametrize(("batch_size", "world_size"), [(4, 1), (4, 2), (6, 3), (13, 1), (32, 4)])
def test_test_batches_cover_every_example_once(shaped_dataset, rows_of, batch_size, world_size) -> None:
    ds = PuzzleDataset.open(shaped_dataset(SHAPE), "train")
    seen: list[int] = []
    counts = []
    for rank in range(world_size):
        batches = list(loader.test_batches(ds, batch_size, rank=rank, world_size=world_size))
        counts.append(len(batches))
        for batch in batches:
            assert batch["inputs"].shape == (batch_size // world_size, 4)
            real = batch["example_index"] >= 0
            assert torch.equal(torch.from_numpy(rows_of(batch["inputs"][real].numpy())), batch["example_index"][real])
            assert (batch["inputs"][~real] == ds.metadata.pad_id).all()
            assert (batch["labels"][~real] == -100).all()
            assert (batch["puzzle_identifiers"][~real] == ds.metadata.blank_identifier_id).all()
            seen.extend(batch["example_index"][real].tolist())
    assert len(set(counts)) == 1  # ranks stay in lockstep
    assert sorted(seen) == list(range(len(ds)))


def test_test_batches_rejects_uneven_split(shaped_dataset) -> None:
    ds = PuzzleDataset.open(shaped_dataset(SHAPE), "train")
    with pytest.raises(ValueError, match="multiple of world_size"):
        next(loader.test_batches(ds, 5, rank=0, world_size=2))


# ----- bad folders -------------------------------------------------------------------------------------------------


def _rewrite_metadata(folder: Path, **changes) -> None:
    meta = json.loads((folder / "metadata.json").read_text())
    meta.update(changes)
    (folder / "metadata.json").write_text(json.dumps(meta))


def test_missing_folder_names_it(tmp_path) -> None:
    with pytest.raises(DatasetFormatError, match="dataset folder not found"):
        PuzzleDataset.open(tmp_path / "nope", "train")


def test_missing_metadata(shaped_dataset) -> None:
    folder = shaped_dataset(SHAPE)
    (folder / "metadata.json").unlink()
    with pytest.raises(DatasetFormatError, match=r"metadata\.json: missing"):
        PuzzleDataset.open(folder, "train")


def test_missing_split(shaped_dataset) -> None:
    folder = shaped_dataset(SHAPE)
    with pytest.raises(DatasetFormatError, match=r"valid\.parquet: missing"):
        PuzzleDataset.open(folder, "valid")


def test_schema_version_mismatch(shaped_dataset) -> None:
    folder = shaped_dataset(SHAPE)
    _rewrite_metadata(folder, schema_version=99)
    with pytest.raises(DatasetFormatError, match="schema_version 99"):
        PuzzleDataset.open(folder, "train")


def test_seq_len_mismatch(shaped_dataset) -> None:
    folder = shaped_dataset(SHAPE)
    _rewrite_metadata(folder, seq_len=81)
    with pytest.raises(DatasetFormatError, match=r"4 tokens per row but metadata.json says seq_len=81"):
        PuzzleDataset.open(folder, "train")


def test_row_count_mismatch(shaped_dataset) -> None:
    folder = shaped_dataset(SHAPE)
    meta = json.loads((folder / "metadata.json").read_text())
    meta["splits"]["train"]["examples"] = 14
    (folder / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(DatasetFormatError, match=r"13 rows but metadata.json says 14"):
        PuzzleDataset.open(folder, "train")


def test_corrupt_parquet(shaped_dataset) -> None:
    folder = shaped_dataset(SHAPE)
    (folder / "train.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(DatasetFormatError, match=r"train\.parquet: not a readable Parquet file"):
        PuzzleDataset.open(folder, "train")


def test_non_contiguous_puzzle_index(shaped_dataset) -> None:
    folder = shaped_dataset(SHAPE)
    table = pq.read_table(folder / "train.parquet")
    bad = table["puzzle_index"].to_numpy().copy()
    bad[5] = bad[4] + 2  # a gap of two puzzles
    column = table.schema.get_field_index("puzzle_index")
    table = table.set_column(column, table.schema.field(column), pa.array(bad, pa.int32()))
    pq.write_table(table, folder / "train.parquet")
    with pytest.raises(DatasetFormatError, match="puzzle_index must be contiguous and non-decreasing; row 5"):
        PuzzleDataset.open(folder, "train")


# ----- real builds against the official arrays -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "overrides", "official", "splits"),
    [
        ("maze-hard-1k", {"val_count": 0}, "maze-hard/npy", ("train", "test")),
        ("sudoku-extreme-1k", {"num_aug": 0, "val_count": 0, "test_count": 0}, "sudoku-extreme-1k/npy", ("train",)),
    ],
)
def test_loaded_real_builds_equal_the_official_arrays(tmp_path, shared_datasets, name, overrides, official, splits):
    """What the trainer sees after build -> Parquet -> loader is exactly what the official loader reads."""
    from trm.data.build import build_dataset

    folder = build_dataset(name, overrides, out_root=tmp_path)
    for split in splits:
        ds = PuzzleDataset.open(folder, split)
        npy = shared_datasets / official / split
        assert np.array_equal(ds.inputs.numpy(), np.load(npy / "all__inputs.npy"))
        assert np.array_equal(ds.labels.numpy(), np.load(npy / "all__labels.npy"))
        assert ds.puzzle_offsets.tolist() == np.load(npy / "all__puzzle_indices.npy").tolist()
        assert ds.group_offsets.tolist() == np.load(npy / "all__group_indices.npy").tolist()
        per_puzzle = ds.puzzle_identifiers[ds.puzzle_offsets[:-1]]
        assert per_puzzle.tolist() == np.load(npy / "all__puzzle_identifiers.npy").tolist()
        batch = make_batch(ds, [0, 1])
        assert (batch["labels"] >= 0).all()  # ignore_label_id 0 never occurs in these labels: all cells supervised


def test_decoded_cache_is_memory_mapped_and_identical(shaped_dataset, tmp_path, monkeypatch) -> None:
    folder = shaped_dataset(SHAPE, row_group_size=3)
    in_ram = PuzzleDataset.open(folder, "train")
    cache = tmp_path / "decoded"
    first = PuzzleDataset.open(folder, "train", cache_dir=cache)
    monkeypatch.setenv("TRM_DECODED_CACHE", str(cache))
    second = PuzzleDataset.open(folder, "train")  # from the environment, reusing the entry
    assert in_ram.storage == "memory"
    assert first.storage == second.storage and first.storage.startswith(f"mmap:{cache}/")
    entries = [p.name for p in cache.iterdir() if not p.name.startswith(".")]  # (hidden: the decode lock)
    assert entries == [first.storage.split("/")[-1]]  # one entry, no staging left
    entry = Path(first.storage[len("mmap:") :])
    assert isinstance(np.load(entry / "inputs.npy", mmap_mode="r"), np.memmap)
    for field in ("inputs", "labels", "puzzle_identifiers", "puzzle_offsets", "group_offsets"):
        assert torch.equal(getattr(in_ram, field), getattr(second, field)), field
    assert torch.equal(make_batch(second, [3, 1])["labels"], make_batch(in_ram, [3, 1])["labels"])


def test_a_second_opener_waits_for_the_decode_instead_of_decoding_too(shaped_dataset, tmp_path) -> None:
    folder = shaped_dataset(SHAPE, row_group_size=3)
    cache = tmp_path / "decoded"
    metadata = json.loads((folder / "metadata.json").read_text())
    entry = cache / f"{metadata['splits']['train']['sha256']}-L{metadata['seq_len']}"
    cache.mkdir()
    opened: list[PuzzleDataset] = []
    with FileLock(decode_lock(entry)):  # as if another worker were decoding this split right now
        opener = threading.Thread(target=lambda: opened.append(PuzzleDataset.open(folder, "train", cache_dir=cache)))
        opener.start()
        opener.join(timeout=2.0)
        assert opener.is_alive() and not opened  # it waits ...
        assert [p.name for p in cache.iterdir()] == [decode_lock(entry).name]  # ... without decoding a copy
    opener.join(timeout=30.0)
    assert opened and opened[0].storage == f"mmap:{entry}"
    assert torch.equal(opened[0].inputs, PuzzleDataset.open(folder, "train").inputs)


def test_token_outside_the_vocabulary(shaped_dataset) -> None:
    folder = shaped_dataset(SHAPE)
    _rewrite_metadata(folder, vocab_size=12)  # inputs of row 12 hold token 12
    with pytest.raises(DatasetFormatError, match=r"column .inputs. holds token 12 but vocab_size is 12"):
        PuzzleDataset.open(folder, "train")


def test_decoded_cache_drops_an_entry_that_fails_its_checks(shaped_dataset, tmp_path) -> None:
    folder = shaped_dataset(SHAPE, row_group_size=3)
    _rewrite_metadata(folder, vocab_size=12)
    cache = tmp_path / "decoded"
    for _ in range(2):  # the second open decodes again and fails again instead of trusting a bad entry
        with pytest.raises(DatasetFormatError, match="vocab_size is 12"):
            PuzzleDataset.open(folder, "train", cache_dir=cache)
        assert [p for p in cache.iterdir() if not p.name.startswith(".")] == []


def test_head_keeps_whole_puzzles_of_the_first_groups(shaped_dataset, rows_of) -> None:
    ds = PuzzleDataset.open(shaped_dataset(SHAPE), "train")  # groups of puzzles [1,3] [2] [1,1,1] [4] examples
    assert ds.head() is ds and ds.rows is None
    view = ds.head(max_groups=3, max_variants=2)  # puzzles kept: g0 both, g1 its one, g2 the first two
    assert view.num_groups == 3 and view.num_puzzles == 5
    assert view.group_offsets.tolist() == [0, 2, 3, 5]
    assert view.puzzle_offsets.tolist() == [0, 1, 4, 6, 7, 8]
    assert view.rows.tolist() == [0, 1, 2, 3, 4, 5, 6, 7]
    assert rows_of(view.inputs.numpy()).tolist() == view.rows.tolist()
    assert view.puzzle_identifiers.tolist() == ds.puzzle_identifiers[:8].tolist()
    only_variants = ds.head(max_variants=1)  # every group, its first puzzle with all of that puzzle's examples
    assert only_variants.rows.tolist() == [0, 4, 5, 6, 9, 10, 11, 12]
    nested = only_variants.head(max_groups=2)
    assert nested.rows.tolist() == [0, 4, 5] and rows_of(nested.inputs.numpy()).tolist() == [0, 4, 5]
