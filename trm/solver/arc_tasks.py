"""ARC tasks -> model rows for `trm solve`: a task JSON file, a folder of them, a Kaggle combined challenges file
(``{task id: task}``, with its ``*_solutions.json`` beside it when present) or the JSON text itself. Each test input
becomes a group of V rows, the identity and augmented variants (dihedral transform x permutation of colours 1-9),
rendered like the dataset builder's test split (``arc_canvas_rows``, no translation), so the answers can be voted
over the variants like ``trm.evaluate.arc`` does. Tasks are checked by the dataset reader (``parse_task``); a test
input without an output is fine here (nothing to compare the answer with)."""

from __future__ import annotations

import json
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from trm.data.arc import MAX_GRID, ArcTask, _load_json, parse_task
from trm.data.augment import ArcVariant, arc_canvas_rows, arc_variants, group_rng
from trm.errors import UsageError
from trm.solver.inputs import ArcRecord, PuzzleInputError, Puzzles, as_input_error, existing_path

LITERAL_TASK_ID = "input"  # the task id of JSON text handed in directly
SOLUTIONS_SUFFIX = ("_challenges.json", "_solutions.json")
IDENTITY = ArcVariant(0, np.arange(10, dtype=np.uint8))


@dataclass
class SolveTask:
    """A checked task and which of its test inputs came with an output."""

    task: ArcTask
    has_output: list[bool]  # per test input


def read_arc_tasks(
    source: str | Path,
    num_variants: int = 8,
    seed: int = 0,
    identifiers: Sequence[str] | None = None,
    task_ids: Sequence[str] | None = None,
) -> Puzzles:
    """Rows for every test input of the tasks in ``source`` (``task_ids``: only these, in that order), each test
    input a group of ``num_variants`` rows (fewer when a task has fewer distinct variants): the identity first.

    ``identifiers`` is the training dataset's ``identifiers.json``. A task the model was trained on is solved with
    the variants its dataset holds (the first ``num_variants`` in dataset order), each with its trained puzzle
    identifier; other variants are drawn by ``arc_variants`` from a generator seeded with ``seed`` and the task id
    and get the identifier of their name when the dataset has it, else 0 (blank)."""
    if num_variants < 1:
        raise UsageError(f"num_variants must be at least 1 (the identity), got {num_variants}")
    tasks = load_solve_tasks(source, task_ids)
    index = {name: i for i, name in enumerate(identifiers or ())}
    known = known_variants(identifiers or (), {t.task.task_id for t in tasks})
    parts: list[dict[str, Any]] = []
    outputs: list[np.ndarray | None] = []
    for item in tasks:
        task_id = item.task.task_id
        pairs = [*item.task.train, *item.task.test]
        variants = choose_variants(task_id, pairs, num_variants, seed, known.get(task_id, []))
        ids = np.array([index.get(v.name(task_id), 0) for v in variants], np.int32)
        for test_index, pair in enumerate(item.task.test):
            rows = arc_canvas_rows([pair], variants, translate=False, rng=None)
            given = item.has_output[test_index]
            parts.append(_group_part(task_id, test_index, variants, ids, rows.inputs, rows.labels, given, len(outputs)))
            outputs.append(pair[1] if given else None)
    return _puzzles(parts, outputs)


def _group_part(
    task_id: str,
    test_index: int,
    variants: list[ArcVariant],
    ids: np.ndarray,
    inputs: np.ndarray,
    labels: np.ndarray,
    given: bool,
    group: int,
) -> dict[str, Any]:
    n = len(variants)
    return {
        "names": [f"{task_id}/test {test_index}"] * n,
        "inputs": inputs,
        "labels": labels if given else np.zeros_like(labels),
        "has_label": np.full(n, given),
        "ids": ids,
        "group": np.full(n, group, np.int64),
        "task_ids": [task_id] * n,
        "test_index": np.full(n, test_index, np.int32),
        "dihedral": np.array([v.dihedral for v in variants], np.int8),
        "colour_map": np.stack([np.asarray(v.colour_map, np.uint8) for v in variants]),
        "variant_names": [v.name(task_id) for v in variants],
    }


