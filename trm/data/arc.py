"""ARC sources: per-task JSON folders and the Kaggle combined files, validated, and the official split rule
(docs/reference.md §3.4): test pairs of the test-set subset go to the test split, every other pair to train."""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from trm.data.errors import DataError

MAX_GRID = 30
ARC_VOCAB = ["<pad>", "<eos>", *[str(c) for c in range(10)]]

# subset -> per-task JSON folder in the offline datasets root, the label recorded for it in metadata (source="json");
# which folders a build reads is its `json_folders` parameter
JSON_FOLDERS = {
    "training": "arc-agi-1/data/training",
    "evaluation": "arc-agi-1/data/evaluation",
    "training2": "arc-agi-2/data/training",
    "evaluation2": "arc-agi-2/data/evaluation",
    "concept": "conceptarc/corpus",
}
KAGGLE_DIR = "trm-kaggle-combined"  # the label recorded for Kaggle-format inputs; read from the `kaggle_dir` parameter

Grid = np.ndarray
Pair = tuple[Grid, Grid]


@dataclass
class ArcTask:
    task_id: str
    subset: str
    train: list[Pair]
    test: list[Pair]
    raw: dict[str, Any]  # {"train": [...], "test": [...]} with test outputs, for test_puzzles.json
    file: Path

    def counts(self) -> tuple[int, int]:
        return len(self.train), len(self.test)


@dataclass
class SplitPairs:
    """One task's pairs assigned to a split: grids plus where they came from (source list and index)."""

    pairs: list[Pair]
    kinds: list[str]
    indices: list[int]


def grid_from_json(value: Any, file: Path, task_id: str, where: str) -> Grid:
    """A list of equal-length rows of colours 0-9, 1..30 x 1..30 -> uint8 array; anything else -> DataError."""
    if not isinstance(value, list) or not value:
        raise DataError(file, task_id, f"{where} must be a non-empty list of rows")
    if not all(isinstance(row, list) for row in value):
        raise DataError(file, task_id, f"{where} must be a list of rows (lists)")
    widths = {len(row) for row in value}
    if len(widths) != 1:
        raise DataError(file, task_id, f"{where} is ragged: row lengths {sorted(widths)}")
    width = widths.pop()
    if width == 0:
        raise DataError(file, task_id, f"{where} has empty rows")
    if len(value) > MAX_GRID or width > MAX_GRID:
        raise DataError(file, task_id, f"{where} is {len(value)}x{width}, larger than {MAX_GRID}x{MAX_GRID}")
    if set(map(type, itertools.chain.from_iterable(value))) != {int}:  # bools, floats, strings, lists, None
        raise DataError(file, task_id, f"{where} has a cell that is not an integer colour")
    arr = np.array(value, dtype=np.int64)
    if arr.min() < 0 or arr.max() > 9:
        bad = int(arr[(arr < 0) | (arr > 9)][0])
        raise DataError(file, task_id, f"{where} has colour {bad}, outside 0-9")
    return arr.astype(np.uint8)


def _load_json(file: Path) -> Any:
    if not file.is_file():
        raise DataError(file, None, "file not found")
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(file, None, f"unreadable JSON: {err}") from err


def parse_task(task: Any, file: Path, task_id: str, subset: str) -> ArcTask:
    """Validate one task ``{"train": [{"input", "output"}...], "test": [{"input", "output"}...]}``."""
    if not isinstance(task, dict):
        raise DataError(file, task_id, "task must be a JSON object")
    for key in ("train", "test"):
        if key not in task:
            raise DataError(file, task_id, f"missing key {key!r}")
        if not isinstance(task[key], list) or not task[key]:
            raise DataError(file, task_id, f"{key!r} must be a non-empty list of pairs")
    lists: dict[str, list[Pair]] = {}
    raw: dict[str, list[dict[str, Any]]] = {}
    for kind in ("train", "test"):
        lists[kind], raw[kind] = [], []
        for i, pair in enumerate(task[kind]):
            if not isinstance(pair, dict):
                raise DataError(file, task_id, f"{kind}[{i}] must be an object with 'input' and 'output'")
            for key in ("input", "output"):
                if key not in pair:
                    what = (
                        "missing solution (no 'output')"
                        if kind == "test" and key == "output"
                        else f"missing key {key!r}"
                    )
                    raise DataError(file, task_id, f"{kind}[{i}]: {what}")
            grids = (
                grid_from_json(pair["input"], file, task_id, f"{kind}[{i}].input"),
                grid_from_json(pair["output"], file, task_id, f"{kind}[{i}].output"),
            )
            lists[kind].append(grids)
            raw[kind].append({"input": pair["input"], "output": pair["output"]})
    return ArcTask(task_id, subset, lists["train"], lists["test"], raw, file)


