"""Model output -> answers for `trm solve`: each puzzle's answer in its own notation (Sudoku digits, maze
characters, ARC colours), the steps and forward passes it took, the halting confidence sigmoid(q_halt) and, when a
solution was given, whether the answer is right; shown on the terminal (``render_answer``) and written as JSON or
CSV (``write_answers``, atomically).

ARC answers are voted over the variants of each test input the way ``trm.evaluate.arc`` votes: every variant's
prediction is cropped and mapped back to the task's frame, the grid with the most votes wins, ties go to the larger
sum of sigmoid(q_halt) over the voters (the same order as their mean, at equal votes), then to the first seen; the
top two non-empty grids are the two attempts ARC allows.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from trm.atomic import atomic_write_text
from trm.data.augment import SUDOKU_BOX_SHAPES, invert_arc_prediction
from trm.data.maze import MAZE_VOCAB
from trm.data.maze_solver import shortest_path_problem
from trm.data.sudoku import rule_violation
from trm.errors import UsageError
from trm.evaluate.arc import grid_hash, sigmoid
from trm.solver.inputs import Puzzles

OUTPUT_FORMATS = {".json": "json", ".csv": "csv"}
UNKNOWN_CELL = "?"  # a maze token that is no maze character (padding)

Grid = list[list[int]] | list[str]


@dataclass
class Answer:
    """One puzzle's answer. ``answer``: Sudoku digits (0 where the model gave no digit) and ARC colours as lists of
    rows, a maze as its rows of characters. ``correct`` is None when no solution was given; a Sudoku or maze answer
    that differs from the given solution but is another valid one (the clues kept and the rules met; another
    shortest S->G path) is right too. ARC only: ``attempts`` (up to 2 grids, attempt 1 is ``answer``),
    ``correct_top2``, and ``votes`` of ``variants`` for attempt 1; its ``steps`` are the most any variant took,
    its ``forward_passes`` the sum over the variants and its ``confidence`` the mean over attempt 1's voters."""

    name: str
    task: str
    answer: Grid
    steps: int
    confidence: float
    forward_passes: int
    correct: bool | None
    attempts: list[list[list[int]]] | None = None
    correct_top2: bool | None = None
    votes: int | None = None
    variants: int | None = None

    def to_json(self) -> dict[str, Any]:
        record: dict[str, Any] = {
            "name": self.name,
            "task": self.task,
            "answer": self.answer,
            "steps": self.steps,
            "confidence": round(self.confidence, 6),
            "forward_passes": self.forward_passes,
            "correct": self.correct,
        }
        if self.task == "arc":
            record.update(
                attempts=self.attempts, correct_top2=self.correct_top2, votes=self.votes, variants=self.variants
            )
        return record


def _numpy(values: Any) -> np.ndarray:
    """An array from a numpy array, a list or a (CPU or GPU) torch tensor."""
    if hasattr(values, "detach"):
        values = values.detach().cpu().numpy()
    return np.asarray(values)


def answers_from(puzzles: Puzzles, predictions: Any, q_halt: Any, steps: Any, forward_passes: Any) -> list[Answer]:
    """The answers to ``puzzles`` from the model's predicted tokens ``[N, L]``, q_halt logits, steps and forward
    passes ``[N]`` (a strategy's ``Solved``): one per row for Sudoku and Maze, one per test input for ARC."""
    pred = _numpy(predictions).astype(np.int64)
    q, st, fp = (_numpy(x).reshape(-1) for x in (q_halt, steps, forward_passes))
    n = len(puzzles)
    if pred.shape != puzzles.inputs.shape or not len(q) == len(st) == len(fp) == n:
        raise ValueError(
            f"{n} puzzles of {puzzles.inputs.shape[1]} tokens, but predictions {tuple(pred.shape)}, "
            f"{len(q)} q_halt, {len(st)} steps, {len(fp)} forward passes"
        )
    confidence = np.array([sigmoid(float(x)) for x in q])
    if puzzles.task == "arc":
        return [_arc_answer(puzzles, g, pred, confidence, st, fp) for g in range(puzzles.num_groups)]
    make = _sudoku_answer if puzzles.task == "sudoku" else _maze_answer
    return [make(puzzles, r, pred[r], float(confidence[r]), int(st[r]), int(fp[r])) for r in range(n)]


