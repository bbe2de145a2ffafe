"""The ARC evaluator of docs/reference.md §4.2: crop, undo augmentation, vote across variants, pass@K and
submission.json, from the model's argmax tokens and q_halt logits per test-split row (nothing here runs the model).
The procedure and where it differs from the official evaluator: docs/architecture.md, "Design: evaluation".
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from trm.atomic import atomic_write_json
from trm.data.augment import inverse_dihedral  # the data side's own transforms: the inverse cannot drift from them

PASS_KS: tuple[int, ...] = (1, 2, 5, 10, 100, 1000)
CANVAS = 30
COLOUR_OFFSET = 2  # token id of colour 0 (0 PAD, 1 EOS, 2..11 colours 0..9)
NUM_COLOURS = 10


class ArcEvalError(ValueError):
    """A prediction or dataset record that cannot be scored; the message names the file/row/task."""


# ---------------------------------------------------------------------------------------------- grid transforms
def crop_colour_grids(canvases: np.ndarray) -> list[np.ndarray]:
    """Crop each [30, 30] token canvas to its largest top-left rectangle of colour tokens; return colour grids 0..9.

    Vectorised over the batch: the usable width after r rows is the running minimum of each row's leading run of
    colour tokens; the chosen height maximises height x width (first maximum wins, as in the official crop).
    """
    canvases = np.asarray(canvases).reshape(-1, CANVAS, CANVAS)
    is_colour = (canvases >= COLOUR_OFFSET) & (canvases < COLOUR_OFFSET + NUM_COLOURS)
    # leading run of colour tokens per row: index of the first non-colour cell (CANVAS when the whole row is colour)
    not_colour = ~is_colour
    run = np.where(not_colour.any(axis=2), not_colour.argmax(axis=2), CANVAS)
    width = np.minimum.accumulate(run, axis=1)  # [N, 30]: usable width with r+1 rows
    area = width * np.arange(1, CANVAS + 1)[None, :]
    best_rows = area.argmax(axis=1) + 1
    best_cols = width[np.arange(len(canvases)), best_rows - 1]
    grids = []
    for canvas, rows, cols in zip(canvases, best_rows, best_cols, strict=True):
        if cols == 0:
            grids.append(np.zeros((0, 0), dtype=np.uint8))
        else:
            grids.append((canvas[:rows, :cols] - COLOUR_OFFSET).astype(np.uint8))
    return grids


def invert_augmentation(grid: np.ndarray, dihedral_id: int, value_map: Sequence[int]) -> np.ndarray:
    """Map a colour grid from a variant's frame back to the original task's frame.

    The variant was made as `augmented = dihedral(value_map[original])`; colour maps and rotations commute, so undo
    the colour map (its inverse permutation) and apply the inverse dihedral.
    """
    colours = np.asarray(value_map, dtype=np.int64)
    if sorted(colours.tolist()) != list(range(NUM_COLOURS)):
        raise ArcEvalError(f"aug_value_map {colours.tolist()} is not a permutation of 0..9")
    if not 0 <= dihedral_id < 8:
        raise ArcEvalError(f"aug_dihedral {dihedral_id} is not a dihedral transform id (0..7)")
    inverse_map = np.empty(NUM_COLOURS, dtype=np.uint8)
    inverse_map[colours] = np.arange(NUM_COLOURS, dtype=np.uint8)
    return np.ascontiguousarray(inverse_dihedral(inverse_map[grid], dihedral_id))


def grid_hash(grid: np.ndarray) -> str:
    """Content hash of a colour grid (shape included, so 1x4 and 2x2 of the same bytes differ)."""
    grid = np.ascontiguousarray(grid, dtype=np.uint8)
    return hashlib.sha256(np.asarray(grid.shape, dtype=np.int64).tobytes() + grid.tobytes()).hexdigest()


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


# ---------------------------------------------------------------------------------------------- dataset records
@dataclass(frozen=True)
class ArcTestRows:
    """The per-row augmentation record of a built dataset's test split (only what scoring needs)."""

    source_file: str
    task_ids: list[str]
    pair_index: np.ndarray  # int [N]
    pair_kind: list[str]
    dihedral: np.ndarray  # int [N]
    value_map: np.ndarray  # uint8 [N, 10]
    offset: np.ndarray  # uint8 [N, 2]
    inputs: np.ndarray | None  # uint8 [N, 900], for the input consistency check

    def __len__(self) -> int:
        return len(self.task_ids)

    @classmethod
    def read(cls, dataset_dir: Path, split: str = "test", with_inputs: bool = True) -> ArcTestRows:
        path = Path(dataset_dir) / f"{split}.parquet"
        if not path.is_file():
            raise ArcEvalError(f"{path}: missing (is {dataset_dir} a built ARC dataset?)")
        columns = ["source_id", "pair_index", "pair_kind", "aug_dihedral", "aug_value_map", "aug_offset"]
        table = pq.read_table(path, columns=columns + (["inputs"] if with_inputs else []))
        n = table.num_rows

        def fixed_list(name: str, width: int) -> np.ndarray:
            flat = table.column(name).combine_chunks().flatten().to_numpy(zero_copy_only=False)
            return np.asarray(flat, dtype=np.uint8).reshape(n, width)

        return cls(
            source_file=str(path),
            task_ids=table.column("source_id").to_pylist(),
            pair_index=table.column("pair_index").to_numpy().astype(np.int64),
            pair_kind=table.column("pair_kind").to_pylist(),
            dihedral=table.column("aug_dihedral").to_numpy().astype(np.int64),
            value_map=fixed_list("aug_value_map", NUM_COLOURS),
            offset=fixed_list("aug_offset", 2),
            inputs=fixed_list("inputs", CANVAS * CANVAS) if with_inputs else None,
        )

    @staticmethod
    def task_ids_at(dataset_dir: Path, split: str, rows: np.ndarray) -> list[str]:
        """The task of each of ``rows``, reading only that column (a bounded evaluation's tasks, before scoring)."""
        path = Path(dataset_dir) / f"{split}.parquet"
        if not path.is_file():
            raise ArcEvalError(f"{path}: missing (is {dataset_dir} a built ARC dataset?)")
        return pq.read_table(path, columns=["source_id"]).column("source_id").take(rows).to_pylist()

    def take(self, rows: np.ndarray) -> ArcTestRows:
        """The records of ``rows`` (e.g. ``PuzzleDataset.rows`` of a bounded evaluation), in that order."""
        rows = np.asarray(rows, dtype=np.int64)
        return ArcTestRows(
            source_file=self.source_file,
            task_ids=[self.task_ids[r] for r in rows.tolist()],
            pair_index=self.pair_index[rows],
            pair_kind=[self.pair_kind[r] for r in rows.tolist()],
            dihedral=self.dihedral[rows],
            value_map=self.value_map[rows],
            offset=self.offset[rows],
            inputs=None if self.inputs is None else self.inputs[rows],
        )