def load_json_folder(folder: str | Path, subset: str) -> list[ArcTask]:
    """Every ``*.json`` under ``folder`` (recursively, e.g. ConceptARC's per-concept folders), sorted by task id."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(folder, None, "ARC task folder not found")
    files = sorted(folder.rglob("*.json"), key=lambda f: (f.stem, str(f)))
    if not files:
        raise DataError(folder, None, "no *.json task files")
    tasks: list[ArcTask] = []
    seen: dict[str, Path] = {}
    for file in files:
        if file.stem in seen:
            raise DataError(file, file.stem, f"duplicate task id (also {seen[file.stem]})")
        seen[file.stem] = file
        tasks.append(parse_task(_load_json(file), file, file.stem, subset))
    return tasks


def kaggle_files(directory: str | Path, subset: str) -> tuple[Path, Path]:
    directory = Path(directory)
    return (directory / f"arc-agi_{subset}_challenges.json", directory / f"arc-agi_{subset}_solutions.json")


def load_kaggle_subset(directory: str | Path, subset: str) -> list[ArcTask]:
    """Kaggle combined format: challenges ``{id: task without test outputs}`` + solutions ``{id: [grid, ...]}``."""
    challenges_file, solutions_file = kaggle_files(directory, subset)
    challenges = _load_json(challenges_file)
    solutions = _load_json(solutions_file)
    if not isinstance(challenges, dict):
        raise DataError(challenges_file, None, "must be a JSON object {task id: task}")
    if not isinstance(solutions, dict):
        raise DataError(solutions_file, None, "must be a JSON object {task id: [test output grids]}")
    tasks = []
    for task_id in sorted(challenges):
        task = challenges[task_id]
        if not isinstance(task, dict) or not isinstance(task.get("test"), list):
            raise DataError(
                challenges_file,
                task_id,
                "missing key 'test'" if isinstance(task, dict) else "task must be a JSON object",
            )
        if task_id not in solutions:
            raise DataError(solutions_file, task_id, "missing solutions for this task")
        sols = solutions[task_id]
        if not isinstance(sols, list) or len(sols) != len(task["test"]):
            got = len(sols) if isinstance(sols, list) else type(sols).__name__
            raise DataError(solutions_file, task_id, f"has {got} solutions for {len(task['test'])} test inputs")
        merged = dict(task)
        merged["test"] = []
        for i, pair in enumerate(task["test"]):
            if not isinstance(pair, dict):
                raise DataError(challenges_file, task_id, f"test[{i}] must be an object with 'input'")
            merged["test"].append({**pair, "output": sols[i]})
        tasks.append(parse_task(merged, challenges_file, task_id, subset))
    return tasks


def load_subset(
    subset: str, source: Literal["kaggle", "json"], kaggle_dir: Path, json_folders: dict[str, Path]
) -> list[ArcTask]:
    if source == "kaggle":
        return load_kaggle_subset(kaggle_dir, subset)
    if subset not in json_folders:
        raise ValueError(f"no JSON folder known for ARC subset {subset!r}")
    return load_json_folder(json_folders[subset], subset)


def load_recipe(
    subsets: Sequence[str],
    test_set: str,
    source: Literal["kaggle", "json"],
    kaggle_dir: Path,
    json_folders: dict[str, Path],
) -> list[ArcTask]:
    """All tasks of the recipe's subsets, in subset order then task-id order; task ids must be unique."""
    if test_set not in subsets:
        raise ValueError(f"test set {test_set!r} is not one of the subsets {list(subsets)}")
    tasks: list[ArcTask] = []
    seen: dict[str, str] = {}
    for subset in subsets:
        for task in load_subset(subset, source, kaggle_dir, json_folders):
            if task.task_id in seen:
                raise DataError(
                    task.file, task.task_id, f"task id appears in subsets {seen[task.task_id]!r} and {subset!r}"
                )
            seen[task.task_id] = subset
            tasks.append(task)
    return tasks


def split_pairs(task: ArcTask, test_set: str, validation: bool = False) -> dict[str, SplitPairs]:
    """The official split rule: test pairs of the test-set subset go to "test", every other pair to "train". Ours
    adds one case: the test pairs of a validation task go to "val" (its demonstration pairs stay in "train")."""
    train = SplitPairs(list(task.train), ["train"] * len(task.train), list(range(len(task.train))))
    val, test = SplitPairs([], [], []), SplitPairs([], [], [])
    target = test if task.subset == test_set else val if validation else train
    target.pairs.extend(task.test)
    target.kinds.extend(["test"] * len(task.test))
    target.indices.extend(range(len(task.test)))
    return {"train": train, "val": val, "test": test}


def source_files(
    source: Literal["kaggle", "json"], subsets: Sequence[str], kaggle_dir: Path, json_folders: dict[str, Path]
) -> Iterator[tuple[str, Path, str]]:
    """(label, path, sha256) of every input, for the metadata; a JSON folder hashes its sorted file tree."""
    for subset in subsets:
        if source == "kaggle":
            for file in kaggle_files(kaggle_dir, subset):
                yield f"{KAGGLE_DIR}/{file.name}", file, hashlib.sha256(file.read_bytes()).hexdigest()
        else:
            folder = json_folders[subset]
            digest = hashlib.sha256()
            for file in sorted(folder.rglob("*.json")):
                digest.update(str(file.relative_to(folder)).encode() + b"\0")
                digest.update(hashlib.sha256(file.read_bytes()).digest())
            yield JSON_FOLDERS.get(subset, subset), folder, digest.hexdigest()
