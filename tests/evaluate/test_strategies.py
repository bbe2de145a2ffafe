"""Inference strategies (trm/evaluate/strategies.py) and the adaptive calibration on a tiny real TRM."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from trm.config import EvalConfig, InferenceConfig, parse_strategy
from trm.data.augment import apply_sudoku_transform, augment_sudoku, dihedral, inverse_dihedral, invert_sudoku
from trm.data.loader import PuzzleDataset, test_batches
from trm.data.writer import DatasetWriter, ExampleBatch
from trm.evaluate.calibration import StepRecord, adaptive_offline, calibrate_adaptive, choose_threshold
from trm.evaluate.inference import evaluate
from trm.evaluate.strategies import (
    evaluate_strategy,
    majority,
    solve_batch,
    start_carry,
    supervision_step,
    trajectory_noise,
    vote_relabellings,
)
from trm.model import TRM, ModelConfig

SEQ_LEN, VOCAB, ROWS, GRID = 16, 6, 11, (4, 4)  # 4x4 Sudoku tokens: 0 PAD, 1 blank, 2..5 digits


def _sudoku_solution(size: int) -> np.ndarray:
    """A valid size x size solution (raw digits 1..size) from the classic shifted pattern."""
    box_r, box_c = {4: (2, 2), 9: (3, 3)}[size]
    r, c = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
    return ((r * box_c + r // box_r + c) % size + 1).astype(np.uint8)


def _is_valid_sudoku(grid: np.ndarray, size: int) -> bool:
    box_r, box_c = {4: (2, 2), 9: (3, 3)}[size]
    digits = set(range(1, size + 1))
    boxes = grid.reshape(size // box_r, box_r, size // box_c, box_c).transpose(0, 2, 1, 3).reshape(size, size)
    return all(set(line.tolist()) == digits for part in (grid, grid.T, boxes) for line in part)


def _write(out, inputs: np.ndarray, labels: np.ndarray, splits=("test",), task="sudoku", grid=GRID) -> PuzzleDataset:
    n = len(inputs)
    rows = ExampleBatch(
        inputs=inputs.astype(np.uint8),
        labels=labels.astype(np.uint8),
        puzzle_identifier=(np.arange(n) % 3 + 1).astype(np.int32),
        puzzle_index=np.arange(n, dtype=np.int32),
        group_index=np.arange(n, dtype=np.int32),
        source_names=["gen"],
        source_codes=np.zeros(n, dtype=np.int32),
    )
    with DatasetWriter(out, seq_len=inputs.shape[1]) as writer:
        writer.identifiers.extend(["a", "b", "c"])
        for split in ("train", *splits):
            writer.split(split).write(rows)
        writer.commit(
            {
                "name": out.name,
                "task": task,
                "builder_version": "test",
                "params": {},
                "seq_len": inputs.shape[1],
                "vocab_size": VOCAB,
                "vocab": [str(i) for i in range(VOCAB)],
                "grid_shape": grid,
                "sources": [],
            }
        )
    return PuzzleDataset.open(out, splits[0])


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> PuzzleDataset:
    """11 rows (batches of 4 leave a padded tail), some label positions ignored, row 0 solved by copying."""
    rng = np.random.default_rng(0)
    inputs = rng.integers(1, VOCAB, size=(ROWS, SEQ_LEN))
    labels = rng.integers(1, VOCAB, size=(ROWS, SEQ_LEN))
    labels[:, -3:] = 0
    labels[0] = inputs[0]
    labels[0, -3:] = 0
    return _write(tmp_path_factory.mktemp("strategies") / "tiny", inputs, labels)


def _model(halt_max_steps: int = 6, seq_len: int = SEQ_LEN, seed: int = 0) -> TRM:
    torch.manual_seed(seed)
    config = ModelConfig(
        seq_len=seq_len,
        vocab_size=VOCAB,
        num_puzzle_identifiers=4,
        hidden_size=32,
        num_heads=2,
        expansion=2.0,
        L_layers=1,
        H_cycles=2,
        L_cycles=1,
        puzzle_emb_ndim=32,
        puzzle_emb_len=2,
        halt_max_steps=halt_max_steps,
    )
    return TRM(config)


def _randomise_q_head(model: TRM, seed: int, bias: float, scale: float = 0.5) -> None:
    q_head = model.inner.q_head
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        q_head.weight.copy_(torch.randn(q_head.weight.shape, generator=g) * scale)
        q_head.bias.fill_(bias)


def _batch(ds: PuzzleDataset) -> dict[str, torch.Tensor]:
    (batch,) = list(test_batches(ds, len(ds)))
    return batch


def _solve(model: TRM, ds: PuzzleDataset, text: str):
    batch = _batch(ds)
    return solve_batch(model, batch["inputs"], batch["puzzle_identifiers"], parse_strategy(text), "sudoku", GRID)


def _manual_runs(model: TRM, batch: dict[str, torch.Tensor], strategy: InferenceConfig, steps: int):
    """Each run k on its own, stepped by hand: predictions [steps, K, B, L] and q_halt [steps, K, B]."""
    noise = trajectory_noise(model, strategy)
    runs = strategy.trajectories if strategy.strategy in ("trajectories", "first_to_halt") else 1
    preds, qs = [], []
    model.eval()
    with torch.inference_mode():
        for k in range(runs):
            carry = model.initial_carry(batch)
            if k:
                carry.inner.z_H = (model.inner.H_init + noise[k - 1, 0]).expand_as(carry.inner.z_H).contiguous()
                carry.inner.z_L = (model.inner.L_init + noise[k - 1, 1]).expand_as(carry.inner.z_L).contiguous()
                carry.halted[:] = False
                carry.current_data = dict(batch)
            per_step_p, per_step_q = [], []
            for _ in range(steps):
                carry, out = model(carry, batch)
                carry.halted[:] = False
                per_step_p.append(out["logits"].argmax(-1))
                per_step_q.append(out["q_halt_logits"])
            preds.append(torch.stack(per_step_p))
            qs.append(torch.stack(per_step_q))
    return torch.stack(preds, dim=1), torch.stack(qs, dim=1)


# ------------------------------------------------------------------------------------------------- config
def test_strategy_specs_parse_label_and_round_trip() -> None:
    for text in ("fixed", "fixed:steps=64", "adaptive:halt_threshold=1.5", "vote:votes=3,seed=2", "first_to_halt"):
        config = parse_strategy(text)
        assert config.label() == text and parse_strategy(config.label()) == config
    config = parse_strategy("trajectories:trajectories=16,noise=0.2,seed=0")
    assert config.label() == "trajectories:trajectories=16,noise=0.2"
    assert InferenceConfig.model_validate(config.model_dump()) == config  # a dumped config (config.json) reloads
    never = parse_strategy("adaptive:halt_threshold=inf")
    assert never.label() == "adaptive:halt_threshold=inf"
    assert InferenceConfig.model_validate_json(never.model_dump_json()) == never
    assert EvalConfig(strategies=["vote:votes=4"]).strategies == [InferenceConfig(strategy="vote", votes=4)]
    assert EvalConfig().strategies == []


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("guess", "'guess'"),
        ("fixed:votes=3", "'votes' does not apply to fixed"),
        ("fixed:colour=3", "'colour' is unknown"),
        ("fixed:steps=many", "steps='many' is not an integer"),
        ("adaptive:halt_threshold=high", "'high' is not a number"),
        ("vote:votes=0", "votes"),
        ("trajectories:noise=-1", "noise"),
        ("fixed:steps", "not key=value"),
        ("fixed:steps=2,steps=3", "given twice"),
    ],
)
def test_bad_strategy_specs_name_the_bad_part(text: str, named: str) -> None:
    with pytest.raises(ValueError, match=named.replace("(", r"\(")):
        parse_strategy(text)


def test_a_field_the_strategy_does_not_read_is_refused() -> None:
    with pytest.raises(ValueError, match="reads only steps, votes, seed; also set: halt_threshold"):
        InferenceConfig(strategy="vote", halt_threshold=1.0)


# ------------------------------------------------------------------------------------------------- fixed
def test_fixed_at_halt_max_steps_is_bit_identical_to_the_official_fixed_mode(tiny) -> None:
    model = _model(halt_max_steps=6)
    _randomise_q_head(model, seed=1, bias=0.0)
    model.train()
    official = evaluate(model, tiny, batch_size=4, mode="fixed", collect_predictions=True)
    result = evaluate_strategy(model, tiny, parse_strategy("fixed"), batch_size=4, collect_predictions=True)
    assert model.training  # mode restored
    assert torch.equal(result.predictions, official.predictions)
    assert torch.equal(result.q_halt_logits, official.q_halt_logits)
    for key in ("accuracy", "exact_accuracy", "q_halt_accuracy", "steps", "count"):
        assert result.metrics[key] == official.metrics[key]
    assert result.metrics["forward_passes"] == 6 and (result.forward_passes == 6).all()
    assert result.summary()["strategy"] == "fixed" and result.summary()["count"] == ROWS


def test_fixed_beyond_halt_max_steps_keeps_stepping_without_reset(tiny) -> None:
    model = _model(halt_max_steps=3)
    _randomise_q_head(model, seed=2, bias=0.0)
    batch = _batch(tiny)
    solved = _solve(model, tiny, "fixed:steps=7")
    preds, qs = _manual_runs(model, batch, InferenceConfig(), steps=7)
    assert (solved.forward_passes == 7).all() and (solved.steps == 7).all()
    assert torch.equal(solved.predictions, preds[-1, 0]) and torch.equal(solved.q_halt, qs[-1, 0])
    # a reset after step 3 would have made step 7 repeat step 1's successor, i.e. step 4 == step 1
    assert not torch.allclose(solved.q_halt, qs[3 - 1, 0])


# ---------------------------------------------------------------------------------------------- adaptive
def test_adaptive_matches_the_official_adaptive_mode_and_counts_steps_to_halting(tiny) -> None:
    model = _model(halt_max_steps=8)
    _randomise_q_head(model, seed=4, bias=0.0)
    official = evaluate(model, tiny, batch_size=4, mode="adaptive", collect_predictions=True)
    assert len(set(official.steps_used.tolist())) > 2, "construct a q head that halts rows at several steps"
    done: list[int] = []
    result = evaluate_strategy(
        model, tiny, parse_strategy("adaptive"), batch_size=4, collect_predictions=True, on_rows_done=done.append
    )
    assert sum(done) == ROWS
    assert result.steps_used.tolist() == official.steps_used.tolist()
    assert torch.equal(result.forward_passes, result.steps_used)
    assert torch.equal(result.predictions, official.predictions)
    assert result.metrics["exact_accuracy"] == official.metrics["exact_accuracy"]
    assert result.metrics["forward_passes"] == pytest.approx(official.metrics["steps"])
    # a threshold nothing reaches is fixed N
    never = evaluate_strategy(model, tiny, parse_strategy("adaptive:halt_threshold=1e9"), 4, collect_predictions=True)
    fixed = evaluate_strategy(model, tiny, parse_strategy("fixed"), 4, collect_predictions=True)
    assert torch.equal(never.predictions, fixed.predictions) and never.metrics["forward_passes"] == 8


def test_adaptive_stops_calling_the_model_once_every_row_halted(tiny) -> None:
    model = _model(halt_max_steps=8)
    with torch.no_grad():
        model.inner.q_head.bias.fill_(5.0)  # q_halt = 5 > 0 at step 1 for every row
    calls: list[int] = []
    model.register_forward_hook(lambda module, args, output: calls.append(1))
    result = evaluate_strategy(model, tiny, parse_strategy("adaptive"), batch_size=4)
    assert len(calls) == 3  # 3 batches, one call each
    assert result.metrics["steps"] == 1 and result.metrics["forward_passes"] == 1


# ------------------------------------------------------------------------------------------ trajectories
def test_one_trajectory_is_fixed(tiny) -> None:
    model = _model()
    _randomise_q_head(model, seed=5, bias=0.0)
    fixed = _solve(model, tiny, "fixed")
    one = _solve(model, tiny, "trajectories:trajectories=1,noise=0.5")
    assert torch.equal(one.predictions, fixed.predictions) and torch.equal(one.q_halt, fixed.q_halt)
    assert torch.equal(one.forward_passes, fixed.forward_passes)


def test_trajectory_noise_is_seeded_and_run_k_does_not_depend_on_k() -> None:
    model = _model()
    a = trajectory_noise(model, parse_strategy("trajectories:trajectories=4,seed=1"))
    assert torch.equal(a, trajectory_noise(model, parse_strategy("trajectories:trajectories=4,seed=1")))
    assert not torch.allclose(a, trajectory_noise(model, parse_strategy("trajectories:trajectories=4,seed=2")))
    more = trajectory_noise(model, parse_strategy("trajectories:trajectories=6,seed=1"))
    assert more.shape[0] == 5 and torch.equal(more[:3], a)
    assert a.std().item() == pytest.approx(0.1, rel=0.05)
    assert trajectory_noise(model, parse_strategy("trajectories:trajectories=4,noise=0.0")) is None


def test_trajectories_pick_the_run_with_the_highest_final_q_halt(tiny) -> None:
    model = _model(halt_max_steps=4)
    _randomise_q_head(model, seed=6, bias=0.0, scale=2.0)
    strategy = parse_strategy("trajectories:trajectories=4,noise=1.0,seed=3")
    batch = _batch(tiny)
    solved = _solve(model, tiny, strategy.label())
    again = _solve(model, tiny, strategy.label())
    assert all(torch.equal(getattr(solved, f), getattr(again, f)) for f in ("predictions", "q_halt", "steps"))
    preds, qs = _manual_runs(model, batch, strategy, steps=4)
    best = qs[-1].argmax(dim=0)  # [B]
    assert len(set(best.tolist())) > 1, "construct noise that makes different runs win"
    rows = torch.arange(ROWS)
    assert torch.equal(solved.predictions, preds[-1, best, rows])
    assert torch.allclose(solved.q_halt, qs[-1, best, rows], atol=1e-5)
    assert (solved.forward_passes == 16).all() and (solved.steps == 4).all()
    other = _solve(model, tiny, "trajectories:trajectories=4,noise=1.0,seed=4")
    assert not torch.equal(other.q_halt, solved.q_halt)
    # a puzzle's answer does not depend on the rest of its batch
    alone = solve_batch(model, batch["inputs"][3:5], batch["puzzle_identifiers"][3:5], strategy, "sudoku", GRID)
    assert torch.equal(alone.predictions, solved.predictions[3:5])


def test_first_to_halt_answers_with_the_first_run_that_halts(tiny) -> None:
    model = _model(halt_max_steps=6)
    _randomise_q_head(model, seed=10, bias=0.0, scale=2.0)
    runs = parse_strategy("first_to_halt:trajectories=3,noise=1.0")
    preds, qs = _manual_runs(model, _batch(tiny), runs, steps=6)  # [S, K, B, L], [S, K, B]
    peaks = qs.amax(dim=(0, 1)).sort().values  # each puzzle's highest q_halt over runs and steps
    threshold = float(peaks[ROWS // 2 - 1 : ROWS // 2 + 1].mean())  # about half never halt; no q_halt is near it
    fires = (qs > threshold).any(dim=1)  # [S, B]
    step = torch.where(fires.any(0), fires.int().argmax(0), torch.full((ROWS,), 5))
    rows = torch.arange(ROWS)
    best = qs[step, :, rows].argmax(dim=1)  # the highest q_halt of that step: a halting run if any
    assert len(set(step.tolist())) > 2 and not fires.any(0).all(), "construct halting at several steps and never"
    assert len(set(best.tolist())) > 1, "construct a case where a noisy run halts first"
    solved = _solve(model, tiny, f"{runs.label()},halt_threshold={threshold!r}")
    assert solved.steps.tolist() == (step + 1).tolist()
    assert solved.forward_passes.tolist() == (3 * (step + 1)).tolist()
    assert torch.equal(solved.predictions, preds[step, best, rows])
    assert torch.allclose(solved.q_halt, qs[step, best, rows], atol=1e-5)


def _stable_fires(preds: torch.Tensor, stable: int) -> torch.Tensor:
    """[S, K, B] from predictions [S, K, B, L]: the run's answer at step s equals those of the ``stable`` steps
    before it (computed by hand, step by step)."""
    steps = preds.shape[0]
    run = torch.zeros(preds.shape[1:3], dtype=torch.int32)
    fires = []
    for s in range(steps):
        if s:
            same = (preds[s] == preds[s - 1]).all(-1)
            run = torch.where(same, run + 1, torch.zeros_like(run))
        fires.append(run >= stable)
    return torch.stack(fires)


@pytest.mark.parametrize(
    "spec",
    ["adaptive:halt_threshold=1e9,stable={m}", "first_to_halt:trajectories=3,noise=1.0,halt_threshold=1e9,stable={m}"],
)
def test_a_stable_answer_halts_a_run(tiny, spec: str) -> None:
    """With q_halt out of reach, a run halts once its answer repeats for ``stable`` steps; the puzzle's answer is the
    halting run with the highest q_halt."""
    model = _model(halt_max_steps=8)
    _randomise_q_head(model, seed=11, bias=0.0, scale=2.0)
    with torch.no_grad():  # damped recursion: the untrained model's answers settle, row by row, at steps 2-5
        for name, weight in model.inner.named_parameters():
            if name.startswith("L_level") and weight.dim() == 2:
                weight.mul_(0.5)
    strategy = parse_strategy(spec.format(m=1))
    preds, qs = _manual_runs(model, _batch(tiny), strategy, steps=8)
    rows = torch.arange(ROWS)
    steps_seen = set()
    for m in (1, 2):
        strategy = parse_strategy(spec.format(m=m))
        fires = _stable_fires(preds, m)  # [S, K, B]
        any_fire = fires.any(dim=1)  # [S, B]
        step = torch.where(any_fire.any(0), any_fire.int().argmax(0), torch.full((ROWS,), 7))
        halting = fires[step, :, rows]  # [B, K]
        competing = torch.where(halting.any(1, keepdim=True), halting, True)
        best = qs[step, :, rows].masked_fill(~competing, -torch.inf).argmax(dim=1)
        solved = _solve(model, tiny, strategy.label())
        assert solved.steps.tolist() == (step + 1).tolist()
        assert torch.equal(solved.predictions, preds[step, best, rows])
        assert (
            solved.forward_passes.tolist()
            == (strategy.trajectories * (step + 1) if "trajectories" in spec else step + 1).tolist()
        )
        steps_seen |= set(step.tolist())
    assert len(steps_seen) > 2, "construct answers that settle at several steps"


# -------------------------------------------------------------------------------------------------- vote
@pytest.mark.parametrize("size", [4, 9])
def test_sudoku_vote_transforms_map_a_transformed_label_back_exactly(size: int) -> None:
    label = _sudoku_solution(size).reshape(1, -1)
    puzzle = label.copy()
    puzzle[0, ::3] = 0  # blanks
    symmetries = vote_relabellings("sudoku", (size, size), votes=6, seed=11, vocab_size=size + 2)
    # the builder's own draw with the same generator: the transforms are exactly its augmentations
    blank = np.zeros((1, size * size), np.uint8)
    drawn = augment_sudoku(blank, blank, size, 5, np.random.default_rng(11))
    tokens = torch.from_numpy(label.astype(np.int64) + 1)
    assert torch.equal(symmetries[0].apply(tokens), tokens)  # copy 0 is the identity
    for v, symmetry in enumerate(symmetries[1:]):
        record = (drawn.dihedral[v : v + 1], drawn.row_perm[v : v + 1], drawn.col_perm[v : v + 1])
        expected = apply_sudoku_transform(label, size, *record, drawn.value_map[v : v + 1])
        transformed = symmetry.apply(tokens)
        assert torch.equal(transformed, torch.from_numpy(expected.astype(np.int64) + 1))
        assert _is_valid_sudoku(expected.reshape(size, size), size) and not np.array_equal(expected, label)
        assert torch.equal(symmetry.invert(transformed), tokens)  # a prediction equal to the transformed label
        back = invert_sudoku(
            expected[0], size, int(drawn.dihedral[v]), drawn.row_perm[v], drawn.col_perm[v], drawn.value_map[v]
        )
        assert np.array_equal(back, label[0])
        moved_puzzle = symmetry.apply(torch.from_numpy(puzzle.astype(np.int64) + 1))
        assert torch.equal(symmetry.invert(moved_puzzle), torch.from_numpy(puzzle.astype(np.int64) + 1))


@pytest.mark.parametrize("grid", [(5, 5), (3, 5)])
def test_maze_vote_transforms_are_dihedral_and_map_back(grid: tuple[int, int]) -> None:
    rows, cols = grid
    maze = np.random.default_rng(0).integers(1, 6, size=(2, rows, cols))
    flat = torch.from_numpy(maze.reshape(2, -1))
    symmetries = vote_relabellings("maze", grid, votes=9, seed=0, vocab_size=VOCAB)
    allowed = list(range(8)) if rows == cols else [0, 2, 4, 5]
    for v, symmetry in enumerate(symmetries):
        tid = allowed[v % len(allowed)]
        transformed = symmetry.apply(flat)
        assert np.array_equal(transformed.numpy(), dihedral(maze, tid).reshape(2, -1))
        assert np.array_equal(inverse_dihedral(dihedral(maze, tid), tid), maze)
        assert torch.equal(symmetry.invert(transformed), flat)


def test_majority_counts_whole_answers_and_breaks_ties_by_confidence() -> None:
    a, b, c = torch.tensor([1, 2, 3]), torch.tensor([1, 2, 4]), torch.tensor([5, 2, 3])
    answers = torch.stack([torch.stack([a, b, b, c]), torch.stack([a, b, a, b])])  # [2, 4, 3]
    q = torch.tensor([[9.0, -1.0, -1.0, 9.0], [-2.0, 3.0, -2.0, 3.0]])
    choice, voters = majority(answers, q)
    assert choice.tolist() == [1, 1]  # b twice beats a and c once despite their q; then b's confidence wins the tie
    assert voters.tolist() == [[False, True, True, False], [False, True, False, True]]


def test_vote_takes_the_majority_of_the_mapped_back_answers(tiny) -> None:
    model = _model(halt_max_steps=3)
    _randomise_q_head(model, seed=8, bias=0.0)
    batch = _batch(tiny)
    one = _solve(model, tiny, "vote:votes=1")
    fixed = _solve(model, tiny, "fixed")
    assert torch.equal(one.predictions, fixed.predictions) and torch.equal(one.q_halt, fixed.q_halt)
    solved = _solve(model, tiny, "vote:votes=5,seed=2")
    assert torch.equal(solved.predictions, _solve(model, tiny, "vote:votes=5,seed=2").predictions)
    assert (solved.forward_passes == 15).all() and (solved.steps == 3).all()
    answers = []
    for symmetry in vote_relabellings("sudoku", GRID, 5, 2, VOCAB):
        copy = symmetry.apply(batch["inputs"])
        moved = solve_batch(model, copy, batch["puzzle_identifiers"], InferenceConfig(), "sudoku", GRID)
        answers.append(symmetry.invert(moved.predictions))
    answers_t = torch.stack(answers, dim=1)  # [B, 5, L]
    counts = (answers_t == solved.predictions[:, None]).all(-1).sum(1)
    top = (answers_t[:, :, None] == answers_t[:, None]).all(-1).sum(-1).max(1).values
    assert (counts >= 1).all() and torch.equal(counts, top)  # the chosen answer is one of the most frequent


def test_vote_refuses_arc_and_odd_grids() -> None:
    model = _model(seq_len=900)
    inputs, ids = torch.zeros(1, 900, dtype=torch.int32), torch.zeros(1, dtype=torch.int32)
    with pytest.raises(ValueError, match="ARC votes over the dataset's own augmented variants"):
        solve_batch(model, inputs, ids, parse_strategy("vote"), "arc", (30, 30))
    with pytest.raises(ValueError, match="Sudoku grids must be N x N"):
        vote_relabellings("sudoku", (3, 3), 2, 0, VOCAB)
    with pytest.raises(ValueError, match="does not flatten"):
        solve_batch(model, inputs, ids, parse_strategy("vote"), "maze", (10, 10))


# ------------------------------------------------------------------------------------------- calibration
def test_the_cheapest_threshold_within_the_allowed_drop_is_chosen() -> None:
    q = torch.tensor([[-1.0, 2, 3, 4], [1, 1, 1, 1], [-3, -2, -1, 0.5], [0, 0, 0, 0]])
    exact = torch.tensor([[0, 1, 1, 1], [0, 0, 1, 1], [0, 0, 0, 1], [1, 1, 1, 1]], dtype=torch.bool)
    record = StepRecord(q, exact)
    assert adaptive_offline(record, 1.0) == (1.0, 3.5)
    assert adaptive_offline(record, 0.0) == (0.75, 2.75)
    assert adaptive_offline(record, -0.5) == (0.75, 2.0)
    candidates = [-5.0, -0.5, 0.0, 0.5, 1.0, 3.0]
    strict = choose_threshold(record, 0.005, candidates, steps=4)
    assert strict.fixed_exact_accuracy == 1.0 and strict.strategy.halt_threshold == 1.0
    assert strict.strategy.label() == "adaptive:steps=4,halt_threshold=1.0"
    assert choose_threshold(record, 0.25, candidates).strategy.halt_threshold == -0.5
    assert [row["threshold"] for row in strict.table] == [*candidates, math.inf]
    assert strict.summary()["table"][-1]["threshold"] == "inf"


def test_calibration_numbers_equal_a_real_adaptive_run(tmp_path) -> None:
    """Labels are the model's own answers: even rows at their first q_halt > 0, odd rows at the last step, so
    halting early helps some rows and hurts others."""
    model = _model(halt_max_steps=6)
    _randomise_q_head(model, seed=9, bias=0.0)
    n = 16
    inputs = np.random.default_rng(1).integers(1, VOCAB, size=(n, SEQ_LEN))
    ids = torch.from_numpy((np.arange(n) % 3 + 1).astype(np.int32))
    preds, qs = _manual_runs(
        model, {"inputs": torch.from_numpy(inputs).int(), "puzzle_identifiers": ids}, InferenceConfig(), 6
    )
    fires = qs[:, 0] > 0  # [S, n]
    early = torch.where(fires.any(0), fires.int().argmax(0), torch.full((n,), 5))
    step = torch.where(torch.arange(n) % 2 == 0, early, torch.full((n,), 5))
    labels = preds[step, 0, torch.arange(n)].numpy()  # a predicted 0 (PAD) is not scored
    val = _write(tmp_path / "cal", inputs, labels, splits=("val",))
    calibration = calibrate_adaptive(model, val, batch_size=5)
    assert 0 < calibration.fixed_exact_accuracy < 1
    assert len({row["exact_accuracy"] for row in calibration.table}) > 1
    assert len({row["mean_steps"] for row in calibration.table}) > 2, "thresholds should trade accuracy for steps"
    chosen = calibration.strategy
    assert chosen.strategy == "adaptive" and math.isfinite(chosen.halt_threshold)
    picked = next(
        row for row in calibration.table if row["threshold"] == chosen.halt_threshold and row["stable"] == chosen.stable
    )
    allowed = [r for r in calibration.table if r["exact_accuracy"] >= calibration.fixed_exact_accuracy - 0.005]
    assert picked in allowed and all(row["mean_steps"] >= picked["mean_steps"] for row in allowed)
    assert picked["mean_steps"] < 6
    for row in [*calibration.table[:: max(1, len(calibration.table) // 6)], picked]:
        strategy = InferenceConfig(strategy="adaptive", halt_threshold=row["threshold"], stable=row["stable"])
        real = evaluate_strategy(model, val, strategy, batch_size=5)
        assert real.metrics["exact_accuracy"] == pytest.approx(row["exact_accuracy"])
        assert real.metrics["forward_passes"] == pytest.approx(row["mean_steps"])


def test_start_carry_runs_every_row_from_the_initial_state(tiny) -> None:
    model = _model(halt_max_steps=2)
    batch = _batch(tiny)
    carry = start_carry(model, batch["inputs"], batch["puzzle_identifiers"])
    assert not carry.halted.any() and (carry.steps == 0).all()
    assert torch.equal(carry.inner.z_H[0, 0], model.inner.H_init)
    model.eval()
    with torch.inference_mode():
        for _ in range(3):
            carry, _ = supervision_step(model, carry)
    assert (carry.steps == 3).all()