def _puzzles(parts: list[dict[str, Any]], outputs: list[np.ndarray | None]) -> Puzzles:
    def joined(key: str) -> np.ndarray:
        return np.concatenate([p[key] for p in parts])

    def listed(key: str) -> list[str]:
        return [x for p in parts for x in p[key]]

    has_label = joined("has_label")
    return Puzzles(
        task="arc",
        grid_shape=(MAX_GRID, MAX_GRID),
        names=listed("names"),
        inputs=joined("inputs"),
        labels=joined("labels") if has_label.any() else None,
        has_label=has_label,
        puzzle_identifiers=joined("ids"),
        group=joined("group"),
        arc=ArcRecord(
            task_ids=listed("task_ids"),
            test_index=joined("test_index"),
            dihedral=joined("dihedral"),
            colour_map=joined("colour_map"),
            variant_names=listed("variant_names"),
            outputs=outputs,
        ),
    )


# ---------------------------------------------------------------------------------------------------- variants
def variant_of_name(name: str) -> tuple[str, ArcVariant] | None:
    """(task id, variant) of a dataset identifier (``ArcVariant.name``: ``id`` or ``id|||t<d>|||<colour map>``);
    None for a name of another form."""
    parts = name.split("|||")
    if len(parts) == 1:
        return name, IDENTITY
    if len(parts) != 3 or len(parts[1]) != 2 or parts[1][0] != "t" or parts[1][1] not in "01234567":
        return None
    digits = parts[2]
    if len(digits) != 10 or not digits.isdigit() or sorted(digits) != list("0123456789") or digits[0] != "0":
        return None
    colour_map = np.frombuffer(digits.encode(), np.uint8) - ord("0")
    return parts[0], ArcVariant(int(parts[1][1]), colour_map.astype(np.uint8))


def known_variants(identifiers: Sequence[str], task_ids: set[str]) -> dict[str, list[ArcVariant]]:
    """The variants a dataset's identifiers hold for each of ``task_ids``, in identifier order."""
    known: dict[str, list[ArcVariant]] = {}
    for name in identifiers:
        if name.split("|||", 1)[0] not in task_ids:
            continue
        parsed = variant_of_name(name)
        if parsed is not None:
            known.setdefault(parsed[0], []).append(parsed[1])
    return known


def choose_variants(
    task_id: str,
    pairs: Sequence[tuple[np.ndarray, np.ndarray]],
    count: int,
    seed: int,
    known: Sequence[ArcVariant] = (),
) -> list[ArcVariant]:
    """Up to ``count`` distinct variants: the known ones first (the identity leads when it is among them), then
    ``arc_variants`` draws seeded by ``seed`` and the task id (so a task's variants do not depend on the others)."""
    chosen = list(known[:count])
    names = {v.name(task_id) for v in chosen}
    if len(chosen) < count:
        rng = group_rng(seed, zlib.crc32(task_id.encode()))
        for variant in arc_variants(pairs, count - 1, rng):
            name = variant.name(task_id)
            if len(chosen) < count and name not in names:
                chosen.append(variant)
                names.add(name)
    return chosen


# ---------------------------------------------------------------------------------------------------- tasks
def load_solve_tasks(source: str | Path, task_ids: Sequence[str] | None = None) -> list[SolveTask]:
    """Every task of ``source`` (see the module doc), checked; ``task_ids`` selects and orders them."""
    path = existing_path(source)
    raw: list[tuple[str, Any, Path | None]]
    if path is None:
        raw = [(LITERAL_TASK_ID, _literal_json(str(source)), None)]
    elif path.is_dir():
        raw = list(_folder_tasks(path))
    else:
        raw = [(task_id, task, path) for task_id, task in _file_tasks(path)]
    if task_ids:
        by_id = {task_id: (task_id, task, file) for task_id, task, file in raw}
        missing = [t for t in task_ids if t not in by_id]
        if missing:
            shown = ", ".join(sorted(by_id)[:5]) + (", ..." if len(by_id) > 5 else "")
            raise PuzzleInputError(path, None, f"no task {missing[0]!r} among its {len(by_id)} tasks ({shown})")
        raw = [by_id[t] for t in dict.fromkeys(task_ids)]
    return [_parse(task_id, task, file) for task_id, task, file in raw]


