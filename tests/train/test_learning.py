"""LEARNING: the `smoke` preset takes a fresh TRM from ~0% to >= 95% exact accuracy on held-out 4x4 Sudoku (test
puzzles use solution grids that never occur in training, checked here) within its budget (about two minutes of one
core of the 2-core reference machine, dataset build included; stated below in this machine's own training steps).
The step is selected on the validation split; the test split is measured once, on the export."""

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
from trm.train.trainer import Trainer, torch_threads

# The budget is a couple of minutes of the 2-core machine, stated in this machine's own training steps so that it
# holds on any CPU: beside the run, CALIBRATION_STEPS optimizer steps of the same model on the same data are timed
# (process CPU time, one torch thread), and the whole run (dataset build, 1800 training steps, validation, test) may
# cost at most BUDGET_IN_STEPS of them. Measured on an idle 2-core AMD EPYC: 384 s of CPU = 1764 calibration steps
# of 218 ms. The same run took 82 s on an idle 2-core Intel Xeon, so an absolute bound (it was 180 s) failed on the
# slower machine although the model learnt; the ratio fails only when the run does more work than planned. The bound
# leaves 2x for load that changes between the calibration and the run (CPU time grows under load: shared caches and
# cores). Wall time is printed, not asserted: a suite running in parallel can oversubscribe the machine many times.
CALIBRATION_STEPS = 60
BUDGET_IN_STEPS = 3500


def cpu_seconds_per_step(trainer: Trainer) -> float:
    """This machine's CPU cost of one training step of ``trainer``'s config, timed now, beside the run it calibrates."""
    with torch_threads(trainer.config.train.threads):
        trainer.step()  # the first step pays one-off allocation costs
        started = time.process_time()
        for _ in range(CALIBRATION_STEPS):
            trainer.step()
        return (time.process_time() - started) / CALIBRATION_STEPS


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

    untrained = Trainer(config, train_ds)
    before = evaluate(untrained.ema_model(), test_ds, config.eval.batch_size)
    assert before.metrics["exact_accuracy"] <= 0.05

    calibration_started = time.process_time()
    per_step = cpu_seconds_per_step(untrained)  # the untrained model's trainer, stepped: its evaluation is done
    calibration_cpu = time.process_time() - calibration_started
    result = train(config, hooks=local_run_hooks(config), progress=False)
    assert result.export_dir is not None and result.selection is not None and result.selection.split == "val"
    model, _ = load_exported(result.export_dir)  # the selected step's weights, measured once on test
    after = evaluate(model, test_ds, config.eval.batch_size).metrics
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    cpu -= calibration_cpu  # the run's own cost
    in_steps = cpu / per_step
    print(
        f"smoke: {result.steps} steps, wall {elapsed:.1f} s, cpu {cpu:.1f} s = {in_steps:.0f} calibration steps of "
        f"{per_step * 1000:.1f} ms, exact {after['exact_accuracy']:.4f}, "
        f"token {after['accuracy']:.4f}, untrained exact {before.metrics['exact_accuracy']:.4f}"
    )
    assert after["count"] == len(test_ds)
    assert after["exact_accuracy"] >= 0.95, after
    assert in_steps <= BUDGET_IN_STEPS, (
        f"took {cpu:.1f} s of CPU = {in_steps:.0f} calibration steps of {per_step * 1000:.1f} ms ({elapsed:.1f} s wall)"
    )
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
