"""`trm train --ray`: the CLI runs the Ray Train job, a repeated command with the same run name resumes, and rank 0
keeps the per-step metrics log (the model card's curve) consistent across the resume."""

from __future__ import annotations

from typer.testing import CliRunner

from trm.cli import app
from trm.train.metrics_log import read_metrics


def test_train_ray_cli_runs_and_resumes(local_ray, smoke_data_root, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = [
        "train",
        "--preset",
        "smoke",
        "--ray",
        "--workers",
        "2",
        "--storage",
        str(tmp_path / "ray"),
        "--set",
        f"data.root={smoke_data_root}",
        "--set",
        "run.output_dir=runs",
        "--set",
        "train.eval_interval=2",
        "--set",
        "train.log_interval=1",
    ]
    first = CliRunner().invoke(app, [*args, "--set", "train.max_steps=2"], catch_exceptions=False)
    assert first.exit_code == 0, first.output
    assert "steps: 2/2" in first.output and "workers: 2" in first.output and "restored" not in first.output
    assert (tmp_path / "ray" / "smoke").is_dir()
    second = CliRunner().invoke(app, [*args, "--set", "train.max_steps=4"], catch_exceptions=False)
    assert second.exit_code == 0, second.output
    assert "steps: 4/4" in second.output and "restored from step 2" in second.output
    records = read_metrics(tmp_path / "runs" / "smoke" / "metrics.jsonl")
    assert [r["step"] for r in records if r["kind"] == "train"] == [1, 2, 3, 4]
    assert [r["step"] for r in records if r["kind"] == "eval"] == [2, 4]
