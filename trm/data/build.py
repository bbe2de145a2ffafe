"""The dataset registry: every buildable dataset by name, its typed parameters (with defaults) and its builder.

``build_dataset(name, overrides)`` is what the CLI (``trm data build``) and the DVC stages call. Parameters are a
pydantic model per dataset, so ``--set num_aug=10`` is coerced and checked, unknown keys are rejected, and the
resolved values land in ``metadata.params``. Source paths are strings: a relative path is taken relative to the
offline datasets root (``trm.paths.datasets_root()``, i.e. ``$TRM_DATASETS`` or ``../shared/datasets``), an
absolute path as given -- so the recorded parameters of a default build are the same on every machine.

How a build differs from the official builders (``dataset/build_{sudoku,maze,arc}_dataset.py``), on purpose:
- Seeded everywhere: each group draws from ``np.random.default_rng([seed, ...group key])`` instead of the global
  numpy state, so a group's augmentations do not depend on the other groups; same parameters => same bytes.
  The Sudoku ``subsample_size`` is seeded (official: unseeded) and keeps the chosen rows in file order.
- Parquet + JSON metadata (counts, vocab, sha256 of inputs and outputs, parameters) instead of ``.npy`` files;
  the tokens and the group -> puzzle -> example structure are the official ones (tests check byte parity for
  Maze-Hard and the Sudoku 1k train split).
- Sudoku-Extreme-1k's test split is generated (hard, disjoint from train under the symmetries), because the real
  test CSV is not available offline; ``sudoku-extreme-full`` takes the real CSVs when a user has them.
- ARC: tasks are processed in task-id order within each subset (official: shuffled), so identifiers differ from
  an official build; variant sampling, the dedup rule, translation, EOS and the split rule are the same. With the
  defaults ARC-AGI-1 has 3,633,437 train / 385,816 test examples and 876,410 identifiers (incl. blank).
- Bad input is rejected with a DataError naming file, row/task and problem (official: bare asserts or silent).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from trm.data import arc as arc_source
from trm.data.augment import (
    ArcRows,
    arc_canvas_rows,
    arc_variants,
    augment_sudoku,
    group_rng,
    maze_dihedral_variants,
)
from trm.data.maze import MAZE_VOCAB, read_maze_csv, validate_mazes
from trm.data.schema import SourceFile
from trm.data.sudoku import read_sudoku_csv, subsample, sudoku_tokens, sudoku_vocab, validate_sudoku
from trm.data.writer import DatasetWriter, ExampleBatch, ExampleWriter, sha256_file
from trm.paths import data_root, datasets_root

BUILDER_VERSION = "1"
GROUPS_PER_BATCH = 256  # groups handed to the writer at once (Sudoku/Maze); affects speed only, never the bytes
HARD_MIN_RATING = 200  # = trm.data.sudoku_gen.HARD_MIN_RATING (kept here so importing the registry stays cheap)


# ------------------------------------------------------------------------------------------------- parameters
class Params(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class SudokuExtreme1kParams(Params):
    train_csv: str = "sudoku-extreme-1k/train1k.csv"
    num_aug: int = Field(1000, ge=0)
    seed: int = 0
    test_count: int = Field(1000, ge=0, description="generated hard 9x9 test puzzles, disjoint from train")
    test_min_rating: int = Field(HARD_MIN_RATING, ge=0)


class SudokuExtremeFullParams(Params):
    train_csv: str = "sudoku-extreme/train.csv"
    test_csv: str = "sudoku-extreme/test.csv"
    subsample_size: int | None = Field(1000, ge=1, description="train rows kept (seeded); None keeps all")
    min_difficulty: int | None = None
    num_aug: int = Field(1000, ge=0)
    seed: int = 0


class MazeHardParams(Params):
    train_csv: str = "maze-hard/train.csv"
    test_csv: str = "maze-hard/test.csv"
    aug: bool = False
    rows: int | None = Field(None, ge=1, description="maze height; None = square, inferred from the row length")
    cols: int | None = Field(None, ge=1)


class ArcParams(Params):
    source: Literal["kaggle", "json"] = "kaggle"
    subsets: list[str]
    test_set: str
    num_aug: int = Field(1000, ge=0)
    seed: int = 42
    kaggle_dir: str = arc_source.KAGGLE_DIR
    json_folders: dict[str, str] = Field(default_factory=lambda: dict(arc_source.JSON_FOLDERS))

    @model_validator(mode="after")
    def _test_set_in_subsets(self) -> ArcParams:
        if self.test_set not in self.subsets:
            raise ValueError(f"test_set {self.test_set!r} must be one of subsets {self.subsets}")
        return self


class Arc1Params(ArcParams):
    subsets: list[str] = Field(default_factory=lambda: list(arc_source.RECIPES["arc-agi-1"][0]))
    test_set: str = arc_source.RECIPES["arc-agi-1"][1]


class Arc2Params(ArcParams):
    subsets: list[str] = Field(default_factory=lambda: list(arc_source.RECIPES["arc-agi-2"][0]))
    test_set: str = arc_source.RECIPES["arc-agi-2"][1]


class SudokuGenParams(Params):
    train_count: int = Field(1000, ge=1)
    test_count: int = Field(200, ge=0)
    num_aug: int = Field(100, ge=0)
    min_rating: int = Field(0, ge=0)
    # None: minimal puzzles (no clue can be dropped); a number: exactly that many blank cells, i.e. easier puzzles
    blanks: int | None = Field(None, ge=1)
    seed: int = 0


class Sudoku4x4Params(SudokuGenParams):
    pass


class Sudoku6x6Params(SudokuGenParams):
    pass


class Sudoku9x9CpuParams(SudokuGenParams):
    blanks: int | None = Field(45, ge=1)  # 36 givens: a CPU learns these in minutes (minimal puzzles take hours)


class MazeGenParams(Params):
    rows: int = Field(10, ge=2)
    cols: int = Field(10, ge=2)
    train_count: int = Field(1000, ge=1)
    test_count: int = Field(200, ge=0)
    min_path_len: int = Field(12, ge=1)
    density_min: float = Field(0.28, ge=0.0, lt=1.0)
    density_max: float = Field(0.45, ge=0.0, lt=1.0)
    aug: bool = False
    seed: int = 0


# ----------------------------------------------------------------------------------------------------- helpers
def source_path(value: str) -> Path:
    """A source path parameter: relative -> under the datasets root, absolute -> as given."""
    path = Path(value).expanduser()
    return path if path.is_absolute() else datasets_root() / path


def _source_file(label: str, path: Path) -> SourceFile:
    return SourceFile(path=label, name=path.name, sha256=sha256_file(path))


class Progress:
    """A rich progress bar when asked for, silent otherwise (builders call it the same way)."""

    def __init__(self, enabled: bool) -> None:
        self._bar = None
        self._task = None
        if enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress as RichProgress, TextColumn, \
                TimeElapsedColumn

            self._bar = RichProgress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                     TimeElapsedColumn())
            self._bar.start()

    def stage(self, description: str, total: int | None) -> None:
        if self._bar is not None:
            if self._task is not None:
                self._bar.update(self._task, completed=self._bar.tasks[self._task].total)
            self._task = self._bar.add_task(description, total=total)

    def advance(self, n: int = 1) -> None:
        if self._bar is not None and self._task is not None:
            self._bar.advance(self._task, n)

    def set(self, completed: int) -> None:
        if self._bar is not None and self._task is not None:
            self._bar.update(self._task, completed=completed)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()


def _running_total(progress: Progress) -> Callable[[int], None]:
    """Adapter for generator callbacks that report a running count per set (train first, then test)."""
    done = [0, 0]

    def tick(count: int) -> None:
        if count < done[1]:
            done[0] += done[1]
        done[1] = count
        progress.set(done[0] + count)

    return tick


@dataclass
class BuildContext:
    """What every builder needs besides its parameters: where to write, the progress bar, and the metadata fields
    common to all datasets."""

    name: str
    out: Path
    progress: Progress
    params: Params

    def metadata(self, **fields: Any) -> dict[str, Any]:
        return {"name": self.name, "builder_version": BUILDER_VERSION, "params": self.params.model_dump(mode="json"),
                **fields}


# ------------------------------------------------------------------------------------------------------ sudoku
def _sudoku_meta(size: int) -> dict[str, Any]:
    return {"task": "sudoku", "seq_len": size * size, "vocab_size": size + 2, "vocab": sudoku_vocab(size),
            "grid_shape": (size, size), "pad_id": 0, "ignore_label_id": 0}


def write_sudoku_split(writer: ExampleWriter, questions: np.ndarray, answers: np.ndarray, size: int, num_aug: int,
                       seed: int, split_key: int, source_names: list[str], progress: Progress,
                       exclude_answers: np.ndarray | None = None) -> None:
    """Groups = one source puzzle + ``num_aug`` augmented copies, each copy its own 1-example puzzle. Group g draws
    from ``group_rng(seed, split_key, g)``. Augmented copies whose solution grid is one of ``exclude_answers`` (the
    held-out grids) are dropped, so augmentation can never recreate a test grid in training (small sizes have so few
    grids that shuffles of training grids hit test grids often)."""
    n = questions.shape[0]
    excluded = {row.tobytes() for row in exclude_answers} if exclude_answers is not None else set()
    next_puzzle = 0
    identity_map = np.arange(10, dtype=np.uint8)
    identity_perm = np.arange(size, dtype=np.uint8)
    if num_aug == 0:  # one puzzle per group, no randomness: write in large vectorised slices
        for start in range(0, n, 1 << 16):
            stop = min(n, start + (1 << 16))
            k = stop - start
            index = np.arange(start, stop, dtype=np.int32)
            writer.write(ExampleBatch(
                inputs=sudoku_tokens(questions[start:stop]), labels=sudoku_tokens(answers[start:stop]),
                puzzle_identifier=np.zeros(k, np.int32), puzzle_index=index, group_index=index,
                source_names=source_names, source_codes=index,
                aug_value_map=np.broadcast_to(identity_map, (k, 10)),
                aug_row_perm=np.broadcast_to(identity_perm, (k, size)),
                aug_col_perm=np.broadcast_to(identity_perm, (k, size)),
            ))
            progress.advance(k)
        return
    for start in range(0, n, GROUPS_PER_BATCH):
        stop = min(n, start + GROUPS_PER_BATCH)
        parts: dict[str, list[np.ndarray]] = {k: [] for k in ("q", "a", "d", "v", "r", "c")}
        group_sizes = []
        for g in range(start, stop):
            parts["q"].append(questions[g : g + 1])
            parts["a"].append(answers[g : g + 1])
            parts["d"].append(np.zeros(1, np.int8))
            parts["v"].append(identity_map[None])
            parts["r"].append(identity_perm[None])
            parts["c"].append(identity_perm[None])
            var = augment_sudoku(questions[g : g + 1], answers[g : g + 1], size, num_aug,
                                 group_rng(seed, split_key, g))
            keep = (np.array([a.tobytes() not in excluded for a in var.answers], dtype=bool) if excluded
                    else np.ones(num_aug, dtype=bool))
            for key, arr in zip("qadvrc", (var.questions, var.answers, var.dihedral, var.value_map,
                                           var.row_perm, var.col_perm)):
                parts[key].append(arr[keep])
            group_sizes.append(1 + int(keep.sum()))  # the original plus the copies kept
        cat = {k: np.concatenate(v) for k, v in parts.items()}
        rows = cat["q"].shape[0]
        groups = np.repeat(np.arange(start, stop, dtype=np.int32), group_sizes)
        writer.write(ExampleBatch(
            inputs=sudoku_tokens(cat["q"]), labels=sudoku_tokens(cat["a"]),
            puzzle_identifier=np.zeros(rows, np.int32),
            puzzle_index=(np.arange(rows, dtype=np.int32) + next_puzzle),
            group_index=groups, source_names=source_names, source_codes=groups,
            aug_dihedral=cat["d"], aug_value_map=cat["v"], aug_row_perm=cat["r"], aug_col_perm=cat["c"],
        ))
        next_puzzle += rows
        progress.advance(stop - start)


def _csv_source_names(path: Path, rows: np.ndarray) -> list[str]:
    return [f"{path.name}:{int(r)}" for r in rows]


def build_sudoku_extreme_1k(params: SudokuExtreme1kParams, ctx: BuildContext) -> None:
    progress = ctx.progress
    from trm.data.sudoku_gen import generate_sudoku_disjoint_from

    train_path = source_path(params.train_csv)
    train = read_sudoku_csv(train_path, size=9)
    progress.stage(f"generating {params.test_count} test puzzles", params.test_count)
    test = generate_sudoku_disjoint_from(train.answers, 9, params.test_count, params.seed, params.test_min_rating,
                                         progress=progress.set)
    with DatasetWriter(ctx.out, 81) as dw:
        progress.stage("writing train", len(train))
        write_sudoku_split(dw.split("train"), train.questions, train.answers, 9, params.num_aug, params.seed, 0,
                           _csv_source_names(train_path, train.rows), progress)
        progress.stage("writing test", len(test))
        write_sudoku_split(dw.split("test"), test.questions, test.answers, 9, 0, params.seed, 1,
                           [f"gen:{k}" for k in range(len(test))], progress)
        dw.commit(ctx.metadata(**_sudoku_meta(9), sources=[_source_file(params.train_csv, train_path)]))


def build_sudoku_extreme_full(params: SudokuExtremeFullParams, ctx: BuildContext) -> None:
    progress = ctx.progress
    train_path, test_path = source_path(params.train_csv), source_path(params.test_csv)
    progress.stage("reading CSVs", None)
    train = subsample(read_sudoku_csv(train_path, 9, params.min_difficulty), params.subsample_size, params.seed)
    test = read_sudoku_csv(test_path, 9, params.min_difficulty)
    with DatasetWriter(ctx.out, 81) as dw:
        progress.stage("writing train", len(train))
        write_sudoku_split(dw.split("train"), train.questions, train.answers, 9, params.num_aug, params.seed, 0,
                           _csv_source_names(train_path, train.rows), progress)
        progress.stage("writing test", len(test))
        write_sudoku_split(dw.split("test"), test.questions, test.answers, 9, 0, params.seed, 1,
                           _csv_source_names(test_path, test.rows), progress)
        dw.commit(ctx.metadata(**_sudoku_meta(9), sources=[_source_file(params.train_csv, train_path),
                                                  _source_file(params.test_csv, test_path)]))


def _sudoku_generated(size: int) -> Callable[[SudokuGenParams, BuildContext], None]:
    def build(params: SudokuGenParams, ctx: BuildContext) -> None:
        progress = ctx.progress
        from trm.data.sudoku_gen import generate_sudoku_split

        progress.stage(f"generating {size}x{size} puzzles", params.train_count + params.test_count)
        tick = _running_total(progress)
        if params.blanks is not None and params.blanks >= size * size:
            raise ValueError(f"blanks={params.blanks} must be below the {size * size} cells of a {size}x{size} grid")
        train, test = generate_sudoku_split(size, params.train_count, params.test_count, params.seed,
                                            params.min_rating, progress=tick, blanks=params.blanks)
        for split, puzzles in (("train", train), ("test", test)):  # cheap guard against generator regressions
            validate_sudoku(Path(f"<generated {size}x{size} {split}>"), puzzles.questions, puzzles.answers, size,
                            np.arange(1, len(puzzles) + 1))
        with DatasetWriter(ctx.out, size * size) as dw:
            progress.stage("writing", len(train) + len(test))
            write_sudoku_split(dw.split("train"), train.questions, train.answers, size, params.num_aug, params.seed,
                               0, [f"gen:{k}" for k in range(len(train))], progress, exclude_answers=test.answers)
            write_sudoku_split(dw.split("test"), test.questions, test.answers, size, 0, params.seed, 1,
                               [f"gen:{k}" for k in range(len(test))], progress)
            dw.commit(ctx.metadata(**_sudoku_meta(size), sources=[]))

    return build


# -------------------------------------------------------------------------------------------------------- maze
def _maze_meta(rows: int, cols: int) -> dict[str, Any]:
    return {"task": "maze", "seq_len": rows * cols, "vocab_size": len(MAZE_VOCAB), "vocab": MAZE_VOCAB,
            "grid_shape": (rows, cols), "pad_id": 0, "ignore_label_id": 0}


def write_maze_split(writer: ExampleWriter, inputs: np.ndarray, labels: np.ndarray, rows: int, cols: int, aug: bool,
                     source_names: list[str], progress: Progress) -> None:
    """One group per maze; with ``aug`` the group holds its 8 dihedral variants (ids 0..7), each a puzzle."""
    n = inputs.shape[0]
    per_group = 8 if aug else 1
    for start in range(0, n, GROUPS_PER_BATCH):
        stop = min(n, start + GROUPS_PER_BATCH)
        x, y = inputs[start:stop], labels[start:stop]
        dihedral_ids = np.zeros(len(x), np.int8)
        if aug:
            x, dihedral_ids = maze_dihedral_variants(x, rows, cols)
            y, _ = maze_dihedral_variants(y, rows, cols)
        count = len(x)
        groups = np.repeat(np.arange(start, stop, dtype=np.int32), per_group)
        writer.write(ExampleBatch(
            inputs=x, labels=y, puzzle_identifier=np.zeros(count, np.int32),
            puzzle_index=np.arange(count, dtype=np.int32) + start * per_group, group_index=groups,
            source_names=source_names, source_codes=groups, aug_dihedral=dihedral_ids,
        ))
        progress.advance(stop - start)


def build_maze_hard(params: MazeHardParams, ctx: BuildContext) -> None:
    progress = ctx.progress
    train_path, test_path = source_path(params.train_csv), source_path(params.test_csv)
    progress.stage("reading and checking mazes", None)
    train = read_maze_csv(train_path, params.rows, params.cols)
    test = read_maze_csv(test_path, params.rows, params.cols)
    if (test.rows, test.cols) != (train.rows, train.cols):
        raise ValueError(f"train mazes are {train.rows}x{train.cols} but test mazes {test.rows}x{test.cols}")
    with DatasetWriter(ctx.out, train.rows * train.cols) as dw:
        progress.stage("writing", len(train) + len(test))
        write_maze_split(dw.split("train"), train.inputs, train.labels, train.rows, train.cols, params.aug,
                         _csv_source_names(train_path, train.row_numbers), progress)
        write_maze_split(dw.split("test"), test.inputs, test.labels, test.rows, test.cols, False,
                         _csv_source_names(test_path, test.row_numbers), progress)
        dw.commit(ctx.metadata(**_maze_meta(train.rows, train.cols), sources=[_source_file(params.train_csv, train_path),
                                                                     _source_file(params.test_csv, test_path)]))


def build_maze_generated(params: MazeGenParams, ctx: BuildContext) -> None:
    progress = ctx.progress
    from trm.data.maze_gen import generate_maze_split

    if params.density_min > params.density_max:
        raise ValueError(f"density_min {params.density_min} > density_max {params.density_max}")
    progress.stage(f"generating {params.rows}x{params.cols} mazes", params.train_count + params.test_count)
    train, test = generate_maze_split(params.rows, params.cols, params.train_count, params.test_count, params.seed,
                                      params.min_path_len, density=(params.density_min, params.density_max),
                                      progress=_running_total(progress))
    for split, mazes in (("train", train), ("test", test)):  # cheap guard against generator regressions
        validate_mazes(Path(f"<generated maze {split}>"), mazes.inputs, mazes.labels, params.rows, params.cols)
    with DatasetWriter(ctx.out, params.rows * params.cols) as dw:
        progress.stage("writing", params.train_count + params.test_count)
        write_maze_split(dw.split("train"), train.inputs, train.labels, params.rows, params.cols, params.aug,
                         [f"gen:{k}" for k in range(len(train.inputs))], progress)
        write_maze_split(dw.split("test"), test.inputs, test.labels, params.rows, params.cols, False,
                         [f"gen:{k}" for k in range(len(test.inputs))], progress)
        dw.commit(ctx.metadata(**_maze_meta(params.rows, params.cols), sources=[]))


# --------------------------------------------------------------------------------------------------------- arc
def _arc_batch(rows: ArcRows, split: arc_source.SplitPairs, ids: np.ndarray, variant_offset: int, group: int,
               task_id: str, variants: list[Any]) -> ExampleBatch:
    n = rows.inputs.shape[0]
    kinds = np.array([0 if k == "train" else 1 for k in split.kinds], np.int8)
    return ExampleBatch(
        inputs=rows.inputs, labels=rows.labels,
        puzzle_identifier=ids[rows.variant],
        puzzle_index=(variant_offset + rows.variant).astype(np.int32),
        group_index=np.full(n, group, np.int32),
        source_names=[task_id], source_codes=np.zeros(n, np.int32),
        pair_index=np.asarray(split.indices, np.int16)[rows.pair],
        pair_kind_codes=kinds[rows.pair],
        aug_dihedral=np.array([v.dihedral for v in variants], np.int8)[rows.variant],
        aug_value_map=np.stack([v.colour_map for v in variants])[rows.variant],
        aug_offset=rows.offsets,
    )


def build_arc(params: ArcParams, ctx: BuildContext) -> None:
    """Groups = ARC tasks in recipe order; puzzles = the task and its distinct augmented variants, each with its
    own global identifier (shared by the train and test split); examples = the variant's pairs in that split."""
    progress = ctx.progress
    kaggle_dir = source_path(params.kaggle_dir)
    folders = {k: source_path(v) for k, v in params.json_folders.items()}
    progress.stage("reading ARC tasks", None)
    tasks = arc_source.load_recipe(params.subsets, params.test_set, params.source, kaggle_dir, folders)
    sources = [SourceFile(path=label, name=path.name, sha256=digest)
               for label, path, digest in arc_source.source_files(params.source, params.subsets, kaggle_dir, folders)]
    test_puzzles: dict[str, Any] = {}
    with DatasetWriter(ctx.out, arc_source.MAX_GRID**2) as dw:
        progress.stage(f"augmenting {len(tasks)} tasks", len(tasks))
        next_puzzle = {"train": 0, "test": 0}
        next_group = {"train": 0, "test": 0}
        for g, task in enumerate(tasks):
            splits = arc_source.split_pairs(task, params.test_set)
            rng = group_rng(params.seed, g)
            variants = arc_variants(splits["train"].pairs + splits["test"].pairs, params.num_aug, rng)
            first_id = len(dw.identifiers)
            dw.identifiers.extend(v.name(task.task_id) for v in variants)
            ids = np.arange(first_id, first_id + len(variants), dtype=np.int32)
            for split_name in ("train", "test"):
                split = splits[split_name]
                if not split.pairs:
                    continue
                rows = arc_canvas_rows(split.pairs, variants, translate=split_name == "train",
                                       rng=rng if split_name == "train" else None)
                dw.split(split_name).write(_arc_batch(rows, split, ids, next_puzzle[split_name],
                                                      next_group[split_name], task.task_id, variants))
                next_puzzle[split_name] += len(variants)
                next_group[split_name] += 1
            if task.subset == params.test_set:
                test_puzzles[task.task_id] = task.raw
            progress.advance()
        dw.split("test")  # exists even when the test set has no test pairs
        dw.write_json("test_puzzles.json", test_puzzles)
        dw.commit(ctx.metadata(task="arc", seq_len=arc_source.MAX_GRID**2, vocab_size=len(arc_source.ARC_VOCAB),
                               vocab=arc_source.ARC_VOCAB, grid_shape=(arc_source.MAX_GRID, arc_source.MAX_GRID),
                               pad_id=0, ignore_label_id=0, sources=sources))


