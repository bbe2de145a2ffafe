"""Inference strategies behind one interface, chosen by an ``InferenceConfig`` (trm/config.py): used by `trm solve`,
`trm evaluate --strategy` and the evaluate stage.

``solve_batch(model, inputs, puzzle_identifiers, strategy, task, grid_shape) -> Solved`` answers a batch of puzzles:

* ``fixed``: exactly N supervision steps per puzzle (N = ``steps``, default ``halt_max_steps``; N may exceed it: the
  carry's ``halted`` flag is cleared after every call, so no row is ever reset). At N = halt_max_steps this is the
  official evaluation, bit for bit (``trm.evaluate.inference`` fixed mode).
* ``adaptive``: a puzzle's answer is the one of its first step with q_halt > ``halt_threshold``, else of step N;
  answered puzzles leave the batch, so their compute is saved. With ``stable`` = m > 0 a puzzle also halts at the
  first step whose answer equals the answers of the m steps before it: the answer has stopped changing. (The halting
  head alone fires late or early on some models; a settled answer is a signal it does not need.)
* ``trajectories``: K runs per puzzle (PTRM, arXiv 2605.19943). Run 0 starts from the plain initial state (K = 1 is
  ``fixed``), run k >= 1 from H_init / L_init plus Gaussian noise of std ``noise``. Run k's noise is drawn from a
  ``torch.Generator`` seeded with ``seed``, in run order, and shared by all puzzles: a puzzle's answer depends on
  neither its batch neighbours nor its position, and K = 16 extends K = 8 by 8 more runs. N steps each; the run with
  the highest final q_halt wins.
* ``first_to_halt``: the same K runs stepped together ("Speed is Confidence", arXiv 2601.19085); the answer is the run
  that first halts (q_halt > ``halt_threshold``, or with ``stable`` an answer unchanged for that many steps; several
  at that step: the highest q_halt among them), else the highest final q_halt at step N. A puzzle stops computing
  once answered.
* ``vote`` (Sudoku, Maze): V copies of each puzzle under the dataset's own symmetries (copy 0 is the identity), N
  fixed steps each, predictions mapped back to the puzzle's frame, the most frequent whole answer wins (ties: the
  larger sum of sigmoid(q_halt) over its voters). Sudoku copies are drawn by the builder's ``augment_sudoku`` (digit
  relabelling, band/stack and row/column-in-band permutations, transpose) from ``np.random.default_rng(seed)``; maze
  copy v uses dihedral transform v mod 8 (non-square mazes: only the four that keep the shape). ARC already votes
  over the dataset's augmented variants (``trm.evaluate.arc``), so ``vote`` refuses it.

``forward_passes`` counts the supervision steps spent on a puzzle over all its runs or copies (fixed 16 = 16).
``evaluate_strategy`` measures a strategy over a dataset split (single process).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from trm.config import InferenceConfig
from trm.data.augment import SUDOKU_BOX_SHAPES, SWAPS_SHAPE, apply_sudoku_transform, augment_sudoku, dihedral
from trm.data.loader import PuzzleDataset, test_batches
from trm.evaluate.inference import effective_batch_size
from trm.evaluate.metrics import MetricSums, batch_metric_sums, valid_rows
from trm.model import TRM, InnerCarry, TRMCarry

VOTE_TASKS = ("sudoku", "maze")
CALIBRATE_NEEDS_VAL = (
    "adaptive:calibrate picks its halting rule on a dataset's validation split, and solving puzzles has none: "
    "calibrate with `trm evaluate MODEL --strategy adaptive:calibrate` (eval.json names the chosen strategy) and "
    "pass that, e.g. adaptive:halt_threshold=T,stable=M"
)


@dataclass
class Solved:
    """A strategy's answers for a batch of puzzles."""

    predictions: torch.Tensor  # int64 [B, L] predicted tokens (mapped back to the puzzle's own frame)
    q_halt: torch.Tensor  # float32 [B] halting logit of the chosen answer (vote: mean over its voters)
    steps: torch.Tensor  # int32 [B] supervision steps of the chosen answer's run
    forward_passes: torch.Tensor  # int32 [B] supervision steps spent on the puzzle over all runs / copies


def supervision_steps(model: TRM, strategy: InferenceConfig) -> int:
    """N: the strategy's ``steps``, else the model's ``halt_max_steps``."""
    return strategy.steps if strategy.steps is not None else model.config.halt_max_steps