def load_test_puzzles(path: Path) -> dict[str, dict]:
    """`test_puzzles.json`: {task_id: {"train": [...], "test": [{"input": grid, "output": grid}, ...]}}."""
    path = Path(path)
    try:
        puzzles = json.loads(path.read_text())
    except FileNotFoundError:
        raise ArcEvalError(f"{path}: missing; the ARC evaluator needs the raw held-out tasks") from None
    except json.JSONDecodeError as exc:
        raise ArcEvalError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(puzzles, dict):
        raise ArcEvalError(f"{path}: expected an object mapping task id -> task")
    for task_id, task in puzzles.items():
        tests = task.get("test") if isinstance(task, dict) else None
        if not isinstance(tests, list) or not tests:
            raise ArcEvalError(f"{path}: task {task_id}: no 'test' pairs")
        for i, pair in enumerate(tests):
            if "input" not in pair or "output" not in pair:
                raise ArcEvalError(f"{path}: task {task_id}: test pair {i} lacks 'input' or 'output'")
    return puzzles


# ---------------------------------------------------------------------------------------------- voting
@dataclass
class _Candidate:
    grid: np.ndarray
    hash: str
    votes: int = 0
    q_sum: float = 0.0
    first_seen: int = 0

    @property
    def mean_q(self) -> float:
        return self.q_sum / self.votes