# ---------------------------------------------------------------------------------------------------- registry
@dataclass(frozen=True)
class DatasetSpec:
    name: str
    params_model: type[Params]
    builder: Callable[[Any, BuildContext], None]
    description: str


DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in [
        DatasetSpec("sudoku-extreme-1k", SudokuExtreme1kParams, build_sudoku_extreme_1k,
                    "1000 real Sudoku-Extreme train puzzles x num_aug; generated hard test set disjoint from train"),
        DatasetSpec("sudoku-extreme-full", SudokuExtremeFullParams, build_sudoku_extreme_full,
                    "user-supplied full Sudoku-Extreme train/test CSVs, seeded train subsample"),
        DatasetSpec("maze-hard-1k", MazeHardParams, build_maze_hard, "Maze-Hard 30x30, 1000 train / 1000 test"),
        DatasetSpec("arc-agi-1", Arc1Params, build_arc, "ARC-AGI-1 training+evaluation+ConceptARC, test on evaluation"),
        DatasetSpec("arc-agi-2", Arc2Params, build_arc, "ARC-AGI-2 training2+evaluation2+ConceptARC, test on evaluation2"),
        DatasetSpec("sudoku-4x4", Sudoku4x4Params, _sudoku_generated(4), "generated 4x4 Sudoku (CPU preset)"),
        DatasetSpec("sudoku-6x6", Sudoku6x6Params, _sudoku_generated(6), "generated 6x6 Sudoku (CPU preset)"),
        DatasetSpec("sudoku-9x9-cpu", Sudoku9x9CpuParams, _sudoku_generated(9), "generated 9x9 Sudoku (CPU preset)"),
        DatasetSpec("maze-small", MazeGenParams, build_maze_generated, "generated 10x10 mazes (CPU preset)"),
    ]
}