def copies_per_puzzle(strategy: InferenceConfig) -> int:
    """Rows one puzzle occupies in a model call: K runs, V vote copies, else 1."""
    if strategy.strategy in ("trajectories", "first_to_halt"):
        return strategy.trajectories
    return strategy.votes if strategy.strategy == "vote" else 1


def check_strategy(strategy: InferenceConfig, task: str, grid_shape: tuple[int, int], seq_len: int) -> None:
    """Refuse what a strategy cannot do on a dataset before any compute (ValueError naming the reason)."""
    if strategy.strategy != "vote":
        return
    if task == "arc":
        raise ValueError(
            "strategy vote: ARC votes over the dataset's own augmented variants (trm evaluate scores them, pass@K); "
            "use fixed, adaptive, trajectories or first_to_halt on ARC"
        )
    if task not in VOTE_TASKS:
        raise ValueError(f"strategy vote: unknown task {task!r}; voting knows the symmetries of {list(VOTE_TASKS)}")
    rows, cols = grid_shape
    if rows * cols != seq_len:
        raise ValueError(f"strategy vote: grid {rows}x{cols} does not flatten to seq_len {seq_len}")
    if task == "sudoku" and (rows != cols or rows not in SUDOKU_BOX_SHAPES):
        raise ValueError(f"strategy vote: Sudoku grids must be N x N with N in {sorted(SUDOKU_BOX_SHAPES)}")


def solve_batch(
    model: TRM,
    inputs: torch.Tensor,
    puzzle_identifiers: torch.Tensor,
    strategy: InferenceConfig,
    task: str,
    grid_shape: tuple[int, int],
) -> Solved:
    """Answer puzzles ``inputs`` (int [B, L] tokens on the model's device) with ``strategy`` (see the module doc).
    Runs in eval mode under ``torch.inference_mode`` and restores the model's mode."""
    if strategy.calibrate:  # the caller calibrates first (trm.evaluate.report.measure_strategies); refuse, not ignore
        raise ValueError(CALIBRATE_NEEDS_VAL)
    check_strategy(strategy, task, grid_shape, inputs.shape[-1])
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            if strategy.strategy == "vote":
                return _solve_vote(model, inputs, puzzle_identifiers, strategy, task, grid_shape)
            copies = copies_per_puzzle(strategy)
            noise = trajectory_noise(model, strategy) if copies > 1 else None
            halting = strategy.strategy in ("adaptive", "first_to_halt")
            threshold = strategy.halt_threshold if halting else None
            stable = strategy.stable if halting else 0
            steps = supervision_steps(model, strategy)
            return _race(model, inputs, puzzle_identifiers, steps, copies, noise, threshold, stable)
    finally:
        model.train(was_training)


# ------------------------------------------------------------------------------------------ runs of the model
def trajectory_noise(model: TRM, strategy: InferenceConfig) -> torch.Tensor | None:
    """float32 [K-1, 2, L+P, D] (CPU): the noise added to (z_H, z_L) of runs 1..K-1, drawn in run order from a
    generator seeded with ``strategy.seed`` (so run k's noise does not depend on K). None when there is none."""
    runs = copies_per_puzzle(strategy) - 1
    if runs <= 0 or strategy.noise == 0:
        return None
    generator = torch.Generator(device="cpu").manual_seed(strategy.seed)
    shape = (2, model.inner.total_len, model.config.hidden_size)
    return torch.stack([torch.randn(shape, generator=generator) for _ in range(runs)]) * strategy.noise


def start_carry(
    model: TRM,
    inputs: torch.Tensor,
    puzzle_identifiers: torch.Tensor,
    copies: int = 1,
    noise: torch.Tensor | None = None,
) -> TRMCarry:
    """A carry that runs every row of ``inputs`` from the first step, not halted (no row is ever reset): row i is
    run ``i % copies``; run k >= 1 starts from H_init / L_init + ``noise[k-1]`` (see ``trajectory_noise``)."""
    inner = model.inner
    rows = inputs.shape[0]
    shape = (rows, inner.total_len, model.config.hidden_size)
    states = []
    for which, init in enumerate((inner.H_init, inner.L_init)):
        state = init.expand(shape)
        if noise is not None:
            run = torch.arange(rows, device=state.device) % copies
            state = state.clone()
            state[run > 0] += noise[run[run > 0].cpu() - 1, which].to(state.device)
        states.append(state.to(inner.forward_dtype).contiguous())
    device = inner.H_init.device
    return TRMCarry(
        inner=InnerCarry(states[0], states[1]),
        steps=torch.zeros(rows, dtype=torch.int32, device=device),
        halted=torch.zeros(rows, dtype=torch.bool, device=device),
        current_data={"inputs": inputs.to(torch.int32), "puzzle_identifiers": puzzle_identifiers.to(torch.int32)},
    )