@dataclass
class ArcResult:
    pass_at: dict[int, float]  # K -> mean over tasks of the fraction of test pairs solved within K attempts
    task_scores: dict[int, dict[str, float]]  # K -> task id -> score
    submission: dict[str, list[dict[str, list[list[int]]]]]
    num_tasks: int
    num_votes: int

    def metrics(self) -> dict[str, float]:
        return {f"ARC/pass@{k}": v for k, v in self.pass_at.items()}


@dataclass
class ArcEvaluator:
    """Collects votes per (task, test pair) and scores them against the raw held-out tasks."""

    test_puzzles: dict[str, dict]
    pass_ks: tuple[int, ...] = PASS_KS
    submission_k: int = 2
    pool_across_evaluations: bool = False
    _votes: dict[tuple[str, int], dict[str, _Candidate]] = field(default_factory=dict, init=False, repr=False)
    _num_votes: int = field(default=0, init=False, repr=False)
    _targets: dict[tuple[str, int], str] = field(default_factory=dict, init=False, repr=False)
    _input_hashes: dict[tuple[str, int], str] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        for task_id, task in self.test_puzzles.items():
            for i, pair in enumerate(task["test"]):
                self._targets[(task_id, i)] = grid_hash(_as_grid(pair["output"], task_id, i, "output"))
                self._input_hashes[(task_id, i)] = grid_hash(_as_grid(pair["input"], task_id, i, "input"))

    @classmethod
    def for_dataset(cls, dataset_dir: Path, split: str = "test", **options) -> ArcEvaluator:
        """Scored against ``<split>_puzzles.json``: the raw held-out tasks of that split (test, or val)."""
        return cls(load_test_puzzles(Path(dataset_dir) / f"{split}_puzzles.json"), **options)

    def restricted_to(self, task_ids: Sequence[str]) -> ArcEvaluator:
        """An evaluator over only these held-out tasks (a bounded evaluation scores the tasks it ran)."""
        unknown = sorted(set(task_ids) - set(self.test_puzzles))
        if unknown:
            raise ArcEvalError(f"tasks {unknown[:5]} are not among the held-out tasks")
        kept = {task_id: self.test_puzzles[task_id] for task_id in dict.fromkeys(task_ids)}
        return ArcEvaluator(kept, self.pass_ks, self.submission_k, self.pool_across_evaluations)

    def begin(self) -> None:
        """Start an evaluation round: forget earlier votes unless pooling across evaluations was asked for."""
        if not self.pool_across_evaluations:
            self._votes.clear()
            self._num_votes = 0

    def add_vote(self, task_id: str, test_index: int, grid: np.ndarray, q_halt_logit: float) -> None:
        """One variant's prediction, already cropped and in the original task's frame."""
        key = (task_id, int(test_index))
        if key not in self._targets:
            raise ArcEvalError(f"task {task_id} test pair {test_index}: not among the held-out tasks")
        bucket = self._votes.setdefault(key, {})
        h = grid_hash(grid)
        candidate = bucket.get(h)
        if candidate is None:
            candidate = bucket[h] = _Candidate(np.ascontiguousarray(grid, dtype=np.uint8), h, first_seen=len(bucket))
        candidate.votes += 1
        candidate.q_sum += sigmoid(float(q_halt_logit))
        self._num_votes += 1

    def add_predictions(
        self,
        rows: ArcTestRows,
        predictions: np.ndarray,
        q_halt_logits: np.ndarray,
        row_indices: np.ndarray | None = None,
    ) -> None:
        """Votes for test-split rows: `predictions` [M, 900] argmax tokens and `q_halt_logits` [M] for the rows
        `row_indices` (all rows in order when None)."""
        predictions = np.asarray(predictions)
        q_halt_logits = np.asarray(q_halt_logits, dtype=np.float64)
        if row_indices is None:
            row_indices = np.arange(len(rows))
        row_indices = np.asarray(row_indices, dtype=np.int64)
        if len(predictions) != len(row_indices) or len(q_halt_logits) != len(row_indices):
            raise ArcEvalError(
                f"{len(predictions)} predictions, {len(q_halt_logits)} q_halt logits for {len(row_indices)} rows"
            )
        canvases = self._shifted(predictions, rows.offset[row_indices])
        grids = crop_colour_grids(canvases)
        if rows.inputs is not None:
            input_grids = crop_colour_grids(self._shifted(rows.inputs[row_indices], rows.offset[row_indices]))
        for j, row in enumerate(row_indices.tolist()):
            task_id, test_index = rows.task_ids[row], int(rows.pair_index[row])
            where = f"{rows.source_file} row {row} (task {task_id}, test pair {test_index})"
            if rows.pair_kind[row] != "test":
                raise ArcEvalError(f"{where}: pair_kind is {rows.pair_kind[row]!r}, expected 'test'")
            if (task_id, test_index) not in self._targets:
                raise ArcEvalError(f"{where}: not among the split's held-out tasks (<split>_puzzles.json)")
            dihedral_id, value_map = int(rows.dihedral[row]), rows.value_map[row]
            if rows.inputs is not None:
                original_input = invert_augmentation(input_grids[j], dihedral_id, value_map)
                if grid_hash(original_input) != self._input_hashes[(task_id, test_index)]:
                    raise ArcEvalError(
                        f"{where}: the input does not invert to the task's test input; "
                        "the augmentation record is inconsistent"
                    )
            grid = invert_augmentation(grids[j], dihedral_id, value_map)
            self.add_vote(task_id, test_index, grid, float(q_halt_logits[j]))

    @staticmethod
    def _shifted(canvases: np.ndarray, offsets: np.ndarray) -> np.ndarray:
        """Move each grid to the canvas origin (test rows sit at (0, 0); train-style offsets are honoured)."""
        canvases = np.asarray(canvases).reshape(-1, CANVAS, CANVAS)
        if not offsets.any():
            return canvases
        out = np.zeros_like(canvases)
        for i, (r, c) in enumerate(offsets.tolist()):
            out[i, : CANVAS - r, : CANVAS - c] = canvases[i, r:, c:]
        return out

    def ranked(self, task_id: str, test_index: int) -> list[_Candidate]:
        """Distinct predicted grids, most votes first; ties by mean sigmoid(q_halt), then first appearance."""
        bucket = self._votes.get((task_id, test_index), {})
        return sorted(bucket.values(), key=lambda c: (-c.votes, -c.mean_q, c.first_seen))

    def result(self) -> ArcResult:
        task_scores: dict[int, dict[str, float]] = {k: {} for k in self.pass_ks}
        submission: dict[str, list[dict[str, list[list[int]]]]] = {}
        for task_id, task in self.test_puzzles.items():
            solved = dict.fromkeys(self.pass_ks, 0)
            attempts = []
            for i in range(len(task["test"])):
                ranked = self.ranked(task_id, i)
                hashes = [c.hash for c in ranked]
                target = self._targets[(task_id, i)]
                for k in self.pass_ks:
                    solved[k] += target in hashes[:k]
                # an empty crop (no colour in the top-left cell) stays a vote, as officially, but the submission
                # format needs non-empty grids: the next candidate, or [[0]], takes its place there
                top = [c.grid.tolist() for c in ranked if c.grid.size][: self.submission_k] or [[[0]]]
                while len(top) < self.submission_k:
                    top.append(top[-1])  # one candidate: repeat it, as the submission format wants k attempts
                attempts.append({f"attempt_{a + 1}": g for a, g in enumerate(top)})
            submission[task_id] = attempts
            for k in self.pass_ks:
                task_scores[k][task_id] = solved[k] / len(task["test"])
        n = len(self.test_puzzles)
        pass_at = {k: (sum(task_scores[k].values()) / n if n else 0.0) for k in self.pass_ks}
        return ArcResult(
            pass_at=pass_at, task_scores=task_scores, submission=submission, num_tasks=n, num_votes=self._num_votes
        )