def dataset_names() -> list[str]:
    return list(DATASETS)


def _set_dotted(tree: dict[str, Any], key: str, value: Any, valid: dict[str, Any], name: str) -> None:
    parts = key.split(".")
    node, schema = tree, valid
    for i, part in enumerate(parts):
        if not isinstance(schema, dict) or part not in schema:
            known = ", ".join(sorted(valid))
            raise ValueError(f"unknown parameter {key!r} for dataset {name!r} (known: {known})")
        if i == len(parts) - 1:
            node[part] = value
        else:
            node = node.setdefault(part, {})
            schema = schema[part]


def resolve_params(name: str, overrides: dict[str, Any] | None = None) -> Params:
    """Defaults of ``name`` with dotted-key overrides applied and validated (strings are coerced by pydantic;
    "none"/"null" mean None)."""
    spec = _spec(name)
    defaults = spec.params_model().model_dump()
    tree = spec.params_model().model_dump()
    for key, value in (overrides or {}).items():
        if isinstance(value, str) and value.strip().lower() in ("none", "null", "~"):
            value = None
        _set_dotted(tree, key, value, defaults, name)
    try:
        return spec.params_model.model_validate(tree)
    except ValidationError as err:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in err.errors())
        raise ValueError(f"invalid parameters for dataset {name!r}: {problems}") from None


def _spec(name: str) -> DatasetSpec:
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    return DATASETS[name]


def build_dataset(name: str, overrides: dict[str, Any] | None = None, out_root: Path | None = None,
                  progress: bool = False) -> Path:
    """Build dataset ``name`` into ``out_root/name`` (default ``trm.paths.data_root()``) and return that folder.
    The folder appears only when the build succeeded (an older build is replaced at that moment)."""
    spec = _spec(name)
    params = resolve_params(name, overrides)
    out = Path(out_root if out_root is not None else data_root()) / name
    ctx = BuildContext(name=name, out=out, progress=Progress(progress), params=params)
    try:
        spec.builder(params, ctx)
    finally:
        ctx.progress.close()
    return out
