"""GroupSampler: the official group -> puzzle -> example packing, rank slicing and exact resume."""

from __future__ import annotations

import json
from itertools import islice

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from trm.data.loader import PuzzleDataset
from trm.data.sampler import GroupSampler, epoch_steps


def _arc_like_shape(seed: int = 7, groups: int = 30) -> list[list[int]]:
    """Groups of 1-4 puzzles ("variants") with 1-5 examples each, like a tiny augmented ARC set."""
    rng = np.random.default_rng(seed)
    return [[int(s) for s in rng.integers(1, 6, size=rng.integers(1, 5))] for _ in range(groups)]


@pytest.fixture
def arc_like(shaped_dataset) -> PuzzleDataset:
    return PuzzleDataset.open(shaped_dataset({"train": _arc_like_shape()}), "train")


def _stream(sampler: GroupSampler, n: int) -> list[np.ndarray]:
    return [sampler.next_indices().copy() for _ in range(n)]


def _puzzle_and_group(ds: PuzzleDataset, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    puzzles = np.searchsorted(ds.puzzle_offsets.numpy(), rows, side="right") - 1
    groups = np.searchsorted(ds.group_offsets.numpy(), puzzles, side="right") - 1
    return puzzles, groups


def test_batches_follow_the_official_packing(arc_like) -> None:
    ds, batch_size = arc_like, 16
    sampler = GroupSampler(ds, batch_size, seed=3)
    offsets = ds.puzzle_offsets.numpy()
    for iteration in range(6):
        assert sampler.iteration == iteration
        n_batches = sampler.batches_in_iteration()
        assert n_batches >= 1
        groups_this_epoch: list[int] = []
        for _ in range(n_batches):
            rows = sampler.next_indices()
            assert rows.shape == (batch_size,) and len(set(rows.tolist())) == batch_size
            puzzles, groups = _puzzle_and_group(ds, rows)
            # rows come in runs, one run per visited group; every run but the last is a whole puzzle
            run_starts = np.flatnonzero(np.diff(puzzles, prepend=-1))
            run_puzzles = puzzles[run_starts]
            run_lengths = np.diff(np.append(run_starts, len(rows)))
            sizes = offsets[run_puzzles + 1] - offsets[run_puzzles]
            assert (run_lengths[:-1] == sizes[:-1]).all()
            assert run_lengths[-1] <= sizes[-1]
            groups_this_epoch.extend(groups[run_starts].tolist())
        # one epoch per iteration: no group visited twice
        assert len(groups_this_epoch) == len(set(groups_this_epoch))
        assert sampler.batch_index == n_batches
        sampler.next_indices()  # moves into the next iteration
        assert sampler.iteration == iteration + 1 and sampler.batch_index == 1
        sampler.load_state_dict({**sampler.state_dict(), "batch_index": 0})


def test_one_puzzle_per_group_drawn_uniformly_and_examples_shuffled(shaped_dataset) -> None:
    # one group of 4 puzzles (1 example each) + one group with one 3-example puzzle; batch 4 = 1 + 3
    ds = PuzzleDataset.open(shaped_dataset({"train": [[1, 1, 1, 1], [3]]}), "train")
    sampler = GroupSampler(ds, 4, seed=0)
    counts = np.zeros(4, int)
    orders = set()
    for _ in range(2000):
        rows = sampler.next_indices()
        assert sampler.batches_in_iteration() == 1
        single = [r for r in rows if r < 4]
        assert len(single) == 1
        counts[single[0]] += 1
        orders.add(tuple(r for r in rows if r >= 4))
    assert counts.min() > 400 and counts.max() < 600  # uniform: 500 expected each, sd ~19
    assert len(orders) == 6  # all 3! orders of the 3-example puzzle occur


def test_cut_puzzle_keeps_a_random_subset(shaped_dataset) -> None:
    # a single group with one 5-example puzzle and batch 3: each batch is a random 3-subset of it
    ds = PuzzleDataset.open(shaped_dataset({"train": [[5], [5]]}), "train")
    sampler = GroupSampler(ds, 3, seed=1)
    subsets = {frozenset(int(r) % 5 for r in sampler.next_indices()) for _ in range(300)}
    assert len(subsets) == 10  # C(5, 3)


def test_same_seed_same_stream_other_seed_differs(arc_like) -> None:
    a = _stream(GroupSampler(arc_like, 16, seed=5), 20)
    b = _stream(GroupSampler(arc_like, 16, seed=5), 20)
    c = _stream(GroupSampler(arc_like, 16, seed=6), 20)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c, strict=True))