def _as_grid(value, task_id: str, index: int, what: str) -> np.ndarray:
    try:
        grid = np.asarray(value, dtype=np.int64)
    except (ValueError, TypeError):
        raise ArcEvalError(f"task {task_id} test pair {index}: {what} is not a rectangular grid") from None
    if grid.ndim != 2 or grid.size == 0 or grid.min() < 0 or grid.max() >= NUM_COLOURS:
        raise ArcEvalError(f"task {task_id} test pair {index}: {what} is not a non-empty grid of colours 0..9")
    return grid.astype(np.uint8)


def write_submission(result: ArcResult, path: Path) -> Path:
    """Write `submission.json` atomically."""
    return atomic_write_json(path, result.submission, indent=None, sort_keys=False)


def check_submission(path: Path, test_puzzles: dict[str, dict], attempts: int = 2) -> None:
    """Raise ArcEvalError unless ``path`` is a submission in the evaluation format: every held-out task, one entry
    per test pair, each with ``attempt_1`` .. ``attempt_<attempts>`` grids of colours 0..9 (at most 30x30)."""
    try:
        submission = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ArcEvalError(f"{path}: unreadable submission ({error})") from None
    if not isinstance(submission, dict) or set(submission) != set(test_puzzles):
        listed = sorted(submission) if isinstance(submission, dict) else type(submission).__name__
        raise ArcEvalError(f"{path}: tasks {str(listed)[:200]} differ from the {len(test_puzzles)} held-out tasks")
    for task_id, entries in submission.items():
        pairs = len(test_puzzles[task_id]["test"])
        if not isinstance(entries, list) or len(entries) != pairs:
            raise ArcEvalError(f"{path}: task {task_id}: expected a list of {pairs} test-pair entries")
        for index, entry in enumerate(entries):
            keys = [f"attempt_{a + 1}" for a in range(attempts)]
            if not isinstance(entry, dict) or sorted(entry) != sorted(keys):
                raise ArcEvalError(f"{path}: task {task_id} test pair {index}: expected keys {keys}")
            for key in keys:
                grid = _as_grid(entry[key], task_id, index, key)
                if max(grid.shape) > CANVAS:
                    raise ArcEvalError(f"{path}: task {task_id} test pair {index}: {key} is larger than 30x30")


def score_predictions(
    evaluator: ArcEvaluator,
    rows: ArcTestRows,
    predictions: np.ndarray,
    q_halt_logits: np.ndarray,
    predicted: np.ndarray | None = None,
) -> ArcResult:
    """One evaluation round: `begin()` (clears votes unless pooling), vote with every predicted row, score.

    `predictions` [N, 900] / `q_halt_logits` [N] are indexed by test-split row; `predicted` (bool [N]) marks the
    rows that hold a prediction (all when None), e.g. `EvalResult.predicted`.
    """
    predictions = np.asarray(predictions)
    if len(predictions) != len(rows):
        raise ArcEvalError(f"{rows.source_file}: {len(rows)} test rows but {len(predictions)} predictions")
    row_indices = np.arange(len(rows)) if predicted is None else np.flatnonzero(np.asarray(predicted))
    evaluator.begin()
    evaluator.add_predictions(rows, predictions[row_indices], np.asarray(q_halt_logits)[row_indices], row_indices)
    return evaluator.result()