def _literal_json(text: str) -> Any:
    if not text.lstrip().startswith("{"):
        raise PuzzleInputError(
            None, None, "not an ARC task: expected a task JSON file, a folder of them, or the task's JSON text"
        )
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise PuzzleInputError(None, None, f"unreadable JSON: {error}") from None


def _tasks_in(data: Any, file: Path | None, task_id: str) -> list[tuple[str, Any]]:
    """One task (``{"train", "test"}``) or a Kaggle collection ``{task id: task}`` -> [(task id, task)]."""
    if isinstance(data, dict) and ("train" in data or "test" in data):
        return [(task_id, data)]
    if isinstance(data, dict) and data and all(isinstance(v, dict) for v in data.values()):
        return sorted(data.items())
    raise PuzzleInputError(
        file, None, "not an ARC task (an object with 'train' and 'test') nor a collection {task id: task}"
    )


def _file_tasks(path: Path) -> list[tuple[str, Any]]:
    with as_input_error():
        tasks = _tasks_in(_load_json(path), path, path.stem)
    challenges, solutions = SOLUTIONS_SUFFIX
    if path.name.endswith(challenges):
        solutions_file = path.with_name(path.name[: -len(challenges)] + solutions)
        if solutions_file.is_file():
            return _with_solutions(tasks, solutions_file)
    return tasks


def _with_solutions(tasks: list[tuple[str, Any]], solutions_file: Path) -> list[tuple[str, Any]]:
    """Kaggle layout: the test outputs of ``{task id: [grid, ...]}`` put into each task that has them."""
    with as_input_error():
        solutions = _load_json(solutions_file)
    if not isinstance(solutions, dict):
        raise PuzzleInputError(solutions_file, None, "must be a JSON object {task id: [test output grids]}")
    merged = []
    for task_id, task in tasks:
        tests, grids = task.get("test"), solutions.get(task_id)
        if grids is not None and isinstance(tests, list):
            if not isinstance(grids, list) or len(grids) != len(tests):
                got = len(grids) if isinstance(grids, list) else type(grids).__name__
                raise PuzzleInputError(solutions_file, task_id, f"has {got} solutions for {len(tests)} test inputs")
            tests = [{**p, "output": g} if isinstance(p, dict) else p for p, g in zip(tests, grids, strict=True)]
            task = {**task, "test": tests}
        merged.append((task_id, task))
    return merged


def _folder_tasks(folder: Path) -> list[tuple[str, Any, Path]]:
    """Every task file under ``folder`` (recursively; Kaggle ``*_solutions.json`` files are read with theirs)."""
    files = sorted(
        (f for f in folder.rglob("*.json") if not f.name.endswith(SOLUTIONS_SUFFIX[1])), key=lambda f: (f.stem, str(f))
    )
    if not files:
        raise PuzzleInputError(folder, None, "no *.json task files")
    tasks: list[tuple[str, Any, Path]] = []
    seen: dict[str, Path] = {}
    for file in files:
        for task_id, task in _file_tasks(file):
            if task_id in seen:
                raise PuzzleInputError(file, task_id, f"duplicate task id (also {seen[task_id]})")
            seen[task_id] = file
            tasks.append((task_id, task, file))
    return tasks


def _parse(task_id: str, task: Any, file: Path | None) -> SolveTask:
    """Check a task with the dataset reader; a test input without an output gets its input as a stand-in output
    (for the reader and the variant draw only), remembered in ``has_output``."""
    tests = task.get("test") if isinstance(task, dict) else None
    has_output = [not (isinstance(p, dict) and "output" not in p) for p in tests] if isinstance(tests, list) else []
    if isinstance(tests, list):
        stand_in = [p if given else {**p, "output": p.get("input")} for p, given in zip(tests, has_output, strict=True)]
        task = {**task, "test": stand_in}
    with as_input_error():
        parsed = parse_task(task, file if file is not None else Path("<input>"), task_id, "solve")
    return SolveTask(parsed, has_output)
