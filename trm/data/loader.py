"""Read a built dataset split (Contract 1) into torch tensors for training and evaluation (Contract 2), with peak RAM
bounded for the multi-GB ARC splits and the group -> puzzle -> example order re-checked, since the sampler relies on
it. Design notes: docs/architecture.md ("Design: the data")."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from filelock import FileLock

from trm.atomic import atomic_folder
from trm.data.dataset_folder import DatasetFormatError, read_metadata, resolve_dataset_path
from trm.data.schema import IGNORE_INDEX, SCHEMA_VERSION, DatasetMetadata, SplitStats

TOKEN_COLUMNS = ("inputs", "labels")
INDEX_COLUMNS = ("puzzle_identifier", "puzzle_index", "group_index")


def _check_parquet_schema(parquet_file: Path, schema: pa.Schema, metadata: DatasetMetadata) -> None:
    file_version = (schema.metadata or {}).get(b"trm.schema_version")
    if file_version is not None and int(file_version) != SCHEMA_VERSION:
        raise DatasetFormatError(
            f"{parquet_file}: schema version {file_version.decode()} but this loader reads version {SCHEMA_VERSION}"
        )
    for column in TOKEN_COLUMNS + INDEX_COLUMNS:
        if column not in schema.names:
            raise DatasetFormatError(f"{parquet_file}: column {column!r} missing")
    for column in TOKEN_COLUMNS:
        column_type = schema.field(column).type
        if not pa.types.is_fixed_size_list(column_type) or column_type.value_type != pa.uint8():
            raise DatasetFormatError(
                f"{parquet_file}: column {column!r} is {column_type}, expected fixed_size_list<uint8>"
            )
        if column_type.list_size != metadata.seq_len:
            raise DatasetFormatError(
                f"{parquet_file}: column {column!r} holds {column_type.list_size} tokens per row but metadata.json "
                f"says seq_len={metadata.seq_len}"
            )


def _flat_values(chunk: pa.Array, column: str, parquet_file: Path) -> np.ndarray:
    """The uint8 values of a fixed-size-list chunk as a flat numpy view (no copy)."""
    if chunk.null_count:
        raise DatasetFormatError(f"{parquet_file}: column {column!r} has null rows")
    values = chunk.flatten()  # honours the chunk's offset; a slice of the child array, not a copy
    if values.null_count:
        raise DatasetFormatError(f"{parquet_file}: column {column!r} has null tokens")
    return values.to_numpy(zero_copy_only=True)


def _read_columns(parquet_file: Path, seq_len: int, token_dir: Path | None = None) -> dict[str, np.ndarray]:
    """Decode every needed column; tokens land in one [N, seq_len] uint8 array each -- in RAM, or with `token_dir`
    appended row group by row group to `.npy` files there (plain writes, not a writable memory map, so neither
    the process's RSS nor its RAM grows beyond one row group) and returned as read-only memory maps."""
    reader = pq.ParquetFile(parquet_file, memory_map=True)
    num_rows = reader.metadata.num_rows
    columns = list(TOKEN_COLUMNS + INDEX_COLUMNS)
    if reader.num_row_groups == 1 and token_dir is None:
        # one row group decodes to one contiguous buffer per column: expose it without another copy
        table = reader.read_row_group(0, columns=columns)
        out: dict[str, np.ndarray] = {}
        for column in columns:
            array = table.column(column).combine_chunks()
            if column in TOKEN_COLUMNS:
                out[column] = _flat_values(array, column, parquet_file).reshape(num_rows, seq_len)
            else:
                out[column] = array.to_numpy(zero_copy_only=False)
        return out

    out = {column: np.empty(num_rows, dtype=np.int32) for column in INDEX_COLUMNS}
    with contextlib.ExitStack() as files:
        token_files: dict[str, BinaryIO] = {}
        if token_dir is None:
            out.update({column: np.empty((num_rows, seq_len), dtype=np.uint8) for column in TOKEN_COLUMNS})
        else:
            for column in TOKEN_COLUMNS:
                token_files[column] = files.enter_context(open(token_dir / f"{column}.npy", "wb"))
                header = {
                    "descr": np.lib.format.dtype_to_descr(np.dtype(np.uint8)),
                    "fortran_order": False,
                    "shape": (num_rows, seq_len),
                }
                np.lib.format.write_array_header_1_0(token_files[column], header)
        first_row = _decode_row_groups(reader, columns, seq_len, out, token_files, parquet_file)
    if first_row != num_rows:
        raise DatasetFormatError(f"{parquet_file}: row groups hold {first_row} rows but the footer says {num_rows}")
    if token_dir is not None:
        for column in INDEX_COLUMNS:
            np.save(token_dir / f"{column}.npy", out[column])
        out.update({column: np.load(token_dir / f"{column}.npy", mmap_mode="r") for column in TOKEN_COLUMNS})
    return out


def _decode_row_groups(
    reader: pq.ParquetFile,
    columns: list[str],
    seq_len: int,
    out: dict[str, np.ndarray],
    token_files: dict[str, BinaryIO],
    parquet_file: Path,
) -> int:
    """Decode row group by row group into ``out`` (token columns in ``token_files`` are appended to those files
    instead); returns the number of rows decoded."""
    first_row = 0
    for group in range(reader.num_row_groups):
        table = reader.read_row_group(group, columns=columns)
        for column in columns:
            row = first_row
            for chunk in table.column(column).chunks:
                n = len(chunk)
                if column in token_files:
                    token_files[column].write(_flat_values(chunk, column, parquet_file).data)
                elif column in TOKEN_COLUMNS:
                    out[column][row : row + n] = _flat_values(chunk, column, parquet_file).reshape(n, seq_len)
                else:
                    out[column][row : row + n] = chunk.to_numpy(zero_copy_only=False)
                row += n
        first_row += table.num_rows
    return first_row


def decode_lock(entry: Path) -> Path:
    """The lock file held while ``entry`` of the decoded cache is being written (hidden, beside the entry)."""
    return entry.parent / f".{entry.name}.lock"


def _decoded_cache(
    parquet_file: Path, seq_len: int, sha256: str, cache_dir: Path
) -> tuple[dict[str, np.ndarray], Path, bool]:
    """Columns memory-mapped from a decoded copy under `cache_dir`, keyed by the file's sha256 (from metadata.json):
    decoded once, then every later open -- and every rank on the machine -- maps the same pages instead of holding
    its own decoded copy (ARC-AGI-1 aug-1000: ~6.5 GB per process otherwise). The flag says whether this call
    decoded the entry (so its tokens still need checking)."""
    entry = cache_dir / f"{sha256}-L{seq_len}"
    fresh = False
    if not entry.is_dir():
        cache_dir.mkdir(parents=True, exist_ok=True)
        # one decoder per entry: the other Ray workers on the machine wait and then map its result, instead of each
        # decoding a copy at the same time (the ARC-AGI-1 rehearsal's first train stage did, both workers at once)
        with FileLock(decode_lock(entry)):
            if not entry.is_dir():
                with atomic_folder(entry, replace=False) as staging:  # a crash leaves no half-written entry
                    _read_columns(parquet_file, seq_len, token_dir=staging)
                fresh = True
    columns = {column: np.load(entry / f"{column}.npy", mmap_mode="r") for column in TOKEN_COLUMNS}
    columns.update({column: np.load(entry / f"{column}.npy") for column in INDEX_COLUMNS})
    return columns, entry, fresh


def _segment_starts(values: np.ndarray, what: str, parquet_file: Path) -> np.ndarray:
    """Offsets [k+1] of the runs of a column that must count 0, 1, 2, ... in contiguous runs."""
    if values.size == 0:
        return np.zeros(1, dtype=np.int64)
    if values[0] != 0:
        raise DatasetFormatError(f"{parquet_file}: {what} must start at 0, row 0 has {values[0]}")
    steps = np.diff(values.astype(np.int64))
    bad = np.flatnonzero((steps != 0) & (steps != 1))
    if bad.size:
        r = int(bad[0]) + 1
        raise DatasetFormatError(
            f"{parquet_file}: {what} must be contiguous and non-decreasing; "
            f"row {r} has {values[r]} after {values[r - 1]}"
        )
    boundaries = np.flatnonzero(steps) + 1
    return np.concatenate([[0], boundaries, [values.size]]).astype(np.int64)


def _check_hierarchy(
    columns: dict[str, np.ndarray],
    metadata: DatasetMetadata,
    stats: SplitStats | None,
    parquet_file: Path,
    check_tokens: bool = True,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validate rows against metadata.json and the group -> puzzle -> example order; return the puzzle offsets,
    group offsets and per-example identifiers."""
    num_rows = columns["inputs"].shape[0]
    if stats is not None and stats.examples != num_rows:
        raise DatasetFormatError(
            f"{parquet_file}: {num_rows} rows but metadata.json says {stats.examples} examples "
            f"for split {parquet_file.stem!r}"
        )
    for column in TOKEN_COLUMNS if check_tokens else ():
        if num_rows and int(columns[column].max()) >= metadata.vocab_size:
            raise DatasetFormatError(
                f"{parquet_file}: column {column!r} holds token {int(columns[column].max())} but vocab_size is "
                f"{metadata.vocab_size}"
            )
    puzzle_offsets = _segment_starts(columns["puzzle_index"], "puzzle_index", parquet_file)
    puzzle_starts = puzzle_offsets[:-1]
    group_of_puzzle = columns["group_index"][puzzle_starts]
    group_offsets = _segment_starts(group_of_puzzle, "group_index (per puzzle)", parquet_file)
    per_puzzle_repeats = np.diff(puzzle_offsets)
    if num_rows and not np.array_equal(np.repeat(group_of_puzzle, per_puzzle_repeats), columns["group_index"]):
        raise DatasetFormatError(f"{parquet_file}: group_index changes inside a puzzle")
    identifiers = columns["puzzle_identifier"].astype(np.int32, copy=False)
    if num_rows and not np.array_equal(np.repeat(identifiers[puzzle_starts], per_puzzle_repeats), identifiers):
        raise DatasetFormatError(f"{parquet_file}: puzzle_identifier changes inside a puzzle")
    if num_rows and (identifiers.min() < 0 or identifiers.max() >= metadata.num_puzzle_identifiers):
        raise DatasetFormatError(
            f"{parquet_file}: puzzle_identifier outside [0, {metadata.num_puzzle_identifiers}) "
            f"(num_puzzle_identifiers in metadata.json)"
        )
    if stats is not None and (stats.puzzles != len(puzzle_starts) or stats.groups != len(group_offsets) - 1):
        raise DatasetFormatError(
            f"{parquet_file}: {len(puzzle_starts)} puzzles / {len(group_offsets) - 1} groups but metadata.json says "
            f"{stats.puzzles} / {stats.groups}"
        )
    return puzzle_offsets, group_offsets, np.ascontiguousarray(identifiers)


@dataclass
class PuzzleDataset:
    """One split of a built dataset, held as torch tensors (CPU) plus the group -> puzzle -> example offsets."""

    path: Path
    split: str
    metadata: DatasetMetadata
    inputs: torch.Tensor  # uint8 [N, seq_len]
    labels: torch.Tensor  # uint8 [N, seq_len]
    puzzle_identifiers: torch.Tensor  # int32 [N], per example
    puzzle_offsets: torch.Tensor  # int64 [num_puzzles + 1], example offsets
    group_offsets: torch.Tensor  # int64 [num_groups + 1], puzzle offsets
    storage: str = "memory"  # "memory" or "mmap:<decoded cache entry>"
    rows: torch.Tensor | None = None  # int64 [N]: rows of <split>.parquet this view holds (None = all, in order)
    _identifiers: list[str] | None = field(default=None, repr=False)

    @classmethod
    def open(cls, path: Path | str, split: str, cache_dir: Path | str | None = None) -> PuzzleDataset:
        """Load `<path>/<split>.parquet`; `path` may be a folder or a bare dataset name under `data_root()`.

        Tokens are decoded into RAM, or -- with `cache_dir` (default: `$TRM_DECODED_CACHE` if set) -- decoded once
        into `.npy` files there and memory-mapped, which is what large ARC sets and several ranks per machine want."""
        folder = resolve_dataset_path(path)
        if not folder.is_dir():
            hint = f"build it with `trm data build {Path(path).name}`"
            raise DatasetFormatError(f"{folder}: dataset folder not found ({hint})")
        metadata = read_metadata(folder)
        parquet_file = folder / f"{split}.parquet"
        if not parquet_file.is_file():
            listed = ", ".join(sorted(metadata.splits))
            raise DatasetFormatError(f"{parquet_file}: missing (splits listed in metadata.json: {listed})")
        try:
            schema = pq.read_schema(parquet_file, memory_map=True)
        except (OSError, pa.ArrowException) as error:
            raise DatasetFormatError(f"{parquet_file}: not a readable Parquet file ({error})") from error
        _check_parquet_schema(parquet_file, schema, metadata)
        stats = metadata.splits.get(split)
        cache_dir = cache_dir if cache_dir is not None else os.environ.get("TRM_DECODED_CACHE") or None
        if cache_dir is not None and stats is not None:
            columns, entry, fresh = _decoded_cache(parquet_file, metadata.seq_len, stats.sha256, Path(cache_dir))
            storage = f"mmap:{entry}"
        else:
            columns, storage, fresh, entry = _read_columns(parquet_file, metadata.seq_len), "memory", True, None
        try:
            # tokens of a cache entry were checked when it was decoded: re-reading GBs on every open is not needed
            puzzle_offsets, group_offsets, identifiers = _check_hierarchy(
                columns, metadata, stats, parquet_file, check_tokens=fresh
            )
        except DatasetFormatError:
            if entry is not None and fresh:  # never leave a cache entry behind for data that failed its checks
                shutil.rmtree(entry, ignore_errors=True)
            raise
        return cls(
            path=folder,
            split=split,
            metadata=metadata,
            inputs=_as_tensor(columns["inputs"]),
            labels=_as_tensor(columns["labels"]),
            puzzle_identifiers=torch.from_numpy(identifiers),
            puzzle_offsets=torch.from_numpy(puzzle_offsets),
            group_offsets=torch.from_numpy(group_offsets),
            storage=storage,
        )

    def __len__(self) -> int:
        return int(self.inputs.shape[0])

    def head(self, max_groups: int | None = None, max_variants: int | None = None) -> PuzzleDataset:
        """The first ``max_groups`` groups, each cut to its first ``max_variants`` puzzles, with all examples of
        every kept puzzle: a bounded evaluation that keeps whole puzzles and several variants of each, so ARC can
        still vote. ``rows`` maps the view back to the split's rows. None for both returns this dataset."""
        if max_groups is None and max_variants is None:
            return self
        group_offsets = self.group_offsets.numpy()
        groups = self.num_groups if max_groups is None else min(max_groups, self.num_groups)
        first = group_offsets[:groups]
        kept = np.diff(group_offsets[: groups + 1])
        if max_variants is not None:
            kept = np.minimum(kept, max_variants)
        puzzles = np.concatenate([np.arange(p, p + k) for p, k in zip(first, kept, strict=True)] or [np.zeros(0)])
        puzzles = puzzles.astype(np.int64)
        puzzle_offsets = self.puzzle_offsets.numpy()
        sizes = puzzle_offsets[puzzles + 1] - puzzle_offsets[puzzles]
        rows = np.concatenate([np.arange(puzzle_offsets[p], puzzle_offsets[p + 1]) for p in puzzles] or [np.zeros(0)])
        index = torch.from_numpy(rows.astype(np.int64))
        return PuzzleDataset(
            path=self.path,
            split=self.split,
            metadata=self.metadata,
            inputs=self.inputs.index_select(0, index),
            labels=self.labels.index_select(0, index),
            puzzle_identifiers=self.puzzle_identifiers.index_select(0, index),
            puzzle_offsets=torch.from_numpy(np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)),
            group_offsets=torch.from_numpy(np.concatenate([[0], np.cumsum(kept)]).astype(np.int64)),
            storage=self.storage,
            rows=index if self.rows is None else self.rows.index_select(0, index),
            _identifiers=self._identifiers,
        )

    @property
    def seq_len(self) -> int:
        return self.metadata.seq_len

    @property
    def num_puzzles(self) -> int:
        return int(self.puzzle_offsets.numel() - 1)

    @property
    def num_groups(self) -> int:
        return int(self.group_offsets.numel() - 1)

    @property
    def mean_puzzle_examples(self) -> float:
        return len(self) / self.num_puzzles if self.num_puzzles else 0.0

    @property
    def identifiers(self) -> list[str]:
        """Identifier index -> name (identifiers.json), read on first use: ARC has ~1M names nobody needs to train."""
        if self._identifiers is None:
            identifiers_file = self.path / "identifiers.json"
            try:
                names = json.loads(identifiers_file.read_text())
            except (OSError, json.JSONDecodeError) as error:
                raise DatasetFormatError(f"{identifiers_file}: unreadable ({error})") from error
            if not isinstance(names, list) or len(names) != self.metadata.num_puzzle_identifiers:
                raise DatasetFormatError(
                    f"{identifiers_file}: expected a list of {self.metadata.num_puzzle_identifiers} names "
                    f"(num_puzzle_identifiers in metadata.json)"
                )
            self._identifiers = names
        return self._identifiers


def _as_tensor(array: np.ndarray) -> torch.Tensor:
    """Share memory with numpy; Arrow buffers are read-only, which torch only warns about, so silence that once."""
    if not array.flags.writeable:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            return torch.from_numpy(array)
    return torch.from_numpy(array)


def make_batch(
    ds: PuzzleDataset, example_indices: torch.Tensor | np.ndarray | Sequence[int], device: torch.device | str = "cpu"
) -> dict[str, torch.Tensor]:
    """Assemble the rows `example_indices` into a training batch: int32 inputs, int64 labels with the dataset's
    ignore_label_id turned into -100, int32 puzzle identifiers, on `device`."""
    index = torch.as_tensor(np.asarray(example_indices, dtype=np.int64))
    labels = ds.labels.index_select(0, index).to(torch.int64)
    if ds.metadata.ignore_label_id is not None:
        labels.masked_fill_(labels == ds.metadata.ignore_label_id, IGNORE_INDEX)
    batch = {
        "inputs": ds.inputs.index_select(0, index).to(torch.int32),
        "labels": labels,
        "puzzle_identifiers": ds.puzzle_identifiers.index_select(0, index),
    }
    return _to_device(batch, device)


def _to_device(batch: dict[str, torch.Tensor], device: torch.device | str) -> dict[str, torch.Tensor]:
    device = torch.device(device)
    if device.type == "cpu":
        return batch
    if device.type == "cuda":  # pinned host memory lets the copy overlap with compute
        return {key: value.pin_memory().to(device, non_blocking=True) for key, value in batch.items()}
    return {key: value.to(device) for key, value in batch.items()}


def test_batches(
    ds: PuzzleDataset, batch_size: int, rank: int = 0, world_size: int = 1, device: torch.device | str = "cpu"
) -> Iterator[dict[str, torch.Tensor]]:
    """Sequential evaluation batches. `batch_size` is the GLOBAL batch: rank r gets rows
    [r*b/W, (r+1)*b/W) of every global batch, padded to b/W rows (pad_id inputs, -100 labels, blank identifier,
    example_index -1). Every rank yields the same number of batches (collectives stay in lockstep) and every
    example appears exactly once over all ranks."""
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is not in [0, world_size={world_size})")
    if batch_size <= 0 or batch_size % world_size:
        raise ValueError(f"batch size {batch_size} must be a positive multiple of world_size {world_size}")
    local_size = batch_size // world_size
    total = len(ds)
    meta = ds.metadata
    for global_start in range(0, total, batch_size):
        start = min(global_start + rank * local_size, total)
        end = min(global_start + (rank + 1) * local_size, total)
        count = end - start
        rows = torch.arange(start, end, dtype=torch.int64)
        labels = ds.labels[start:end].to(torch.int64)
        if meta.ignore_label_id is not None:
            labels.masked_fill_(labels == meta.ignore_label_id, IGNORE_INDEX)
        batch = {
            "inputs": ds.inputs[start:end].to(torch.int32),
            "labels": labels,
            "puzzle_identifiers": ds.puzzle_identifiers[start:end].clone(),
            "example_index": rows,
        }
        if count < local_size:
            pad = local_size - count
            fill = {
                "inputs": meta.pad_id,
                "labels": IGNORE_INDEX,
                "puzzle_identifiers": meta.blank_identifier_id,
                "example_index": -1,
            }
            batch = {
                key: torch.cat([value, torch.full((pad, *value.shape[1:]), fill[key], dtype=value.dtype)])
                for key, value in batch.items()
            }
        yield _to_device(batch, device)


# a library function, not a pytest test, when a test module imports it by name
test_batches.__test__ = False  # type: ignore[attr-defined]
