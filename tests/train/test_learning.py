"""LEARNING: the `smoke` preset takes a fresh TRM from ~0% to >= 95% exact accuracy on held-out 4x4 Sudoku (test
puzzles use solution grids that never occur in training, checked here) within the 2-minute budget, dataset build
included. The step is selected on the validation split; the test split is measured once, on the export."""

from __future__ import annotations

import json
import time

import pytest

from trm.config import load_config
from trm.data.build import ensure_built
from trm.data.loader import PuzzleDataset
from trm.evaluate.inference import evaluate
from trm.evaluate.training import local_run_hooks
from trm.train.export import load_exported
from trm.train.loop import train
from trm.train.trainer import Trainer

# The budget is a couple of minutes of the 2-core machine. The run uses one torch thread, so its process CPU time is
# what it costs on an idle machine (measured: 82 s); wall time is printed too but not asserted, because the shared
# machine running the suite in parallel can be many times oversubscribed (observed: 8x). Even CPU time grows under
# that load (shared caches and cores: 126 s seen in CI), so the bound leaves room above the idle cost.
BUDGET_CPU_SECONDS = 180.0


@pytest.mark.slow
def test_smoke_preset_learns_held_out_sudoku(tmp_path):
    started, cpu_started = time.perf_counter(), time.process_time()
    config = load_config("smoke", [f"data.root={tmp_path / 'data'}", f"run.output_dir={tmp_path / 'runs'}"])
    assert config.train.threads is not None, "the preset must pin torch threads"
    data = ensure_built(config.data.resolve_path(), config.data.name)
    train_ds, test_ds = PuzzleDataset.open(data, "train"), PuzzleDataset.open(data, "test")
    train_grids = {bytes(row) for row in train_ds.labels.numpy()}
    train_puzzles = {bytes(row) for row in train_ds.inputs.numpy()}
    assert not any(bytes(row) in train_grids for row in test_ds.labels.numpy()), "test solutions occur in train"
    assert not any(bytes(row) in train_puzzles for row in test_ds.inputs.numpy()), "test puzzles occur in train"

    before = evaluate(Trainer(config, train_ds).ema_model(), test_ds, config.eval.batch_size)
    assert before.metrics["exact_accuracy"] <= 0.05

    result = train(config, hooks=local_run_hooks(config), progress=False)
    assert result.export_dir is not None and result.selection is not None and result.selection.split == "val"
    model, _ = load_exported(result.export_dir)  # the selected step's weights, measured once on test
    after = evaluate(model, test_ds, config.eval.batch_size).metrics
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    print(
        f"smoke: {result.steps} steps, wall {elapsed:.1f} s, cpu {cpu:.1f} s, exact {after['exact_accuracy']:.4f}, "
        f"token {after['accuracy']:.4f}, untrained exact {before.metrics['exact_accuracy']:.4f}"
    )
    assert after["count"] == len(test_ds)
    assert after["exact_accuracy"] >= 0.95, after
    assert cpu <= BUDGET_CPU_SECONDS, f"took {cpu:.1f} s of CPU ({elapsed:.1f} s wall)"
    solve_from_the_store(result.export_dir, test_ds, tmp_path)


def as_text(tokens) -> str:
    """Sudoku tokens (1 blank, 2.. digits) as the HRM CSV's cells ('.' blank)."""
    return "".join("." if int(t) == 1 else str(int(t) - 1) for t in tokens)


def solve_from_the_store(export_dir, test_ds: PuzzleDataset, tmp_path) -> None:
    """The learned model, published and named by a store reference, answers the held-out puzzles handed to
    `trm solve` as an HRM CSV: right as often as the evaluation said, with the answers written as JSON."""
    from typer.testing import CliRunner

    from trm.cli import app
    from trm.store import ModelStore, PublishRequest

    store = tmp_path / "store"
    ModelStore.open(str(store)).publish(PublishRequest(name="smoke", model_dir=export_dir))
    rows = [
        f",{as_text(q)},{as_text(a)},0" for q, a in zip(test_ds.inputs.numpy(), test_ds.labels.numpy(), strict=True)
    ]
    puzzles = tmp_path / "held_out.csv"
    puzzles.write_text("source,question,answer,rating\n" + "\n".join(rows) + "\n")
    out = tmp_path / "answers.json"
    result = CliRunner().invoke(app, ["solve", f"{store}#smoke:1", str(puzzles), "--out", str(out), "--show", "2"])
    assert result.exit_code == 0, result.output
    answers = json.loads(out.read_text())
    right = sum(answer["correct"] for answer in answers)
    assert len(answers) == len(test_ds) and right >= 0.95 * len(answers), result.output[-2000:]
    assert f"{right}/{len(answers)} right" in " ".join(result.output.split())