def _given(puzzles: Puzzles, row: int) -> np.ndarray | None:
    if puzzles.labels is None or not puzzles.has_label[row]:
        return None
    return puzzles.labels[row].astype(np.int64)


def _sudoku_answer(puzzles: Puzzles, row: int, pred: np.ndarray, conf: float, steps: int, fp: int) -> Answer:
    size = puzzles.grid_shape[0]
    digits = np.where((pred >= 2) & (pred <= size + 1), pred - 1, 0)
    label = _given(puzzles, row)
    correct = None
    if label is not None:
        clues = puzzles.inputs[row].astype(np.int64) - 1
        valid = (
            bool((digits > 0).all())
            and bool(((clues <= 0) | (clues == digits)).all())
            and rule_violation(digits, size) is None
        )
        correct = bool(np.array_equal(pred, label)) or valid
    grid = digits.reshape(size, size).tolist()
    return Answer(puzzles.names[row], "sudoku", grid, steps, conf, fp, correct)


def _maze_answer(puzzles: Puzzles, row: int, pred: np.ndarray, conf: float, steps: int, fp: int) -> Answer:
    rows, cols = puzzles.grid_shape
    chars = np.array([UNKNOWN_CELL, *MAZE_VOCAB[1:]])
    text = chars[np.where((pred >= 1) & (pred < len(MAZE_VOCAB)), pred, 0)].reshape(rows, cols)
    label = _given(puzzles, row)
    correct = None
    if label is not None:
        inputs = puzzles.inputs[row]
        correct = bool(np.array_equal(pred, label)) or (
            bool(((pred >= 1) & (pred < len(MAZE_VOCAB))).all())
            and shortest_path_problem(inputs, pred.astype(np.uint8), rows, cols) is None
        )
    return Answer(puzzles.names[row], "maze", ["".join(r) for r in text], steps, conf, fp, correct)


# ---------------------------------------------------------------------------------------------------- ARC voting
@dataclass
class Vote:
    grid: np.ndarray
    votes: int = 0
    confidence_sum: float = 0.0
    first_seen: int = 0
    rows: list[int] = field(default_factory=list)


def rank_votes(grids: Sequence[np.ndarray], confidences: Sequence[float]) -> list[Vote]:
    """Distinct grids, most votes first; ties: the larger summed confidence, then the first seen."""
    votes: dict[str, Vote] = {}
    for i, (grid, conf) in enumerate(zip(grids, confidences, strict=True)):
        vote = votes.setdefault(grid_hash(grid), Vote(np.ascontiguousarray(grid, np.uint8), first_seen=len(votes)))
        vote.votes += 1
        vote.confidence_sum += float(conf)
        vote.rows.append(i)
    return sorted(votes.values(), key=lambda v: (-v.votes, -v.confidence_sum, v.first_seen))


def _arc_answer(
    puzzles: Puzzles, group: int, pred: np.ndarray, confidence: np.ndarray, steps: np.ndarray, fp: np.ndarray
) -> Answer:
    assert puzzles.arc is not None
    arc = puzzles.arc
    rows = np.flatnonzero(puzzles.group == group)
    grids = [
        invert_arc_prediction(pred[r], {"aug_dihedral": int(arc.dihedral[r]), "aug_value_map": arc.colour_map[r]})
        for r in rows
    ]
    ranked = rank_votes(grids, confidence[rows].tolist())
    kept = [v for v in ranked if v.grid.size][:2]
    attempts = [v.grid.tolist() for v in kept]
    output = arc.outputs[group]
    correct = top2 = None
    if output is not None:
        hits = [bool(np.array_equal(v.grid, output)) for v in kept]
        correct, top2 = bool(hits[:1] == [True]), any(hits)
    top = kept[0] if kept else ranked[0]
    return Answer(
        name=puzzles.names[rows[0]],
        task="arc",
        answer=attempts[0] if attempts else [],
        steps=int(steps[rows].max()),
        confidence=top.confidence_sum / top.votes,
        forward_passes=int(fp[rows].sum()),
        correct=correct,
        attempts=attempts,
        correct_top2=top2,
        votes=top.votes if kept else 0,
        variants=len(rows),
    )


# ---------------------------------------------------------------------------------------------------- terminal
def _verdict(correct: bool | None) -> str:
    return "" if correct is None else ("right" if correct else "wrong")


