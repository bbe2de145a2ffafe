"""The official training sampler (docs/reference.md §2.6): groups -> one random puzzle per group -> all of its
examples, packed into global batches of which each rank keeps its contiguous slice. Fully seeded, so a resume jumps
straight to its batch with any number of ranks. The algorithm step by step: docs/architecture.md ("Design: the
data")."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from trm.data.loader import PuzzleDataset, make_batch


def epoch_steps(epochs: float, num_groups: int, mean_puzzle_examples: float, global_batch_size: int) -> float:
    """docs/reference.md §2.5: epochs x groups x mean examples per puzzle / global batch, the official estimate of
    optimizer steps (a step budget truncates it). One formula for the sampler, the trainer's cadence and the
    rehearsal's projection, which has only a build's metadata."""
    return epochs * num_groups * mean_puzzle_examples / global_batch_size


@dataclass(frozen=True)
class _IterationPlan:
    iteration: int
    slot_puzzles: np.ndarray  # int64 [slots]: puzzle drawn for each visited group, in visiting order
    slot_cum_examples: np.ndarray  # int64 [slots + 1]: examples before each slot
    batch_starts: np.ndarray  # int64 [batches + 1]: first slot of each full batch; last entry = end of last batch

    @property
    def num_batches(self) -> int:
        return len(self.batch_starts) - 1


class GroupSampler:
    """Infinite, seeded, resumable stream of this rank's share of the official global batches."""

    def __init__(
        self,
        ds: PuzzleDataset,
        global_batch_size: int,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        epochs_per_iter: int = 1,
        device: torch.device | str = "cpu",
    ) -> None:
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in [0, world_size={world_size})")
        if global_batch_size <= 0 or global_batch_size % world_size:
            raise ValueError(
                f"global batch size {global_batch_size} must be a positive multiple of world_size {world_size}"
            )
        if seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        if epochs_per_iter < 1:
            raise ValueError(f"epochs_per_iter must be >= 1, got {epochs_per_iter}")
        self.ds = ds
        self.global_batch_size = global_batch_size
        self.local_batch_size = global_batch_size // world_size
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.epochs_per_iter = epochs_per_iter
        self.device = device

        self._puzzle_offsets = ds.puzzle_offsets.numpy()
        self._group_offsets = ds.group_offsets.numpy()
        puzzle_sizes = np.diff(self._puzzle_offsets)
        largest_per_group = (
            np.maximum.reduceat(puzzle_sizes, self._group_offsets[:-1]) if ds.num_groups else np.zeros(0, np.int64)
        )
        if epochs_per_iter * int(largest_per_group.sum()) < global_batch_size:
            raise ValueError(
                f"{ds.path}/{ds.split}: one iteration yields at most {epochs_per_iter * int(largest_per_group.sum())} "
                f"examples ({ds.num_groups} groups x {epochs_per_iter} epochs), fewer than the global batch size "
                f"{global_batch_size}; lower the batch size or raise epochs_per_iter"
            )
        self.iteration = 0
        self.batch_index = 0
        self._plan: _IterationPlan | None = None

    # ----- planning -------------------------------------------------------------------------------------------
    def _plan_iteration(self, iteration: int) -> _IterationPlan:
        rng = np.random.Generator(np.random.Philox(self.seed + iteration + 1))
        num_groups = self.ds.num_groups
        order = np.concatenate([rng.permutation(num_groups) for _ in range(self.epochs_per_iter)])
        slot_puzzles = rng.integers(self._group_offsets[order], self._group_offsets[order + 1])
        sizes = self._puzzle_offsets[slot_puzzles + 1] - self._puzzle_offsets[slot_puzzles]
        cum = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        starts = [0]
        while True:
            begin = starts[-1]
            end = int(np.searchsorted(cum, cum[begin] + self.global_batch_size, side="left"))
            if end >= len(cum):  # not enough examples left for a full batch: dropped, like the official loader
                break
            starts.append(end)
        return _IterationPlan(iteration, slot_puzzles.astype(np.int64), cum, np.asarray(starts, dtype=np.int64))

    def _current_plan(self) -> _IterationPlan:
        if self._plan is None or self._plan.iteration != self.iteration:
            self._plan = self._plan_iteration(self.iteration)
        return self._plan

    def _global_batch_indices(self, plan: _IterationPlan, batch: int) -> np.ndarray:
        """Example rows of global batch `batch` of `plan`, in batch order (exactly global_batch_size of them)."""
        first, stop = int(plan.batch_starts[batch]), int(plan.batch_starts[batch + 1])
        puzzles = plan.slot_puzzles[first:stop]
        sizes = plan.slot_cum_examples[first + 1 : stop + 1] - plan.slot_cum_examples[first:stop]
        takes = sizes.copy()
        takes[-1] -= plan.slot_cum_examples[stop] - plan.slot_cum_examples[first] - self.global_batch_size
        rng = np.random.Generator(np.random.Philox(np.random.SeedSequence([self.seed, plan.iteration, batch])))
        slot_of_example = np.repeat(np.arange(len(puzzles)), sizes)
        position = np.arange(int(sizes.sum())) - np.repeat(np.cumsum(sizes) - sizes, sizes)  # 0.. size-1 per slot
        shuffled = np.lexsort((rng.random(position.size), slot_of_example))  # random order inside each slot
        keep = position < takes[slot_of_example]  # a cut puzzle keeps the first `take` of its shuffled examples
        rows = self._puzzle_offsets[puzzles][slot_of_example] + position[shuffled]
        return rows[keep]

    # ----- iteration --------------------------------------------------------------------------------------------
    def next_indices(self) -> np.ndarray:
        """Advance one step and return this rank's example rows (int64 [global_batch_size / world_size])."""
        plan = self._current_plan()
        while self.batch_index >= plan.num_batches:
            self.iteration += 1
            self.batch_index = 0
            plan = self._current_plan()
        rows = self._global_batch_indices(plan, self.batch_index)
        self.batch_index += 1
        return rows[self.rank * self.local_batch_size : (self.rank + 1) * self.local_batch_size]

    def __iter__(self) -> GroupSampler:
        return self

    def __next__(self) -> dict[str, torch.Tensor]:
        return make_batch(self.ds, self.next_indices(), self.device)

    # ----- step budget ------------------------------------------------------------------------------------------
    def batches_in_iteration(self, iteration: int | None = None) -> int:
        """Exact number of full global batches iteration `iteration` (default: the current one) yields."""
        if iteration is None or iteration == self.iteration:
            return self._current_plan().num_batches
        return self._plan_iteration(iteration).num_batches

    @property
    def estimated_batches_per_epoch(self) -> float:
        """The official trainer's per-epoch step estimate (see ``epoch_steps``)."""
        return epoch_steps(1.0, self.ds.num_groups, self.ds.mean_puzzle_examples, self.global_batch_size)

    @property
    def epoch(self) -> int:
        """Epochs fully started so far (an iteration spans epochs_per_iter epochs)."""
        return self.iteration * self.epochs_per_iter

    # ----- resume -----------------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """JSON-serialisable position: the next batch is batch `batch_index` of iteration `iteration`."""
        return {
            "iteration": self.iteration,
            "batch_index": self.batch_index,
            "seed": self.seed,
            "global_batch_size": self.global_batch_size,
            "epochs_per_iter": self.epochs_per_iter,
            "num_examples": len(self.ds),
            "num_groups": self.ds.num_groups,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue exactly where `state` was taken. The world size may differ: every rank replays the global stream."""
        expected = {
            "seed": self.seed,
            "global_batch_size": self.global_batch_size,
            "epochs_per_iter": self.epochs_per_iter,
            "num_examples": len(self.ds),
            "num_groups": self.ds.num_groups,
        }
        for key, value in expected.items():
            if key in state and int(state[key]) != value:
                raise ValueError(f"sampler state has {key}={state[key]} but this sampler has {key}={value}")
        iteration, batch_index = int(state["iteration"]), int(state["batch_index"])
        if iteration < 0 or batch_index < 0:
            raise ValueError(f"sampler state position must be non-negative, got {iteration=}, {batch_index=}")
        self.iteration, self.batch_index = iteration, batch_index
