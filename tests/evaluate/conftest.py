"""Helpers that build ARC test rows the way the dataset builder lays them out (30x30 canvas, EOS row/column).

Exposed to tests through the `arc_kit` fixture (with --import-mode=importlib a test cannot import this module).
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from trm.data.augment import dihedral
from trm.data.writer import DatasetWriter, ExampleBatch
from trm.evaluate.arc import ArcTestRows

CANVAS = 30


def canvas(grid: np.ndarray) -> np.ndarray:
    """Colour grid -> 900 tokens: colours 2..11 at the top-left, EOS (1) just below and just right, PAD (0) else."""
    grid = np.asarray(grid, dtype=np.uint8)
    h, w = grid.shape
    out = np.zeros((CANVAS, CANVAS), dtype=np.uint8)
    out[:h, :w] = grid + 2
    if h < CANVAS:
        out[h, :w] = 1
    if w < CANVAS:
        out[:h, w] = 1
    return out.reshape(-1)


def augment(grid: np.ndarray, tid: int, value_map: np.ndarray) -> np.ndarray:
    """The builder's variant (trm.data.augment conventions): augmented = dihedral(value_map[original])."""
    return np.asarray(value_map, dtype=np.uint8)[dihedral(np.asarray(grid, dtype=np.uint8), tid)]


def random_value_map(rng: np.random.Generator) -> np.ndarray:
    """Colour permutation of 1..9 with black (0) fixed, as the ARC augmentation draws it."""
    return np.concatenate([[0], rng.permutation(np.arange(1, 10))]).astype(np.uint8)


def rows_for(entries: list[tuple[str, int, int, np.ndarray, np.ndarray]]) -> ArcTestRows:
    """ArcTestRows from (task_id, test_index, tid, value_map, augmented input grid) tuples."""
    n = len(entries)
    return ArcTestRows(
        source_file="<constructed>",
        task_ids=[e[0] for e in entries],
        pair_index=np.array([e[1] for e in entries], dtype=np.int64),
        pair_kind=["test"] * n,
        dihedral=np.array([e[2] for e in entries], dtype=np.int64),
        value_map=np.stack([e[3] for e in entries]).astype(np.uint8),
        offset=np.zeros((n, 2), dtype=np.uint8),
        inputs=np.stack([canvas(e[4]) for e in entries]),
    )


def write_arc_dataset(
    out: Path, test_puzzles: dict, variants_per_task: int, seed: int = 0
) -> tuple[Path, list[tuple[str, int, int, np.ndarray]]]:
    """A minimal built ARC dataset folder (train + test split, test_puzzles.json) through the real writer.

    Each task gets `variants_per_task` variants (variant 0 is the identity); the test split holds every variant's
    test pairs with the augmentation record. Labels are the augmented outputs. Returns the folder and, per test
    row, (task_id, test_index, tid, value_map).
    """
    rng = np.random.default_rng(seed)
    records: list[tuple[str, int, int, np.ndarray]] = []
    inputs, labels, pids, kinds = [], [], [], []
    puzzle_index, group_index, pair_index, tids, maps, source_codes = [], [], [], [], [], []
    names = list(test_puzzles)
    identifiers = []
    puzzle = 0
    for g, task_id in enumerate(names):
        for v in range(variants_per_task):
            tid = 0 if v == 0 else int(rng.integers(0, 8))
            vmap = np.arange(10, dtype=np.uint8) if v == 0 else random_value_map(rng)
            identifiers.append(f"{task_id}|||t{tid}|||{''.join(map(str, vmap))}")
            for i, pair in enumerate(test_puzzles[task_id]["test"]):
                inputs.append(canvas(augment(np.array(pair["input"]), tid, vmap)))
                labels.append(canvas(augment(np.array(pair["output"]), tid, vmap)))
                pids.append(len(identifiers))
                puzzle_index.append(puzzle)
                group_index.append(g)
                pair_index.append(i)
                tids.append(tid)
                maps.append(vmap)
                source_codes.append(g)
                kinds.append(1)
                records.append((task_id, i, tid, vmap))
            puzzle += 1
    n = len(inputs)
    test = ExampleBatch(
        inputs=np.stack(inputs),
        labels=np.stack(labels),
        puzzle_identifier=np.array(pids, dtype=np.int32),
        puzzle_index=np.array(puzzle_index, dtype=np.int32),
        group_index=np.array(group_index, dtype=np.int32),
        source_names=names,
        source_codes=np.array(source_codes, dtype=np.int32),
        pair_index=np.array(pair_index, dtype=np.int16),
        pair_kind_codes=np.array(kinds, dtype=np.int8),
        aug_dihedral=np.array(tids, dtype=np.int8),
        aug_value_map=np.stack(maps),
    )
    train = ExampleBatch(
        inputs=test.inputs[:1],
        labels=test.labels[:1],
        puzzle_identifier=test.puzzle_identifier[:1],
        puzzle_index=np.zeros(1, dtype=np.int32),
        group_index=np.zeros(1, dtype=np.int32),
        source_names=names[:1],
        source_codes=np.zeros(1, dtype=np.int32),
    )
    with DatasetWriter(out, seq_len=CANVAS * CANVAS) as writer:
        writer.identifiers.extend(identifiers)
        writer.split("train").write(train)
        writer.split("test").write(test)
        writer.write_json("test_puzzles.json", test_puzzles)
        writer.commit(
            {
                "name": out.name,
                "task": "arc",
                "builder_version": "test",
                "params": {"n": n},
                "seq_len": CANVAS * CANVAS,
                "vocab_size": 12,
                "vocab": ["<pad>", "<eos>", *[str(c) for c in range(10)]],
                "grid_shape": (CANVAS, CANVAS),
                "sources": [],
            }
        )
    return out, records


@pytest.fixture
def arc_kit() -> SimpleNamespace:
    return SimpleNamespace(
        canvas=canvas,
        augment=augment,
        random_value_map=random_value_map,
        rows_for=rows_for,
        write_arc_dataset=write_arc_dataset,
    )


@pytest.fixture(autouse=True)
def one_torch_thread():
    """These models are tiny: one thread avoids oversubscribing the shared 2-core machine (restored afterwards)."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
