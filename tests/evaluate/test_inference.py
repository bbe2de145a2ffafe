"""Fixed 16-step vs adaptive-halting inference on a small real TRM and a small built dataset."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from trm.data.loader import PuzzleDataset
from trm.data.writer import DatasetWriter, ExampleBatch
from trm.evaluate.inference import effective_batch_size, evaluate
from trm.model import TRM, ModelConfig

SEQ_LEN, VOCAB, ROWS = 16, 6, 11


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory) -> PuzzleDataset:
    """11 test rows (so batches of 4 leave a padded tail), labels with some ignored (0) positions."""
    rng = np.random.default_rng(0)
    out = tmp_path_factory.mktemp("eval") / "tiny"
    inputs = rng.integers(1, VOCAB, size=(ROWS, SEQ_LEN)).astype(np.uint8)
    labels = rng.integers(1, VOCAB, size=(ROWS, SEQ_LEN)).astype(np.uint8)
    labels[:, -3:] = 0  # ignore_label_id
    labels[0] = inputs[0]  # a row that copying input solves exactly
    labels[0, -3:] = 0

    def batch(n: int) -> ExampleBatch:
        return ExampleBatch(
            inputs=inputs[:n],
            labels=labels[:n],
            puzzle_identifier=(np.arange(n) % 3 + 1).astype(np.int32),
            puzzle_index=np.arange(n, dtype=np.int32),
            group_index=np.arange(n, dtype=np.int32),
            source_names=["gen"],
            source_codes=np.zeros(n, dtype=np.int32),
        )

    with DatasetWriter(out, seq_len=SEQ_LEN) as writer:
        writer.identifiers.extend(["a", "b", "c"])
        writer.split("train").write(batch(ROWS))
        writer.split("test").write(batch(ROWS))
        writer.commit(
            {
                "name": "tiny",
                "task": "sudoku",
                "builder_version": "test",
                "params": {},
                "seq_len": SEQ_LEN,
                "vocab_size": VOCAB,
                "vocab": [str(i) for i in range(VOCAB)],
                "grid_shape": (4, 4),
                "sources": [],
            }
        )
    return PuzzleDataset.open(out, "test")


def _model(ds: PuzzleDataset, seed: int = 0) -> TRM:
    torch.manual_seed(seed)
    config = ModelConfig(
        seq_len=SEQ_LEN,
        vocab_size=VOCAB,
        num_puzzle_identifiers=ds.metadata.num_puzzle_identifiers,
        hidden_size=32,
        num_heads=2,
        expansion=2.0,
        L_layers=1,
        H_cycles=2,
        L_cycles=1,
        puzzle_emb_ndim=32,
        puzzle_emb_len=2,
        halt_max_steps=16,
    )
    return TRM(config)


def _randomise_q_head(model: TRM, seed: int, bias: float) -> None:
    """Make q_halt cross 0 at different steps for different rows (the trained head would)."""
    q_head = model.inner.q_head
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        q_head.weight.copy_(torch.randn(q_head.weight.shape, generator=g) * 0.5)
        q_head.bias.fill_(bias)


def _reference_per_step(model: TRM, ds: PuzzleDataset) -> tuple[torch.Tensor, torch.Tensor]:
    """All rows in one batch, 16 calls by hand: predictions [16, N, L] and q_halt [16, N]."""
    from trm.data.loader import test_batches

    (batch,) = list(test_batches(ds, len(ds)))
    model.eval()
    preds, qs = [], []
    with torch.inference_mode():
        carry = model.initial_carry(batch)
        for _ in range(model.config.halt_max_steps):
            carry, out = model(carry, batch)
            preds.append(out["logits"].argmax(-1))
            qs.append(out["q_halt_logits"])
    return torch.stack(preds), torch.stack(qs)


def test_fixed_mode_runs_16_steps_and_reports_the_curve(tiny_dataset) -> None:
    model = _model(tiny_dataset)
    model.train()
    result = evaluate(model, tiny_dataset, batch_size=4, mode="fixed", collect_predictions=True)
    assert model.training  # mode restored
    assert result.metrics["count"] == ROWS  # the padded tail of the last batch is not counted
    assert result.metrics["steps"] == 16
    assert [p["step"] for p in result.per_step] == list(range(1, 17))
    assert result.per_step[-1]["exact_accuracy"] == result.metrics["exact_accuracy"]
    assert result.per_step[-1]["accuracy"] == result.metrics["accuracy"]
    assert result.puzzles_per_second > 0
    assert bool(result.predicted.all()) and (result.steps_used == 16).all()
    # the scored predictions are the step-16 predictions of a plain 16-call loop over the whole split
    preds, qs = _reference_per_step(model, tiny_dataset)
    assert torch.equal(result.predictions, preds[-1].to(torch.uint8))
    assert torch.allclose(result.q_halt_logits, qs[-1], atol=1e-5)
    # and the metrics are those of those predictions
    labels = tiny_dataset.labels.long()
    supervised = labels != 0
    exact = ((preds[-1] == labels) | ~supervised).all(-1).double().mean().item()
    assert result.metrics["exact_accuracy"] == pytest.approx(exact)


def test_adaptive_equals_fixed_when_q_halt_never_fires(tiny_dataset) -> None:
    model = _model(tiny_dataset)  # fresh q head: weight 0, bias -5, so q_halt = -5 always
    fixed = evaluate(model, tiny_dataset, batch_size=4, mode="fixed", collect_predictions=True)
    adaptive = evaluate(model, tiny_dataset, batch_size=4, mode="adaptive", collect_predictions=True)
    assert adaptive.metrics == fixed.metrics
    assert torch.equal(adaptive.predictions, fixed.predictions)
    assert (adaptive.steps_used == 16).all()
    assert adaptive.halted_at_step[-1] == ROWS and sum(adaptive.halted_at_step) == ROWS


def test_adaptive_stops_each_row_at_its_first_positive_q_halt(tiny_dataset) -> None:
    """Continuous batching must not disturb rows: every row's step and prediction equal a plain per-step run."""
    model = _model(tiny_dataset)
    _randomise_q_head(model, seed=4, bias=0.0)
    preds, qs = _reference_per_step(model, tiny_dataset)
    fires = qs > 0  # [16, N]
    expected_steps = torch.where(fires.any(0), fires.int().argmax(0) + 1, torch.full((ROWS,), 16))
    assert len(set(expected_steps.tolist())) > 2, "construct a q head that halts rows at several different steps"

    fixed = evaluate(model, tiny_dataset, batch_size=4, mode="fixed")
    done: list[int] = []
    adaptive = evaluate(
        model, tiny_dataset, batch_size=4, mode="adaptive", collect_predictions=True, on_rows_done=done.append
    )
    assert sum(done) == ROWS and len(done) > 1  # progress is reported as rows finish
    assert adaptive.steps_used.tolist() == expected_steps.tolist()
    expected_preds = preds[expected_steps - 1, torch.arange(ROWS)]
    assert torch.equal(adaptive.predictions, expected_preds.to(torch.uint8))
    assert adaptive.metrics["steps"] == pytest.approx(expected_steps.double().mean().item())
    assert adaptive.metrics["steps"] <= fixed.metrics["steps"]  # never more steps than the fixed budget
    assert (adaptive.steps_used <= 16).all()
    assert adaptive.metrics["count"] == fixed.metrics["count"] == ROWS
    assert adaptive.halted_at_step == torch.bincount(expected_steps, minlength=17)[1:].tolist()


