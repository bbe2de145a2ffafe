"""The benchmark scripts' building blocks (docs-section replacement, the synthetic dataset they train on, the
evaluation schedule of the time-to-accuracy run) and the inference-strategies protocol end to end in its --quick
mode (the other scripts are run by hand with --quick)."""

from __future__ import annotations

import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

import _bench_report  # noqa: E402
import batch_solve  # noqa: E402
import inference_strategies  # noqa: E402
import time_to_accuracy  # noqa: E402
import train_throughput  # noqa: E402

from trm.data.loader import PuzzleDataset  # noqa: E402
from trm.model.flops import supervision_step_flops  # noqa: E402


def test_replace_section_appends_then_replaces_in_place(tmp_path: Path) -> None:
    doc = tmp_path / "benchmarks.md"
    doc.write_text("# Benchmarks\n\n## Data\nkeep me\n")
    _bench_report.replace_section("x", "first body", doc)
    _bench_report.replace_section("y", "other", doc)
    _bench_report.replace_section("x", "second body", doc)
    text = doc.read_text()
    assert "keep me" in text and "first body" not in text and "second body" in text
    assert text.count("<!-- bench:x -->") == 1 and text.index("second body") < text.index("other")


def test_synthetic_dataset_trains_one_step_with_counted_flops(tmp_path: Path) -> None:
    folder = train_throughput.synthetic_dataset(
        tmp_path / "syn", seq_len=16, vocab_size=6, grid_shape=(4, 4), rows=32, identifiers=5
    )
    ds = PuzzleDataset.open(folder, "train")
    assert len(ds) == 32 and ds.metadata.num_puzzle_identifiers == 5
    assert int(ds.inputs.min()) >= 1 and int(ds.labels.min()) >= 2
    trainer = train_throughput.make_trainer("smoke", folder, batch=4, compile_model=False)
    assert trainer.config.model.seq_len == 16 and trainer.config.model.vocab_size == 6
    metrics = trainer.step()
    assert trainer.step_count == 1 and metrics["lm_loss"] > 0
    assert supervision_step_flops(trainer.config.model).training > 0


def test_eval_points_start_at_zero_and_end_at_budget() -> None:
    assert time_to_accuracy.eval_points(100, 4) == [0, 25, 50, 75, 100]
    assert time_to_accuracy.eval_points(3, 10) == [0, 1, 2, 3]


def test_inference_strategies_quick_run_picks_on_val_and_measures_every_config_on_test(tmp_path: Path) -> None:
    selection = inference_strategies.main(["--quick", "--out", str(tmp_path)])  # untrained model, 8 puzzles
    configs = selection.configs
    assert {c.family for c in configs} == set(inference_strategies.FAMILIES)
    assert all(c.val and c.test["count"] == 8 for c in configs)
    picked = [c for c in configs if c.picked]
    assert sorted(c.family for c in picked) == sorted(inference_strategies.FAMILIES)  # one pick per family
    assert all(c.val["forward_passes"] <= inference_strategies.BUDGET for c in picked)
    assert (tmp_path / "inference_strategies.png").stat().st_size > 0
    lines = (tmp_path / "results.jsonl").read_text().splitlines()
    assert len(lines) == len(selection.noise_grid) + len(selection.threshold_grid) + len(configs) + 2
    again = inference_strategies.main(["--quick", "--out", str(tmp_path), "--retest"])  # asserts equal test numbers
    assert [c.strategy for c in again.configs] == [c.strategy for c in configs]


def test_batch_solve_quick_run_scales_streams_and_renders_its_section(tmp_path: Path) -> None:
    result = batch_solve.main(["--quick", "--out", str(tmp_path)])  # light untrained model, 200 and 3000 rows
    one, two = result["scaling"]["runs"]  # --quick: one run each
    assert (one["workers"], two["workers"]) == (1, 2) and one["puzzles"] == two["puzzles"] == 200
    assert result["streaming"]["run"]["puzzles"] == 3000 and result["scaling"]["ratio"] > 0
    assert result["scaling"]["plain_pair_puzzles_per_s"] > 0 and two["cpu_seconds"]["actor"] > 0
    text = batch_solve.section(result)
    assert "2 workers / 1 worker" in text and "3,000 puzzles in one CSV file" in text
    assert not list(tmp_path.glob("batch-solve-*"))  # the runs' outputs are removed