def supervision_step(model: TRM, carry: TRMCarry) -> tuple[TRMCarry, dict[str, torch.Tensor]]:
    """One model call on the carry's own rows; ``halted`` is cleared so the next call continues every row (this is
    how N may exceed halt_max_steps)."""
    carry, out = model(carry, carry.current_data)
    carry.halted = torch.zeros_like(carry.halted)
    return carry, out


def _keep_rows(carry: TRMCarry, keep: torch.Tensor) -> TRMCarry:
    return TRMCarry(
        InnerCarry(carry.inner.z_H[keep], carry.inner.z_L[keep]),
        carry.steps[keep],
        carry.halted[keep],
        {key: value[keep] for key, value in carry.current_data.items()},
    )


def _race(
    model: TRM,
    inputs: torch.Tensor,
    puzzle_identifiers: torch.Tensor,
    steps: int,
    copies: int,
    noise: torch.Tensor | None,
    threshold: float | None,
    stable: int = 0,
) -> Solved:
    """``copies`` runs of each puzzle stepped together for at most ``steps`` steps. With a ``threshold`` a puzzle
    is answered at its first step where a run halts (q_halt > threshold, or with ``stable`` > 0 the run's answer
    unchanged for ``stable`` steps in a row) and then leaves the batch; otherwise (or if none halts) at step
    ``steps``. The answer is the halting run with the highest q_halt (at step ``steps``: the highest of all)."""
    count, device = inputs.shape[0], inputs.device
    carry = start_carry(
        model, inputs.repeat_interleave(copies, 0), puzzle_identifiers.repeat_interleave(copies, 0), copies, noise
    )
    solved = Solved(
        predictions=torch.zeros(inputs.shape, dtype=torch.int64, device=device),
        q_halt=torch.zeros(count, dtype=torch.float32, device=device),
        steps=torch.zeros(count, dtype=torch.int32, device=device),
        forward_passes=torch.zeros(count, dtype=torch.int32, device=device),
    )
    alive = torch.arange(count, device=device)  # puzzles still running, in carry order
    previous: torch.Tensor | None = None  # each run's answer at the step before (with ``stable``)
    unchanged = torch.zeros(count * copies, dtype=torch.int32, device=device)  # steps in a row with that answer
    for step in range(1, steps + 1):
        carry, out = supervision_step(model, carry)
        q_halt = out["q_halt_logits"].float().view(-1, copies)
        answers = out["logits"].argmax(dim=-1)
        halts = torch.zeros_like(q_halt, dtype=torch.bool)
        if threshold is not None:
            halts |= q_halt > threshold
        if stable > 0:
            if previous is not None:
                same = (answers == previous).all(dim=-1)
                unchanged = torch.where(same, unchanged + 1, torch.zeros_like(unchanged))
            previous = answers
            halts |= (unchanged >= stable).view(-1, copies)
        done = halts.any(dim=1) | (step == steps)
        if not done.any():
            continue
        index = done.nonzero().flatten()
        # a halting run beats every run that does not halt; at the last step with none halting, all compete
        competing = torch.where(halts[index].any(dim=1, keepdim=True), halts[index], True)
        best = q_halt[index].masked_fill(~competing, -torch.inf).argmax(dim=1)
        puzzles = alive[index]
        solved.predictions[puzzles] = answers[index * copies + best]
        solved.q_halt[puzzles] = q_halt[index, best]
        solved.steps[puzzles] = step
        solved.forward_passes[puzzles] = step * copies
        alive = alive[~done]
        if not len(alive):
            break
        keep = (~done).repeat_interleave(copies)
        carry = _keep_rows(carry, keep)
        if previous is not None:
            previous, unchanged = previous[keep], unchanged[keep]
    return solved


# ------------------------------------------------------------------------------------------------------ voting
@dataclass
class Relabelling:
    """A symmetry of flattened grids: ``apply(x)[:, i] = tokens[x[:, positions[i]]]``; ``invert`` undoes it."""

    positions: torch.Tensor  # int64 [L]
    tokens: torch.Tensor  # int64 [V], a permutation of the vocabulary

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        return self.tokens.to(x.device)[x.long()[:, self.positions.to(x.device)]]

    def invert(self, y: torch.Tensor) -> torch.Tensor:
        inverse_tokens = torch.argsort(self.tokens).to(y.device)
        return inverse_tokens[y.long()][:, torch.argsort(self.positions).to(y.device)]


