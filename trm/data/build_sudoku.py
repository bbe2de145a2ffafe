"""Sudoku dataset builders: Sudoku-Extreme from its CSVs (the 1k set with a generated hard test split, or the full
set) and generated N×N sets for the CPU presets. Groups = a source puzzle plus its augmented copies."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from trm.data.augment import augment_sudoku, group_rng
from trm.data.build_context import (
    GROUPS_PER_BATCH,
    BuildContext,
    Progress,
    csv_source_names,
    running_total,
    source_file,
    source_path,
)
from trm.data.params import SudokuExtreme1kParams, SudokuExtremeFullParams, SudokuGenParams
from trm.data.sudoku import SudokuRows, read_sudoku_csv, subsample, sudoku_tokens, sudoku_vocab, validate_sudoku
from trm.data.sudoku_gen import SudokuSet, generate_sudoku_disjoint_from, generate_sudoku_splits
from trm.data.validation import carve_validation
from trm.data.writer import DatasetWriter, ExampleBatch, ExampleWriter

UNAUGMENTED_SLICE = 1 << 16  # rows per batch when no copies are made (one puzzle per group)
_IDENTITY_MAP = np.arange(10, dtype=np.uint8)


def sudoku_meta(size: int) -> dict[str, Any]:
    """Metadata fields of an N×N Sudoku dataset (tokens: 0 pad, 1 blank, 2.. digits)."""
    return {
        "task": "sudoku",
        "seq_len": size * size,
        "vocab_size": size + 2,
        "vocab": sudoku_vocab(size),
        "grid_shape": (size, size),
        "pad_id": 0,
        "ignore_label_id": 0,
    }


def write_sudoku_split(
    writer: ExampleWriter,
    questions: np.ndarray,
    answers: np.ndarray,
    size: int,
    num_aug: int,
    seed: int,
    split_key: int,
    source_names: list[str],
    progress: Progress,
    exclude_answers: np.ndarray | None = None,
) -> None:
    """Groups = one source puzzle + ``num_aug`` augmented copies, each copy its own 1-example puzzle. Group g draws
    from ``group_rng(seed, split_key, g)``. Copies whose solution grid is one of ``exclude_answers`` (the held-out
    grids) are dropped, so augmentation can never recreate a test grid in training (small sizes have so few grids
    that shuffles of training grids hit test grids often)."""
    if num_aug == 0:
        _write_unaugmented(writer, questions, answers, size, source_names, progress)
        return
    excluded = {row.tobytes() for row in exclude_answers} if exclude_answers is not None else set()
    n = questions.shape[0]
    next_puzzle = 0
    for start in range(0, n, GROUPS_PER_BATCH):
        stop = min(n, start + GROUPS_PER_BATCH)
        groups = [
            _augmented_group(questions, answers, g, size, num_aug, group_rng(seed, split_key, g), excluded)
            for g in range(start, stop)
        ]
        parts = {key: np.concatenate([group[key] for group in groups]) for key in groups[0]}
        rows = parts["q"].shape[0]
        group_index = np.repeat(np.arange(start, stop, dtype=np.int32), [len(group["q"]) for group in groups])
        writer.write(
            ExampleBatch(
                inputs=sudoku_tokens(parts["q"]),
                labels=sudoku_tokens(parts["a"]),
                puzzle_identifier=np.zeros(rows, np.int32),
                puzzle_index=(np.arange(rows, dtype=np.int32) + next_puzzle),
                group_index=group_index,
                source_names=source_names,
                source_codes=group_index,
                aug_dihedral=parts["d"],
                aug_value_map=parts["v"],
                aug_row_perm=parts["r"],
                aug_col_perm=parts["c"],
            )
        )
        next_puzzle += rows
        progress.advance(stop - start)


def _write_unaugmented(
    writer: ExampleWriter,
    questions: np.ndarray,
    answers: np.ndarray,
    size: int,
    source_names: list[str],
    progress: Progress,
) -> None:
    """One puzzle per group and no randomness: written in large vectorised slices."""
    identity_perm = np.arange(size, dtype=np.uint8)
    n = questions.shape[0]
    for start in range(0, n, UNAUGMENTED_SLICE):
        stop = min(n, start + UNAUGMENTED_SLICE)
        k = stop - start
        index = np.arange(start, stop, dtype=np.int32)
        writer.write(
            ExampleBatch(
                inputs=sudoku_tokens(questions[start:stop]),
                labels=sudoku_tokens(answers[start:stop]),
                puzzle_identifier=np.zeros(k, np.int32),
                puzzle_index=index,
                group_index=index,
                source_names=source_names,
                source_codes=index,
                aug_value_map=np.broadcast_to(_IDENTITY_MAP, (k, 10)),
                aug_row_perm=np.broadcast_to(identity_perm, (k, size)),
                aug_col_perm=np.broadcast_to(identity_perm, (k, size)),
            )
        )
        progress.advance(k)


def _augmented_group(
    questions: np.ndarray,
    answers: np.ndarray,
    g: int,
    size: int,
    num_aug: int,
    rng: np.random.Generator,
    excluded: set[bytes],
) -> dict[str, np.ndarray]:
    """Puzzle ``g`` followed by the copies kept, as columns q(uestion) a(nswer) d(ihedral) v(alue map) r(ow
    permutation) c(olumn permutation)."""
    identity_perm = np.arange(size, dtype=np.uint8)
    variants = augment_sudoku(questions[g : g + 1], answers[g : g + 1], size, num_aug, rng)
    keep = (
        np.array([a.tobytes() not in excluded for a in variants.answers], dtype=bool)
        if excluded
        else np.ones(num_aug, dtype=bool)
    )
    originals = (
        questions[g : g + 1],
        answers[g : g + 1],
        np.zeros(1, np.int8),
        _IDENTITY_MAP[None],
        identity_perm[None],
        identity_perm[None],
    )
    copies = (
        variants.questions,
        variants.answers,
        variants.dihedral,
        variants.value_map,
        variants.row_perm,
        variants.col_perm,
    )
    return {
        key: np.concatenate([original, copy[keep]])
        for key, original, copy in zip("qadvrc", originals, copies, strict=True)
    }


@dataclass(frozen=True)
class SudokuPart:
    """One split's source puzzles (raw digits) and the ``source_id`` of each."""

    questions: np.ndarray
    answers: np.ndarray
    source_names: list[str]

    def __len__(self) -> int:
        return int(self.questions.shape[0])


