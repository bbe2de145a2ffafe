"""The benchmark scripts' building blocks: docs-section replacement, the synthetic dataset they train on, and the
evaluation schedule of the time-to-accuracy run (the scripts themselves are run by hand with --quick)."""

from __future__ import annotations

import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

import _bench_report  # noqa: E402
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