def vote_relabellings(
    task: str, grid_shape: tuple[int, int], votes: int, seed: int, vocab_size: int
) -> list[Relabelling]:
    """The ``votes`` symmetries ``vote`` runs (copy 0 the identity): see the module doc."""
    rows, cols = grid_shape
    check_strategy(InferenceConfig(strategy="vote", votes=votes), task, grid_shape, rows * cols)
    if task == "sudoku":
        positions, value_maps = _sudoku_symmetries(rows, votes, seed)
        tokens = np.tile(np.arange(vocab_size, dtype=np.int64), (votes, 1))
        tokens[:, 2 : rows + 2] = value_maps[:, 1 : rows + 1].astype(np.int64) + 1  # token = digit + 1
    else:
        keep_shape = [t for t in range(8) if rows == cols or not SWAPS_SHAPE[t]]
        cells = np.arange(rows * cols).reshape(rows, cols)
        positions = np.stack([dihedral(cells, keep_shape[v % len(keep_shape)]).reshape(-1) for v in range(votes)])
        tokens = np.tile(np.arange(vocab_size, dtype=np.int64), (votes, 1))
    pairs = zip(positions, tokens, strict=True)
    return [Relabelling(torch.from_numpy(p.astype(np.int64)), torch.from_numpy(t.copy())) for p, t in pairs]