@pytest.mark.parametrize("world_size", [2, 4])
def test_ranks_together_equal_one_rank(arc_like, world_size) -> None:
    single = GroupSampler(arc_like, 16, seed=11)
    ranks = [GroupSampler(arc_like, 16, seed=11, rank=r, world_size=world_size) for r in range(world_size)]
    for _ in range(25):  # crosses several epochs
        whole = next(single)
        parts = [next(s) for s in ranks]
        for key in ("inputs", "labels", "puzzle_identifiers"):
            assert torch.equal(whole[key], torch.cat([p[key] for p in parts])), key
        assert parts[0]["inputs"].shape[0] == 16 // world_size


def test_resume_continues_the_identical_stream(arc_like) -> None:
    uninterrupted = GroupSampler(arc_like, 16, seed=2)
    expected = _stream(uninterrupted, 30)
    for k in (0, 1, 7, 13):  # 13 crosses iteration boundaries on this shape
        first = GroupSampler(arc_like, 16, seed=2)
        _stream(first, k)
        state = json.loads(json.dumps(first.state_dict()))  # checkpoints store it as JSON
        resumed = GroupSampler(arc_like, 16, seed=2)
        resumed.load_state_dict(state)
        got = _stream(resumed, 30 - k)
        assert all(np.array_equal(x, y) for x, y in zip(got, expected[k:], strict=True)), k


def test_resume_with_another_world_size(arc_like) -> None:
    one = GroupSampler(arc_like, 16, seed=4)
    _stream(one, 9)
    state = one.state_dict()
    expected = _stream(one, 5)
    halves = [GroupSampler(arc_like, 16, seed=4, rank=r, world_size=2) for r in range(2)]
    for s in halves:
        s.load_state_dict(state)
    got = [np.concatenate([h.next_indices() for h in halves]) for _ in range(5)]
    assert all(np.array_equal(x, y) for x, y in zip(got, expected, strict=True))


def test_resume_rejects_another_configuration(arc_like) -> None:
    state = GroupSampler(arc_like, 16, seed=4).state_dict()
    with pytest.raises(ValueError, match="seed=4"):
        GroupSampler(arc_like, 16, seed=5).load_state_dict(state)
    with pytest.raises(ValueError, match="global_batch_size=16"):
        GroupSampler(arc_like, 8, seed=4).load_state_dict(state)


def test_epochs_per_iter_packs_across_epoch_boundaries(shaped_dataset) -> None:
    # 3 groups of one 1-example puzzle, batch 2: one epoch gives 1 batch (1 dropped), 4 epochs per iteration give 6
    ds = PuzzleDataset.open(shaped_dataset({"train": [[1], [1], [1]]}), "train")
    assert GroupSampler(ds, 2, seed=0).batches_in_iteration() == 1
    sampler = GroupSampler(ds, 2, seed=0, epochs_per_iter=4)
    assert sampler.batches_in_iteration() == 6
    rows = np.concatenate(_stream(sampler, 6))
    assert np.bincount(rows, minlength=3).tolist() == [4, 4, 4]
    assert sampler.epoch == 0 and (_stream(sampler, 1) and sampler.epoch == 4)


def test_step_budget_matches_spec(shaped_dataset) -> None:
    shape = [[1] * 3] * 1000  # Sudoku-like: 1000 groups, 3 one-example variants each
    ds = PuzzleDataset.open(shaped_dataset({"train": shape}), "train")
    sampler = GroupSampler(ds, 768, seed=0)
    steps = epoch_steps(50_000, ds.num_groups, ds.mean_puzzle_examples, 768)
    assert int(steps) == int(50_000 * 1000 * 1 / 768) == 65_104
    assert sampler.estimated_batches_per_epoch == pytest.approx(1000 / 768)
    assert sampler.batches_in_iteration() == 1  # 1000 draws: one full batch, 232 dropped


def test_rejects_impossible_configurations(arc_like) -> None:
    with pytest.raises(ValueError, match="multiple of world_size"):
        GroupSampler(arc_like, 15, seed=0, world_size=2)
    with pytest.raises(ValueError, match="fewer than the global batch size"):
        GroupSampler(arc_like, 10_000, seed=0)
    with pytest.raises(ValueError, match="rank 2"):
        GroupSampler(arc_like, 16, seed=0, rank=2, world_size=2)