def csv_part(rows: SudokuRows) -> SudokuPart:
    return SudokuPart(rows.questions, rows.answers, csv_source_names(rows.path, rows.rows))


def generated_part(puzzles: SudokuSet, prefix: str = "gen") -> SudokuPart:
    return SudokuPart(puzzles.questions, puzzles.answers, [f"{prefix}:{k}" for k in range(len(puzzles))])


def write_sudoku_dataset(
    dw: DatasetWriter, parts: dict[str, SudokuPart], size: int, num_aug: int, seed: int, progress: Progress
) -> None:
    """Train (augmented: ``num_aug`` copies per puzzle, dropping any copy whose solution grid is a validation or
    test grid), then validation and test (originals only). Split keys 0/1/2 seed the groups of train/test/val."""
    held_out = np.concatenate([parts["val"].answers, parts["test"].answers])
    for split, key in (("train", 0), ("val", 2), ("test", 1)):
        part = parts[split]
        progress.stage(f"writing {split}", len(part))
        write_sudoku_split(
            dw.split(split),
            part.questions,
            part.answers,
            size,
            num_aug if split == "train" else 0,
            seed,
            key,
            part.source_names,
            progress,
            exclude_answers=held_out if split == "train" else None,
        )


def carve_rows(rows: SudokuRows, val_count: int, seed: int) -> tuple[SudokuRows, SudokuRows]:
    """(train, validation): ``val_count`` whole source puzzles held out before any augmentation."""
    train_index, val_index = carve_validation(len(rows), val_count, seed, f"puzzles of {rows.path.name}")
    return rows.take(train_index), rows.take(val_index)


def build_sudoku_extreme_1k(params: SudokuExtreme1kParams, ctx: BuildContext) -> None:
    progress = ctx.progress
    train_path = source_path(params.train_csv)
    rows = read_sudoku_csv(train_path, size=9)
    progress.stage(f"generating {params.test_count} test puzzles", params.test_count)
    test = generate_sudoku_disjoint_from(
        rows.answers, 9, params.test_count, params.seed, params.test_min_rating, progress=progress.set
    )
    train, val = carve_rows(rows, params.val_count, params.seed)
    with DatasetWriter(ctx.out, 81) as dw:
        parts = {"train": csv_part(train), "val": csv_part(val), "test": generated_part(test)}
        write_sudoku_dataset(dw, parts, 9, params.num_aug, params.seed, progress)
        dw.commit(ctx.metadata(**sudoku_meta(9), sources=[source_file(params.train_csv, train_path)]))


def build_sudoku_extreme_full(params: SudokuExtremeFullParams, ctx: BuildContext) -> None:
    progress = ctx.progress
    train_path, test_path = source_path(params.train_csv), source_path(params.test_csv)
    progress.stage("reading CSVs", None)
    kept = subsample(read_sudoku_csv(train_path, 9, params.min_difficulty), params.subsample_size, params.seed)
    test = read_sudoku_csv(test_path, 9, params.min_difficulty)
    train, val = carve_rows(kept, params.val_count, params.seed)
    with DatasetWriter(ctx.out, 81) as dw:
        parts = {"train": csv_part(train), "val": csv_part(val), "test": csv_part(test)}
        write_sudoku_dataset(dw, parts, 9, params.num_aug, params.seed, progress)
        sources = [source_file(params.train_csv, train_path), source_file(params.test_csv, test_path)]
        dw.commit(ctx.metadata(**sudoku_meta(9), sources=sources))


def sudoku_generated(size: int) -> Callable[[SudokuGenParams, BuildContext], None]:
    """The builder of generated N×N Sudoku: train, validation and test puzzles never share a solution grid."""

    def build(params: SudokuGenParams, ctx: BuildContext) -> None:
        progress = ctx.progress
        counts = params.train_count + params.val_count + params.test_count
        progress.stage(f"generating {size}x{size} puzzles", counts)
        if params.blanks is not None and params.blanks >= size * size:
            raise ValueError(f"blanks={params.blanks} must be below the {size * size} cells of a {size}x{size} grid")
        sets = generate_sudoku_splits(
            size,
            params.train_count,
            params.val_count,
            params.test_count,
            params.seed,
            params.min_rating,
            progress=running_total(progress),
            blanks=params.blanks,
        )
        parts = dict(zip(("train", "val", "test"), (generated_part(puzzles) for puzzles in sets), strict=True))
        for split, part in parts.items():  # cheap guard against generator regressions
            where = Path(f"<generated {size}x{size} {split}>")
            validate_sudoku(where, part.questions, part.answers, size, np.arange(1, len(part) + 1))
        with DatasetWriter(ctx.out, size * size) as dw:
            write_sudoku_dataset(dw, parts, size, params.num_aug, params.seed, progress)
            dw.commit(ctx.metadata(**sudoku_meta(size), sources=[]))

    return build