def _sudoku_symmetries(size: int, votes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Cell positions int64 [votes, size²] and digit maps uint8 [votes, 10] (raw digits, 0 = blank) of the
    identity and ``votes - 1`` transforms drawn as the builder draws them (``augment_sudoku``)."""
    cells = np.arange(size * size)
    positions = [cells]
    value_maps = [np.arange(10, dtype=np.uint8)]
    if votes > 1:
        blank = np.zeros((1, size * size), np.uint8)
        drawn = augment_sudoku(blank, blank, size, votes - 1, np.random.default_rng(seed))
        record = (
            drawn.dihedral,
            drawn.row_perm,
            drawn.col_perm,
            np.tile(np.arange(10, dtype=np.uint8), (votes - 1, 1)),
        )
        # where each cell goes, read off by moving the cell numbers' decimal digits (the kernel moves values 0..9)
        tens = apply_sudoku_transform(np.tile(cells // 10, (votes - 1, 1)), size, *record)
        ones = apply_sudoku_transform(np.tile(cells % 10, (votes - 1, 1)), size, *record)
        positions.extend(tens.astype(np.int64) * 10 + ones)
        value_maps.extend(drawn.value_map)
    return np.stack(positions), np.stack(value_maps)


def majority(answers: torch.Tensor, q_halt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per puzzle, the copy whose whole answer (``answers`` [B, V, L]) most copies share; ties: the larger sum of
    sigmoid(q_halt) ([B, V]) over those copies, then the lower copy index. Returns (copy [B], voters bool [B, V])."""
    same = (answers[:, :, None, :] == answers[:, None, :, :]).all(dim=-1)  # [B, V, V]
    count = same.sum(dim=-1).double()
    confidence = (same.double() * torch.sigmoid(q_halt.double())[:, None, :]).sum(dim=-1)  # <= count <= V
    choice = (count * (answers.shape[1] + 1) + confidence).argmax(dim=1)
    return choice, same[torch.arange(len(choice), device=choice.device), choice]


def _solve_vote(
    model: TRM,
    inputs: torch.Tensor,
    puzzle_identifiers: torch.Tensor,
    strategy: InferenceConfig,
    task: str,
    grid_shape: tuple[int, int],
) -> Solved:
    symmetries = vote_relabellings(task, grid_shape, strategy.votes, strategy.seed, model.config.vocab_size)
    count, votes, length = inputs.shape[0], len(symmetries), inputs.shape[1]
    copies = torch.stack([s.apply(inputs) for s in symmetries], dim=1).view(count * votes, length)
    steps = supervision_steps(model, strategy)
    runs = _race(model, copies, puzzle_identifiers.repeat_interleave(votes), steps, 1, None, None)
    predicted = runs.predictions.view(count, votes, length)
    answers = torch.stack([s.invert(predicted[:, v]) for v, s in enumerate(symmetries)], dim=1)
    q_halt = runs.q_halt.view(count, votes)
    choice, voters = majority(answers, q_halt)
    return Solved(
        predictions=answers[torch.arange(count, device=inputs.device), choice],
        q_halt=((q_halt * voters).sum(dim=1) / voters.sum(dim=1)).float(),
        steps=torch.full((count,), steps, dtype=torch.int32, device=inputs.device),
        forward_passes=torch.full((count,), steps * votes, dtype=torch.int32, device=inputs.device),
    )


# ---------------------------------------------------------------------------------------- over a dataset split
@dataclass
class StrategyResult:
    """What one strategy measured over a split; per-row tensors (indexed by the split's row) with collection."""

    strategy: InferenceConfig
    metrics: dict[str, float]  # accuracy, exact_accuracy, q_halt_accuracy, steps, forward_passes (means), count
    seconds: float
    puzzles_per_second: float
    predictions: torch.Tensor | None = None  # uint8 [N, L]
    q_halt_logits: torch.Tensor | None = None  # float32 [N]
    steps_used: torch.Tensor | None = None  # int32 [N]
    forward_passes: torch.Tensor | None = None  # int32 [N]
    predicted: torch.Tensor | None = None  # bool [N]

    def summary(self) -> dict[str, Any]:
        """JSON-ready numbers (no tensors)."""
        return {
            "strategy": self.strategy.label(),
            **self.metrics,
            "seconds": self.seconds,
            "puzzles_per_second": self.puzzles_per_second,
        }


class _Rows:
    """Per-row answers by split row (only when collecting)."""

    def __init__(self, num_rows: int, seq_len: int) -> None:
        self.predictions = torch.zeros(num_rows, seq_len, dtype=torch.uint8)
        self.q_halt = torch.zeros(num_rows, dtype=torch.float32)
        self.steps = torch.zeros(num_rows, dtype=torch.int32)
        self.forward_passes = torch.zeros(num_rows, dtype=torch.int32)
        self.predicted = torch.zeros(num_rows, dtype=torch.bool)

    def store(self, rows: torch.Tensor, solved: Solved) -> None:
        rows = rows.cpu()
        self.predictions[rows] = solved.predictions.to(torch.uint8).cpu()
        self.q_halt[rows] = solved.q_halt.float().cpu()
        self.steps[rows] = solved.steps.cpu()
        self.forward_passes[rows] = solved.forward_passes.cpu()
        self.predicted[rows] = True


def evaluate_strategy(
    model: TRM,
    dataset: PuzzleDataset,
    strategy: InferenceConfig,
    batch_size: int,
    device: torch.device | str = "cpu",
    collect_predictions: bool = False,
    on_rows_done: Callable[[int], None] | None = None,
) -> StrategyResult:
    """Measure ``strategy`` on every row of ``dataset`` (the model must be on ``device``). ``batch_size`` counts
    model rows per call, as for ``evaluate``: a strategy running K copies of a puzzle takes batch_size // K puzzles
    at a time. Loader padding is skipped; metrics are over valid rows. ``on_rows_done(n)`` reports progress."""
    meta = dataset.metadata
    check_strategy(strategy, meta.task, meta.grid_shape, dataset.seq_len)
    puzzles = max(1, effective_batch_size(batch_size, len(dataset), 1) // copies_per_puzzle(strategy))
    sums, passes = MetricSums(), 0.0
    rows = _Rows(len(dataset), dataset.seq_len) if collect_predictions else None
    start = time.perf_counter()
    for batch in test_batches(dataset, puzzles, device=device):
        keep = batch["example_index"] >= 0
        batch = {key: value[keep] for key, value in batch.items()}
        if not len(batch["example_index"]):
            continue
        solved = solve_batch(model, batch["inputs"], batch["puzzle_identifiers"], strategy, meta.task, meta.grid_shape)
        valid = valid_rows(batch["labels"], batch["example_index"])
        sums.add(batch_metric_sums(solved.predictions, batch["labels"], solved.q_halt, solved.steps, valid))
        passes += float(solved.forward_passes[valid].double().sum())
        if rows is not None:
            rows.store(batch["example_index"], solved)
        if on_rows_done is not None and int(valid.sum()):
            on_rows_done(int(valid.sum()))
    seconds = time.perf_counter() - start
    metrics = sums.means()
    metrics["forward_passes"] = passes / sums.count if sums.count else 0.0
    return StrategyResult(
        strategy=strategy,
        metrics=metrics,
        seconds=seconds,
        puzzles_per_second=metrics["count"] / seconds if seconds > 0 else 0.0,
        predictions=None if rows is None else rows.predictions,
        q_halt_logits=None if rows is None else rows.q_halt,
        steps_used=None if rows is None else rows.steps,
        forward_passes=None if rows is None else rows.forward_passes,
        predicted=None if rows is None else rows.predicted,
    )