def test_batches_are_tensors_of_the_contract(arc_like) -> None:
    batch = next(iter(GroupSampler(arc_like, 16, seed=0, rank=1, world_size=2)))
    assert batch["inputs"].dtype == torch.int32 and batch["inputs"].shape == (8, 4)
    assert batch["labels"].dtype == torch.int64 and batch["puzzle_identifiers"].dtype == torch.int32
    assert list(islice(iter(GroupSampler(arc_like, 16, seed=0)), 3))  # infinite iteration yields


shapes = st.lists(st.lists(st.integers(1, 6), min_size=1, max_size=4), min_size=1, max_size=12)


@settings(max_examples=25, deadline=None)
@given(
    shape=shapes,
    local_batch=st.integers(1, 6),
    world_size=st.sampled_from([1, 2, 3]),
    seed=st.integers(0, 99),
    epochs_per_iter=st.integers(1, 3),
)
def test_packing_and_sharding_properties(shaped_dataset_factory, shape, local_batch, world_size, seed, epochs_per_iter):
    """Any shape: W ranks together == one rank, full batches; with one epoch per iteration also distinct rows,
    whole puzzles except the last of a batch, and each group at most once per iteration (with more epochs per
    iteration a batch may span an epoch boundary and meet a group twice, as in the official loader)."""
    batch = local_batch * world_size
    capacity = epochs_per_iter * sum(max(group) for group in shape)
    ds = PuzzleDataset.open(shaped_dataset_factory({"train": shape}), "train")
    if capacity < batch:
        with pytest.raises(ValueError, match="fewer than the global batch size"):
            GroupSampler(ds, batch, seed, epochs_per_iter=epochs_per_iter)
        return
    single = GroupSampler(ds, batch, seed, epochs_per_iter=epochs_per_iter)
    ranks = [GroupSampler(ds, batch, seed, r, world_size, epochs_per_iter) for r in range(world_size)]
    offsets = ds.puzzle_offsets.numpy()
    largest = {g: max(sizes) for g, sizes in enumerate(shape)}
    rows_per_group: dict[int, np.ndarray] = {}
    for _ in range(8):
        rows = single.next_indices()
        iteration = single.iteration  # the iteration this batch came from
        assert np.array_equal(rows, np.concatenate([r.next_indices() for r in ranks]))
        assert len(rows) == batch
        puzzles, groups = _puzzle_and_group(ds, rows)
        counts = rows_per_group.setdefault(iteration, np.zeros(len(shape), int))
        counts += np.bincount(groups, minlength=len(shape))
        assert all(counts[g] <= epochs_per_iter * largest[g] for g in range(len(shape)))
        if epochs_per_iter == 1:
            assert len(set(rows.tolist())) == batch
            starts = np.flatnonzero(np.diff(puzzles, prepend=-1))
            lengths = np.diff(np.append(starts, len(rows)))
            sizes = offsets[puzzles[starts] + 1] - offsets[puzzles[starts]]
            assert (lengths[:-1] == sizes[:-1]).all() and lengths[-1] <= sizes[-1]
            assert len(set(groups[starts].tolist())) == len(starts)


def test_real_arc_build(tmp_path) -> None:
    """ARC-AGI-1 with one augmentation: variants are puzzles with several examples and their own identifiers;
    a 768 batch holds whole puzzles from distinct tasks (~185 puzzles in the official aug-1000 set)."""
    from trm.data.build import build_dataset

    ds = PuzzleDataset.open(build_dataset("arc-agi-1", {"num_aug": 1}, out_root=tmp_path), "train")
    assert ds.num_groups == 960 and ds.mean_puzzle_examples > 3
    sampler = GroupSampler(ds, 768, seed=0)
    first_puzzles = ds.group_offsets[:-1]  # every variant of a task has the task's pairs: sizes agree per group
    drawn_per_epoch = int((ds.puzzle_offsets[first_puzzles + 1] - ds.puzzle_offsets[first_puzzles]).sum())
    # cut puzzles lose their remainder, so an epoch can yield one batch less than the examples it draws
    assert drawn_per_epoch // 768 - 1 <= sampler.batches_in_iteration() <= drawn_per_epoch // 768
    for _ in range(sampler.batches_in_iteration()):
        rows = sampler.next_indices()
        puzzles, groups = _puzzle_and_group(ds, rows)
        starts = np.flatnonzero(np.diff(puzzles, prepend=-1))
        assert len(set(groups[starts].tolist())) == len(starts)  # one variant per task
        assert 768 / 10 < len(starts) < 768 / 2
        identifiers = ds.puzzle_identifiers[torch.from_numpy(rows)]
        assert len(set(identifiers[torch.from_numpy(starts)].tolist())) == len(starts)  # each variant its own id
        assert (identifiers > 0).all()
