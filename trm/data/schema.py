"""The one on-disk format of a built dataset: Parquet example tables plus JSON metadata.

Layout of a built dataset folder (``data/<name>/``)::

    metadata.json        DatasetMetadata (below), written last
    identifiers.json     list: puzzle identifier index -> name; index 0 is "<blank>"
    train.parquet        one row per example (schema below)
    test.parquet         same schema
    test_puzzles.json    ARC only: the raw held-out tasks (with test outputs) used for scoring

Row order encodes the official group -> puzzle -> example hierarchy: the rows of one puzzle are contiguous and
``puzzle_index`` is non-decreasing; the puzzles of one group are contiguous and ``group_index`` is non-decreasing.
Token ids are stored raw (uint8); ``ignore_label_id`` in the metadata says which label id is not supervised (the
loader turns it into -100).
"""

from __future__ import annotations

import pyarrow as pa
from pydantic import BaseModel, Field

SCHEMA_VERSION = 1
IGNORE_INDEX = -100  # label value the loss ignores, after loading
BLANK_IDENTIFIER = "<blank>"


def example_schema(seq_len: int) -> pa.Schema:
    """Arrow schema of train/test Parquet files for sequences of ``seq_len`` tokens."""
    return pa.schema(
        [
            pa.field("inputs", pa.list_(pa.uint8(), seq_len), nullable=False),
            pa.field("labels", pa.list_(pa.uint8(), seq_len), nullable=False),
            # global identifier index (0 = blank); ARC variants share it between the train and test split
            pa.field("puzzle_identifier", pa.int32(), nullable=False),
            # position of the puzzle / group inside this split (0-based, contiguous, non-decreasing)
            pa.field("puzzle_index", pa.int32(), nullable=False),
            pa.field("group_index", pa.int32(), nullable=False),
            # where the example came from: "<file>:<row>" for CSV sources, the task id for ARC, "gen:<k>" for generators
            pa.field("source_id", pa.string(), nullable=False),
            # ARC: index of the pair within the source task's list named by pair_kind; 0 elsewhere
            pa.field("pair_index", pa.int16(), nullable=False),
            pa.field("pair_kind", pa.string(), nullable=False),  # "train" | "test" (the source task's list)
            # --- augmentation record: enough to map a prediction back to the original frame exactly ---
            # dihedral transform id (0 identity, 1/2/3 rot90 x k, 4 flip lr, 5 flip ud, 6 transpose, 7 anti-transpose)
            pa.field("aug_dihedral", pa.int8(), nullable=False),
            # value map applied after the dihedral: augmented = map[original] (ARC colours 0-9, Sudoku digits 0-9;
            # identity when unused)
            pa.field("aug_value_map", pa.list_(pa.uint8(), 10), nullable=False),
            # Sudoku row / column permutations (augmented row r = original row perm[r]); empty when unused
            pa.field("aug_row_perm", pa.list_(pa.uint8()), nullable=False),
            pa.field("aug_col_perm", pa.list_(pa.uint8()), nullable=False),
            # ARC translation of the grid on the 30x30 canvas (row, col); (0, 0) when unused
            pa.field("aug_offset", pa.list_(pa.uint8(), 2), nullable=False),
        ],
        metadata={"trm.schema_version": str(SCHEMA_VERSION)},
    )


class SplitStats(BaseModel):
    examples: int
    puzzles: int
    groups: int
    mean_puzzle_examples: float
    sha256: str = Field(description="sha256 of the split's Parquet file")


class SourceFile(BaseModel):
    path: str = Field(description="path as given to the builder (informational)")
    name: str = Field(description="file name, stable across machines")
    sha256: str


class DatasetMetadata(BaseModel):
    """Everything a trainer or auditor needs to know about a built dataset. Contains no timestamps, so that
    the same parameters give byte-identical files."""

    name: str
    task: str = Field(description="sudoku | maze | arc")
    schema_version: int = SCHEMA_VERSION
    builder_version: str
    params: dict = Field(description="the resolved builder parameters (seed included)")
    seq_len: int
    vocab_size: int
    vocab: list[str] = Field(description="token id -> meaning")
    pad_id: int = 0
    ignore_label_id: int | None = 0
    blank_identifier_id: int = 0
    num_puzzle_identifiers: int
    grid_shape: tuple[int, int] = Field(description="rows, cols of the canvas the sequence flattens")
    splits: dict[str, SplitStats]
    sources: list[SourceFile]
