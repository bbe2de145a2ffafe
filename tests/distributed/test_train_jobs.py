"""Training as a Ray job on the local head (trm/distributed/job.py, head.py), through the Jobs API: a job stopped
mid-run (as when its head lost it, or someone stopped it) is followed by a new attempt under the same key, which
resumes from the run's last checkpoint and ends with the weights of an uninterrupted job."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ray_fixtures import smoke_config, wait_for

REPO = Path(__file__).resolve().parents[2]
STEPS, EVERY = 80, 5  # a checkpoint every 5 steps: the stop lands mid-run even on a fast machine
EVAL_EVERY = 40  # validation is what costs; a checkpoint between evaluations is still a restore point
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def test_a_stopped_job_resumes_under_its_key_to_the_uninterrupted_weights(smoke_data_root: Path, tmp_path: Path):
    from trm.distributed.head import ensure_local_head
    from trm.distributed.job import RayJobError, TrainJobs, TrainJobSpec, reusable
    from trm.distributed.train_job import RayScaling
    from trm.train.export import load_exported

    jobs = TrainJobs(ensure_local_head().dashboard_url)  # the test session's head (tests/conftest.py)
    storage, lines = tmp_path / "ray", []

    def spec(name: str) -> TrainJobSpec:
        overrides = [
            f"train.max_steps={STEPS}",
            f"train.eval_interval={EVAL_EVERY}",
            f"train.checkpoint_interval={EVERY}",
        ]
        config = smoke_config(smoke_data_root, *overrides, f"run.output_dir={tmp_path}", f"run.name={name}")
        return TrainJobSpec(
            config=config.model_dump(mode="json"), scaling=RayScaling(workers=2), storage=str(storage), name=name
        )

    whole = jobs.wait(jobs.submit("trm-test-whole", spec("whole"), str(REPO), attempt=0), say=lines.append)
    assert not whole.restored and whole.steps == STEPS

    key = "trm-test-cut"
    first = jobs.submit(key, spec("cut"), str(REPO), attempt=0)
    wait_for(lambda: any((storage / "cut").glob("checkpoint_step_*")), timeout=300, what="a checkpoint", interval=0.2)
    jobs.client.stop_job(first)
    with pytest.raises(RayJobError, match=f"Ray job {key} ended STOPPED"):
        jobs.wait(first, say=lines.append)
    assert not reusable(jobs.attempts(key)[-1])  # a new caller submits the next attempt instead of following it

    resumed = jobs.wait(jobs.submit(key, spec("cut"), str(REPO), attempt=1), say=lines.append)
    assert [job.submission_id for job in jobs.attempts(key)] == [key, f"{key}-attempt-1"]
    assert resumed.restored and resumed.restored_from_step >= EVERY and resumed.steps == STEPS
    assert resumed.restored_from_step < STEPS  # it really was cut mid-run
    model_whole, _ = load_exported(whole.latest_checkpoint)
    model_resumed, _ = load_exported(resumed.latest_checkpoint)
    for (name, a), (_, b) in zip(model_whole.state_dict().items(), model_resumed.state_dict().items(), strict=True):
        assert torch.equal(a, b), f"{name} differs after the resume"


def test_the_local_head_is_found_again_and_stopped_by_trm_ray_stop(tmp_path: Path) -> None:
    """A second caller finds the recorded head instead of starting another; `trm ray stop` ends all its processes."""
    import os
    import subprocess

    from trm.distributed.head import ensure_local_head, head_processes

    folder = tmp_path / "head"
    head = ensure_local_head(num_cpus=1, folder=folder)
    try:
        assert ensure_local_head(folder=folder) == head  # found through head.json: same ports, same session
        processes = head_processes(folder)
        assert len(processes) >= 3  # gcs_server, raylet, dashboard at least
        env = {**os.environ, "TRM_RAY_HEAD_DIR": str(folder)}
        cli = [sys.executable, "-m", "trm.cli", "ray"]
        status = subprocess.run([*cli, "status"], env=env, capture_output=True, text=True, timeout=120)
        assert '"state": "running"' in status.stdout and head.dashboard_url in status.stdout, status
        stopped = subprocess.run([*cli, "stop"], env=env, capture_output=True, text=True, timeout=120)
        assert f"stopped the local Ray head at {head.dashboard_url}" in stopped.stdout, stopped
        assert not any(p.is_running() and p.status() != "zombie" for p in processes)
        again = subprocess.run([*cli, "status"], env=env, capture_output=True, text=True, timeout=120)
        assert "no local Ray head recorded" in again.stdout
    finally:
        from trm.distributed.head import stop_local_head

        stop_local_head(folder)
