"""Fixtures for the loader/sampler tests: small datasets with a chosen group -> puzzle -> example shape, written by
the real `DatasetWriter`, whose tokens encode the row number so a test can tell exactly which rows it received."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest

from trm.data.writer import DatasetWriter, ExampleBatch

SEQ_LEN = 4  # tokens of row i = the 4 little-endian bytes of i (inputs) and of i + 1 (labels)


def row_tokens(rows: np.ndarray) -> np.ndarray:
    return np.asarray(rows, dtype="<u4").view(np.uint8).reshape(-1, SEQ_LEN)


def decode_rows(tokens: np.ndarray) -> np.ndarray:
    """Inverse of `row_tokens` for int tensors/arrays of shape [B, 4]."""
    return np.ascontiguousarray(np.asarray(tokens, dtype=np.uint8)).view("<u4").reshape(-1).astype(np.int64)


def write_shaped_dataset(out: Path, splits: dict[str, Sequence[Sequence[int]]], row_group_size: int = 1 << 16) -> Path:
    """Write `out` with, per split, groups given as lists of puzzle sizes, e.g. [[1, 3], [2]]: group 0 has a
    1-example and a 3-example puzzle. Puzzle identifiers are global (1, 2, ...), 0 stays the blank id."""
    next_identifier = 1
    with DatasetWriter(out, SEQ_LEN, row_group_size=row_group_size) as writer:
        for split, groups in splits.items():
            sizes = [size for group in groups for size in group]
            puzzle_of_example = np.repeat(np.arange(len(sizes)), sizes)
            group_of_puzzle = np.repeat(np.arange(len(groups)), [len(group) for group in groups])
            n = len(puzzle_of_example)
            rows = np.arange(n)
            identifiers = next_identifier + puzzle_of_example
            writer.identifiers.extend(f"{split}-p{p}" for p in range(len(sizes)))
            next_identifier += len(sizes)
            writer.split(split).write(
                ExampleBatch(
                    inputs=row_tokens(rows),
                    labels=row_tokens(rows + 1),
                    puzzle_identifier=identifiers.astype(np.int32),
                    puzzle_index=puzzle_of_example.astype(np.int32),
                    group_index=group_of_puzzle[puzzle_of_example].astype(np.int32),
                    source_names=["synthetic"],
                    source_codes=np.zeros(n, np.int32),
                )
            )
        writer.commit(
            {
                "name": out.name,
                "task": "synthetic",
                "builder_version": "test",
                "params": {},
                "seq_len": SEQ_LEN,
                "vocab_size": 256,
                "vocab": [str(i) for i in range(256)],
                "pad_id": 0,
                "ignore_label_id": 0,
                "grid_shape": (2, 2),
                "sources": [],
            }
        )
    return out


@pytest.fixture
def shaped_dataset(tmp_path: Path) -> Callable[..., Path]:
    """Factory: `shaped_dataset({"train": [[1, 3], [2]]}, name="x")` -> folder of a written dataset."""

    def make(splits: dict[str, Sequence[Sequence[int]]], name: str = "shaped", row_group_size: int = 1 << 16) -> Path:
        return write_shaped_dataset(tmp_path / name, splits, row_group_size)

    return make


@pytest.fixture
def rows_of() -> Callable[[np.ndarray], np.ndarray]:
    """Decoder from a batch's `inputs` back to the dataset rows they came from (see `row_tokens`)."""
    return decode_rows


@pytest.fixture(scope="session")
def shaped_dataset_factory(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """Like `shaped_dataset` but session-scoped (for hypothesis tests): every call gets a fresh folder."""

    def make(splits: dict[str, Sequence[Sequence[int]]], row_group_size: int = 1 << 16) -> Path:
        return write_shaped_dataset(tmp_path_factory.mktemp("shaped") / "ds", splits, row_group_size)

    return make