def sudoku_text(grid: Sequence[Sequence[int]]) -> str:
    """A Sudoku as rows of digits ('.' where none) with its boxes drawn."""
    size = len(grid)
    box_rows, box_cols = SUDOKU_BOX_SHAPES.get(size, (size, size))
    rule = "-+-".join("-" * (2 * box_cols - 1) for _ in range(size // box_cols))
    lines = []
    for r, row in enumerate(grid):
        if r and r % box_rows == 0:
            lines.append(rule)
        cells = [str(d) if d else "." for d in row]
        lines.append(" | ".join(" ".join(cells[c : c + box_cols]) for c in range(0, size, box_cols)))
    return "\n".join(lines)


def colour_text(grid: Sequence[Sequence[int]]) -> str:
    return "\n".join("".join(str(c) for c in row) for row in grid) if grid else "(empty grid)"


def render_answer(answer: Answer) -> str:
    """The answer for the terminal: a header line (name, right / wrong when known, steps, confidence), then the
    grid (ARC: attempt 1, and attempt 2 when there is one)."""
    facts = [f"steps {answer.steps}", f"confidence {answer.confidence:.3f}", f"forward passes {answer.forward_passes}"]
    if answer.task == "arc":
        facts.append(f"votes {answer.votes}/{answer.variants}")
    verdict = _verdict(answer.correct)
    if answer.task == "arc" and answer.correct is False and answer.correct_top2:
        verdict = "wrong (attempt 2 right)"
    header = f"{answer.name}: {verdict + ', ' if verdict else ''}{', '.join(facts)}"
    if answer.task == "sudoku":
        body = sudoku_text(answer.answer)  # type: ignore[arg-type]
    elif answer.task == "maze":
        body = "\n".join(answer.answer)  # type: ignore[arg-type]
    else:
        attempts = answer.attempts or []
        body = colour_text(attempts[0] if attempts else [])
        if len(attempts) > 1:
            body += "\nattempt 2:\n" + colour_text(attempts[1])
    return f"{header}\n{body}"


# ---------------------------------------------------------------------------------------------------- files
def output_format(path: str | Path) -> str:
    """The answer file's format from the name given to ``--out`` ("json" or "csv"); any other suffix is a
    ``UsageError``, so a command can check it before the model runs."""
    suffix = Path(path).suffix.lower()
    if suffix not in OUTPUT_FORMATS:
        shown = repr(suffix) if suffix else "no suffix"
        raise UsageError(f"--out {path}: unknown output format ({shown}); name a .json or .csv file")
    return OUTPUT_FORMATS[suffix]


def compact(answer: Grid, task: str) -> str:
    """An answer on one line: Sudoku digits and maze characters row-major (the HRM CSV layout), ARC rows of
    colours joined by '|'."""
    if task == "arc":
        return "|".join("".join(str(c) for c in row) for row in answer)
    return "".join(str(c) for row in answer for c in row)


def _csv_text(answers: Sequence[Answer]) -> str:
    arc = any(a.task == "arc" for a in answers)
    header = ["name", "answer", "steps", "confidence", "forward_passes", "correct"]
    header += ["attempt_2", "correct_top2"] if arc else []
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    for a in answers:
        flag = "" if a.correct is None else str(a.correct).lower()
        row = [a.name, compact(a.answer, a.task), a.steps, f"{a.confidence:.6f}", a.forward_passes, flag]
        if arc:
            second = a.attempts[1] if a.attempts and len(a.attempts) > 1 else None
            top2 = "" if a.correct_top2 is None else str(a.correct_top2).lower()
            row += ["" if second is None else compact(second, "arc"), top2]
        writer.writerow(row)
    return out.getvalue()


def _json_text(answers: Sequence[Answer]) -> str:
    """A JSON list, one answer per line."""
    if not answers:
        return "[]\n"
    return "[\n" + ",\n".join(json.dumps(a.to_json()) for a in answers) + "\n]\n"


def write_answers(answers: Sequence[Answer], path: str | Path) -> Path:
    """Write the answers as JSON (a list of objects) or CSV, chosen by ``path``'s suffix; the file appears whole or
    not at all."""
    text = _json_text(answers) if output_format(path) == "json" else _csv_text(answers)
    return atomic_write_text(path, text)
