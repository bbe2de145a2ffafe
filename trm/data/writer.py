"""Streaming, deterministic, atomic writer of a built dataset folder (layout: ``trm/data/schema.py``).

Builders hand over one group at a time and fixed-size row groups are flushed, so peak RAM stays small even for ARC
with 1000 augmentations; the same parameters give byte-identical files (DVC and lineage rely on it); a failed build
never leaves a half-written folder where a reader looks.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from trm.atomic import atomic_folder, atomic_write_text
from trm.data.schema import BLANK_IDENTIFIER, DatasetMetadata, SplitStats, example_schema

ROW_GROUP_SIZE = 65536  # upper bound on rows per row group
ROW_GROUP_TOKENS = 1 << 24  # ... and on tokens per column chunk: Parquet's level buffers for a row group of long
# fixed-size lists cost ~4 bytes per token, so 900-token ARC rows get 16384-row groups (~64 MB of levels)
COMPRESSION = "zstd"
COMPRESSION_LEVEL = 1  # level 3 is ~20% slower for ~4% smaller files
PAIR_KINDS = ("train", "test")
DICTIONARY_MAX_SEQ_LEN = 256


def default_row_group_size(seq_len: int) -> int:
    """Rows per row group for ``seq_len``-token rows: a power of two, at most ROW_GROUP_SIZE and ROW_GROUP_TOKENS."""
    rows = ROW_GROUP_SIZE
    while rows > 1 and rows * seq_len > ROW_GROUP_TOKENS:
        rows //= 2
    return rows


@dataclass
class ExampleBatch:
    """Rows for the writer as numpy columns (one entry per example).

    ``puzzle_index``/``group_index`` are *split-local* and must continue where the previous batch stopped (the writer
    checks it). Strings are given as a small table plus per-row codes, because building millions of Python strings
    is the slow part of writing Parquet.
    """

    inputs: np.ndarray  # uint8 [n, L]
    labels: np.ndarray  # uint8 [n, L]
    puzzle_identifier: np.ndarray  # int32 [n]
    puzzle_index: np.ndarray  # int32 [n]
    group_index: np.ndarray  # int32 [n]
    source_names: list[str]
    source_codes: np.ndarray  # int32 [n], index into source_names
    pair_index: np.ndarray | None = None  # int16 [n]; zeros when None
    pair_kind_codes: np.ndarray | None = None  # int8 [n] index into PAIR_KINDS; "train" when None
    aug_dihedral: np.ndarray | None = None  # int8 [n]; zeros when None
    aug_value_map: np.ndarray | None = None  # uint8 [n, 10]; identity when None
    aug_row_perm: np.ndarray | None = None  # uint8 [n, k] (k may be 0); empty lists when None
    aug_col_perm: np.ndarray | None = None  # uint8 [n, k]
    aug_offset: np.ndarray | None = None  # uint8 [n, 2]; zeros when None

    def __len__(self) -> int:
        return int(self.inputs.shape[0])


def _fixed_list(values: np.ndarray, width: int) -> pa.Array:
    flat = pa.array(np.ascontiguousarray(values, dtype=np.uint8).reshape(-1), type=pa.uint8())
    return pa.FixedSizeListArray.from_arrays(flat, width)


def _var_list(values: np.ndarray | None, n: int) -> pa.Array:
    width = 0 if values is None else int(values.shape[1])
    offsets = pa.array(np.arange(n + 1, dtype=np.int32) * width, type=pa.int32())
    flat = np.zeros(0, np.uint8) if values is None else np.ascontiguousarray(values, dtype=np.uint8).reshape(-1)
    return pa.ListArray.from_arrays(offsets, pa.array(flat, type=pa.uint8()))


def _strings(names: list[str], codes: np.ndarray) -> pa.Array:
    dictionary = pa.array(names, type=pa.string())
    return pa.DictionaryArray.from_arrays(pa.array(codes, type=pa.int32()), dictionary).cast(pa.string())


def batch_to_table(batch: ExampleBatch, seq_len: int) -> pa.Table:
    """Convert a batch to an Arrow table with exactly ``example_schema(seq_len)`` (checked shapes and dtypes)."""
    n = len(batch)
    for name in ("inputs", "labels"):
        arr = getattr(batch, name)
        if arr.shape != (n, seq_len):
            raise ValueError(f"{name} has shape {arr.shape}, expected ({n}, {seq_len})")
    identity = np.broadcast_to(np.arange(10, dtype=np.uint8), (n, 10))
    columns = [
        _fixed_list(batch.inputs, seq_len),
        _fixed_list(batch.labels, seq_len),
        pa.array(np.asarray(batch.puzzle_identifier, np.int32), pa.int32()),
        pa.array(np.asarray(batch.puzzle_index, np.int32), pa.int32()),
        pa.array(np.asarray(batch.group_index, np.int32), pa.int32()),
        _strings(batch.source_names, np.asarray(batch.source_codes, np.int32)),
        pa.array(np.zeros(n, np.int16) if batch.pair_index is None else np.asarray(batch.pair_index, np.int16)),
        _strings(list(PAIR_KINDS), np.zeros(n, np.int32) if batch.pair_kind_codes is None else batch.pair_kind_codes),
        pa.array(np.zeros(n, np.int8) if batch.aug_dihedral is None else np.asarray(batch.aug_dihedral, np.int8)),
        _fixed_list(identity if batch.aug_value_map is None else batch.aug_value_map, 10),
        _var_list(batch.aug_row_perm, n),
        _var_list(batch.aug_col_perm, n),
        _fixed_list(np.zeros((n, 2), np.uint8) if batch.aug_offset is None else batch.aug_offset, 2),
    ]
    return pa.Table.from_arrays(columns, schema=example_schema(seq_len))


@dataclass
class _Counter:
    """Tracks the group/puzzle hierarchy across batches and rejects rows that break contiguity."""

    examples: int = 0
    puzzles: int = 0
    groups: int = 0
    last_puzzle: int = -1
    last_group: int = -1
    puzzle_group: list[int] = field(default_factory=list)

    def check(self, puzzle_index: np.ndarray, group_index: np.ndarray) -> None:
        if len(puzzle_index) == 0:
            return
        p = np.concatenate([[self.last_puzzle], np.asarray(puzzle_index, np.int64)])
        g = np.concatenate([[self.last_group], np.asarray(group_index, np.int64)])
        dp, dg = np.diff(p), np.diff(g)
        if np.any((dp != 0) & (dp != 1)) or np.any((dg != 0) & (dg != 1)):
            raise ValueError("puzzle_index/group_index must start at 0 and grow by 0 or 1 per row")
        if np.any((dg == 1) & (dp != 1)):
            raise ValueError("a new group must start a new puzzle")
        self.examples += len(puzzle_index)
        self.puzzles += int(dp.sum())
        self.groups += int(dg.sum())
        self.last_puzzle, self.last_group = int(p[-1]), int(g[-1])


class ExampleWriter:
    """Writes one split's Parquet file in fixed-size row groups; call ``write`` per batch and ``close`` once."""

    def __init__(self, path: Path, seq_len: int, row_group_size: int | None = None) -> None:
        self.path = Path(path)
        self.seq_len = seq_len
        self.row_group_size = row_group_size or default_row_group_size(seq_len)
        self._schema = example_schema(seq_len)
        self._writer = pq.ParquetWriter(
            str(self.path),
            self._schema,
            compression=COMPRESSION,
            compression_level=COMPRESSION_LEVEL,
            # dictionary-encoding the token columns halves short sequences (Sudoku) but doubles the encode time of
            # long, mostly-padding ones (ARC 900) for little gain; strings always benefit
            use_dictionary=True if seq_len <= DICTIONARY_MAX_SEQ_LEN else ["source_id", "pair_kind"],
            write_statistics=["puzzle_identifier", "puzzle_index", "group_index"],
        )
        self._pending: list[pa.Table] = []
        self._pending_rows = 0
        self._counter = _Counter()
        self.closed = False

    def write(self, batch: ExampleBatch) -> None:
        if len(batch) == 0:
            return
        self._counter.check(batch.puzzle_index, batch.group_index)
        self._pending.append(batch_to_table(batch, self.seq_len))
        self._pending_rows += len(batch)
        if self._pending_rows >= self.row_group_size:
            self._flush(final=False)

    def _flush(self, final: bool) -> None:
        if not self._pending:
            return
        table = pa.concat_tables(self._pending)
        full = (table.num_rows // self.row_group_size) * self.row_group_size
        cut = table.num_rows if final else full
        for start in range(0, cut, self.row_group_size):
            chunk = table.slice(start, min(self.row_group_size, cut - start)).combine_chunks()
            self._writer.write_table(chunk, row_group_size=self.row_group_size)
        rest = table.slice(cut)
        self._pending = [rest] if rest.num_rows else []
        self._pending_rows = rest.num_rows

    def close(self) -> SplitStats:
        """Flush, close and return the split's statistics (sha256 of the finished file included)."""
        if not self.closed:
            self._flush(final=True)
            self._writer.close()
            self.closed = True
        c = self._counter
        return SplitStats(
            examples=c.examples,
            puzzles=c.puzzles,
            groups=c.groups,
            mean_puzzle_examples=(c.examples / c.puzzles) if c.puzzles else 0.0,
            sha256=sha256_file(self.path),
        )

    def abort(self) -> None:
        if not self.closed:
            self.closed = True
            with contextlib.suppress(Exception):  # the temp folder is deleted anyway
                self._writer.close()


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def dump_json(path: Path, obj: Any) -> None:
    """Deterministic compact JSON (key order as given, no trailing newline), written atomically."""
    atomic_write_text(path, json.dumps(obj, ensure_ascii=False, separators=(",", ":")))


class _NotCommitted(Exception):
    """Thrown into the temporary folder's context when a writer is left without ``commit``: discard it."""


class DatasetWriter:
    """Builds ``<out>`` atomically: everything goes to a temporary folder beside it (``trm.atomic.atomic_folder``),
    which takes ``<out>``'s place on ``commit``.

    Use as a context manager; leaving the block by an exception (or without ``commit``) deletes the temp folder, so
    nothing is left behind and an older build at ``<out>`` is untouched.
    """

    def __init__(self, out: Path, seq_len: int, row_group_size: int | None = None) -> None:
        self.out = Path(out)
        self.seq_len = seq_len
        self.row_group_size = row_group_size
        self._folder = atomic_folder(self.out)
        self._tmp: Path | None = None
        self._splits: dict[str, ExampleWriter] = {}
        self.identifiers: list[str] = [BLANK_IDENTIFIER]
        self.committed = False

    @property
    def tmp(self) -> Path:
        """The temporary folder being filled (inside the ``with`` block only)."""
        if self._tmp is None:
            raise RuntimeError(f"DatasetWriter({self.out}) is used outside its `with` block")
        return self._tmp

    def __enter__(self) -> DatasetWriter:
        self._tmp = self._folder.__enter__()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._tmp is None:  # committed, or its commit failed and removed the temp folder already
            return
        self._tmp = None
        for writer in self._splits.values():
            writer.abort()
        error = exc if exc is not None else _NotCommitted()
        self._folder.__exit__(type(error), error, tb)  # removes the temp folder; `exc` propagates as usual

    def split(self, name: str) -> ExampleWriter:
        """The writer of split ``name`` (created on first use)."""
        if name not in self._splits:
            self._splits[name] = ExampleWriter(self.tmp / f"{name}.parquet", self.seq_len, self.row_group_size)
        return self._splits[name]

    def write_json(self, filename: str, obj: Any) -> None:
        dump_json(self.tmp / filename, obj)

    def commit(self, metadata: dict[str, Any]) -> DatasetMetadata:
        """Close the splits, write identifiers.json and metadata.json (last), then move the folder into place.

        ``metadata`` holds every ``DatasetMetadata`` field except ``splits`` and ``num_puzzle_identifiers``, which
        come from what was written.
        """
        splits = {name: writer.close() for name, writer in self._splits.items()}
        self.write_json("identifiers.json", self.identifiers)
        meta = DatasetMetadata(**metadata, splits=splits, num_puzzle_identifiers=len(self.identifiers))
        atomic_write_text(self.tmp / "metadata.json", meta.model_dump_json(indent=2) + "\n")
        self._tmp = None
        self._folder.__exit__(None, None, None)  # the rename into place (on failure the temp folder is removed)
        self.committed = True
        return meta
