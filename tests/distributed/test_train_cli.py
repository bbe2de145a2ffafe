"""`trm train --ray`: the CLI runs the Ray Train job and a repeated command with the same run name resumes."""

from __future__ import annotations

from typer.testing import CliRunner

from trm.cli import app


def test_train_ray_cli_runs_and_resumes(local_ray, smoke_data_root, tmp_path):
    args = ["train", "--preset", "smoke", "--ray", "--workers", "2", "--storage", str(tmp_path / "ray"),
            "--set", f"data.root={smoke_data_root}", "--set", f"run.output_dir={tmp_path}",
            "--set", "train.eval_interval=2"]
    first = CliRunner().invoke(app, [*args, "--set", "train.max_steps=2"], catch_exceptions=False)
    assert first.exit_code == 0, first.output
    assert "steps: 2/2" in first.output and "workers: 2" in first.output and "restored" not in first.output
    assert (tmp_path / "ray" / "smoke").is_dir()
    second = CliRunner().invoke(app, [*args, "--set", "train.max_steps=4"], catch_exceptions=False)
    assert second.exit_code == 0, second.output
    assert "steps: 4/4" in second.output and "restored from step 2" in second.output
