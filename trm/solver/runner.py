"""Answer puzzles with a model: open it (a store reference or an export folder), run an inference strategy over
the puzzles in batches, and turn the predicted tokens back into answers.

One path for every caller: `trm solve`, `trm.solve(...)` and the Ray Data batch job (trm/distributed/batch_solve.py)
all call ``solve_tokens``, so a puzzle gets the same answer whichever of them solves it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from trm.config import InferenceConfig, TRMConfig, parse_strategy
from trm.evaluate.strategies import Solved, check_strategy, copies_per_puzzle, solve_batch
from trm.model import TRM
from trm.solver.answers import Answer, answers_from
from trm.solver.inputs import ModelKind, Puzzles, task_of_model
from trm.solver.puzzles import read_puzzles
from trm.store.loading import load_model
from trm.train.export import load_exported

DEFAULT_BATCH = 256  # model rows per call: a strategy with K copies per puzzle takes 256 // K puzzles at a time


@dataclass
class Solver:
    """A model ready to answer puzzles, with the task and grid it was trained for."""

    model: TRM
    config: TRMConfig
    kind: ModelKind
    source: str  # what was opened: the store reference or the folder
    device: str = "cpu"

    @property
    def task(self) -> str:
        return self.kind.task

    @property
    def grid_shape(self) -> tuple[int, int]:
        return self.kind.grid_shape


def is_export_folder(reference: str | Path) -> bool:
    """A folder on disk (an export or a checkpoint) rather than a store reference ``[store#]name[:v|@alias]``."""
    text = str(reference)
    return "#" not in text and Path(text).expanduser().is_dir()


def open_solver(
    reference: str | Path, *, device: str = "cpu", store: str | None = None, cache_dir: Path | None = None
) -> Solver:
    """Load a model from an export folder or the artifact store (every file's sha256 verified; safetensors and
    JSON only) and work out which puzzles it solves from its vocabulary and sequence length."""
    if is_export_folder(reference):
        model, config = load_exported(Path(str(reference)).expanduser(), device=device)
    else:
        model, config = load_model(str(reference), store=store, cache_dir=cache_dir, device=device)
    kind = task_of_model(config.model.seq_len, config.model.vocab_size, hint=config.data.name)
    return Solver(model=model.eval(), config=config, kind=kind, source=str(reference), device=device)


def dataset_identifiers(config: TRMConfig) -> list[str] | None:
    """The puzzle identifiers of the model's training dataset when it is built here (ARC variants are solved with
    the identifiers they were trained with); None otherwise."""
    path = config.data.resolve_path() / "identifiers.json"
    return json.loads(path.read_text()) if path.is_file() else None


def as_strategy(strategy: InferenceConfig | str | None) -> InferenceConfig:
    if strategy is None:
        return InferenceConfig()
    return strategy if isinstance(strategy, InferenceConfig) else parse_strategy(strategy)


def solve_tokens(
    solver: Solver,
    inputs: np.ndarray,
    puzzle_identifiers: np.ndarray,
    strategy: InferenceConfig,
    batch_size: int = DEFAULT_BATCH,
) -> Solved:
    """Run ``strategy`` over token rows ``inputs`` [N, L] in batches; the result's tensors are on the CPU."""
    check_strategy(strategy, solver.task, solver.grid_shape, solver.config.model.seq_len)
    step = max(1, batch_size // copies_per_puzzle(strategy))
    parts: list[Solved] = []
    for start in range(0, len(inputs), step):
        rows = torch.from_numpy(np.ascontiguousarray(inputs[start : start + step])).to(solver.device, torch.int32)
        ids = torch.from_numpy(np.ascontiguousarray(puzzle_identifiers[start : start + step]))
        solved = solve_batch(
            solver.model, rows, ids.to(solver.device, torch.int32), strategy, solver.task, solver.grid_shape
        )
        parts.append(Solved(*(tensor.cpu() for tensor in _columns(solved))))
    if not parts:
        length = inputs.shape[1] if inputs.ndim == 2 else 0
        empty = torch.zeros(0, dtype=torch.int32)
        return Solved(torch.zeros(0, length, dtype=torch.int64), torch.zeros(0), empty, empty)
    return Solved(*(torch.cat(column) for column in zip(*(_columns(part) for part in parts), strict=True)))


def _columns(solved: Solved) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    return solved.predictions, solved.q_halt, solved.steps, solved.forward_passes


def solve(
    model: Solver | str | Path,
    puzzles: Puzzles | str | Path,
    strategy: InferenceConfig | str | None = None,
    *,
    batch_size: int = DEFAULT_BATCH,
    device: str = "cpu",
    num_variants: int = 8,
    seed: int = 0,
) -> list[Answer]:
    """Answers to ``puzzles`` (a ``Puzzles``, a file or folder, or a puzzle written out) from ``model`` (a
    ``Solver``, a store reference or an export folder) with ``strategy`` (default: fixed, the model's own steps).
    ``num_variants`` and ``seed`` choose the augmented copies an ARC test input is voted over."""
    solver = model if isinstance(model, Solver) else open_solver(model, device=device)
    chosen = as_strategy(strategy)
    if not isinstance(puzzles, Puzzles):
        puzzles = read_for(solver, puzzles, num_variants=num_variants, seed=seed)
    elif (puzzles.task, puzzles.grid_shape) != (solver.task, solver.grid_shape):
        raise ValueError(
            f"the puzzles are {puzzles.task} {puzzles.grid_shape}, the model {solver.source} solves "
            f"{solver.task} {solver.grid_shape}"
        )
    solved = solve_tokens(solver, puzzles.inputs, puzzles.puzzle_identifiers, chosen, batch_size)
    return answers_from(puzzles, solved.predictions, solved.q_halt, solved.steps, solved.forward_passes)


def read_for(
    solver: Solver, source: str | Path, *, num_variants: int = 8, seed: int = 0, task_ids: Sequence[str] | None = None
) -> Puzzles:
    """The puzzles of ``source`` read for this model's task and grid (ARC: with its dataset's identifiers)."""
    identifiers = dataset_identifiers(solver.config) if solver.task == "arc" else None
    return read_puzzles(
        source,
        solver.task,
        solver.grid_shape,
        num_variants=num_variants,
        seed=seed,
        identifiers=identifiers,
        task_ids=task_ids,
    )