def test_everyone_halts_at_step_one_when_q_halt_is_always_positive(tiny_dataset) -> None:
    model = _model(tiny_dataset)
    with torch.no_grad():
        model.inner.q_head.bias.fill_(5.0)
    fixed = evaluate(model, tiny_dataset, batch_size=4, mode="fixed")
    adaptive = evaluate(model, tiny_dataset, batch_size=4, mode="adaptive")
    assert adaptive.metrics["steps"] == 1
    assert adaptive.metrics["exact_accuracy"] == fixed.per_step[0]["exact_accuracy"]
    assert adaptive.metrics["accuracy"] == fixed.per_step[0]["accuracy"]


def test_a_batch_larger_than_the_split_is_capped_and_gives_the_same_result(tiny_dataset) -> None:
    assert effective_batch_size(512, 200, 1) == 200 and effective_batch_size(512, 201, 2) == 202
    assert effective_batch_size(64, 200, 2) == 64 and effective_batch_size(8, 0, 2) == 2
    with pytest.raises(ValueError, match="multiple of world_size 2"):
        effective_batch_size(5, 10, 2)
    model = _model(tiny_dataset)
    for mode in ("fixed", "adaptive"):
        exact = evaluate(model, tiny_dataset, batch_size=ROWS, mode=mode, collect_predictions=True)
        huge = evaluate(model, tiny_dataset, batch_size=64 * ROWS, mode=mode, collect_predictions=True)
        assert huge.metrics == exact.metrics and torch.equal(huge.predictions, exact.predictions)


def test_unknown_mode_is_rejected(tiny_dataset) -> None:
    with pytest.raises(ValueError, match="unknown evaluation mode"):
        evaluate(_model(tiny_dataset), tiny_dataset, batch_size=4, mode="sometimes")  # type: ignore[arg-type]
