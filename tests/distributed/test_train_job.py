"""Ray Train job on a real local Ray (2 CPUs, shared by the tests of this module): 2 workers match one process,
learn the smoke preset, survive a SIGKILLed worker, and a stopped run resumes from S3 (moto on 127.0.0.1)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ray_fixtures import LEARNING_THRESHOLD, assert_same_state, smoke_config, wait_for

from trm.data.loader import PuzzleDataset
from trm.distributed.train_job import fetch_checkpoint, run_ray_training
from trm.evaluate.inference import evaluate
from trm.s3 import S3Settings
from trm.train.checkpoint import read_checkpoint
from trm.train.export import load_exported
from trm.train.trainer import Trainer

DRIVER = Path(__file__).resolve().parent / "ray_driver.py"
REPO = Path(__file__).resolve().parents[2]


def _checkpoint_dirs(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("checkpoint_step_*") if (p / "state.safetensors").is_file())


def _registered(snapshot_text: str) -> bool:
    """Ray has registered a checkpoint (not merely started uploading one) once its run snapshot names it; only
    then will a restart hand it to the workers."""
    return "checkpoint_step_" in snapshot_text


def _local_registered(run_dir: Path) -> bool:
    snapshot = run_dir / "checkpoint_manager_snapshot.json"
    return snapshot.is_file() and _registered(snapshot.read_text())


def test_two_workers_match_one_process(local_ray, smoke_data_root, tmp_path):
    steps = 3
    config = smoke_config(smoke_data_root, f"train.max_steps={steps}", f"train.eval_interval={steps}")
    result = run_ray_training(config, workers=2, storage=tmp_path / "store", name="equiv")
    assert result.steps == steps and result.workers == 2 and result.metrics["world_size"] == 2
    assert _checkpoint_dirs(tmp_path / "store" / "equiv") == [f"checkpoint_step_{steps:08d}"]
    got, meta = read_checkpoint(Path(result.latest_checkpoint))
    assert meta["world_size"] == 2 and meta["step"] == steps

    torch.set_num_threads(1)
    single = Trainer(config, PuzzleDataset.open(config.data.resolve_path(), "train"))
    for _ in range(steps):
        single.step()
    want, _ = single.state_dict()
    assert_same_state(got, want)


def test_two_workers_learn_and_survive_a_sigkilled_worker(local_ray, smoke_data_root, tmp_path):
    """The full smoke budget on 2 workers; rank 1 is SIGKILLed after the first checkpoint. The run must restore from
    its latest checkpoint, finish the planned steps, say it restored, learn, and keep the best checkpoints."""
    every = 200
    config = smoke_config(smoke_data_root, f"train.eval_interval={every}", f"train.checkpoint_interval={every}")
    store, info = tmp_path / "store", tmp_path / "workers"
    outcome: dict = {}

    def run() -> None:
        try:
            outcome["result"] = run_ray_training(
                config, workers=2, storage=store, name="learn", max_failures=2, keep_best=2, worker_info_dir=info
            )
        except BaseException as err:  # noqa: BLE001 - surfaced by the assertion below
            outcome["error"] = err

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    wait_for(
        lambda: (_local_registered(store / "learn") and (info / "rank1.json").is_file()) or not thread.is_alive(),
        timeout=300,
        what="the first checkpoint",
    )
    assert thread.is_alive(), f"run ended before a worker could be killed: {outcome}"
    victim = json.loads((info / "rank1.json").read_text())["pid"]
    os.kill(victim, signal.SIGKILL)
    thread.join(timeout=420)
    assert not thread.is_alive(), "run did not finish after the worker was killed"
    assert "error" not in outcome, outcome.get("error")
    result = outcome["result"]

    assert result.steps == result.total_steps == config.train.max_steps
    assert result.restored and result.restores == 1 and result.restored_from_step >= every
    assert json.loads((info / "rank1.json").read_text())["pid"] != victim  # a new worker process took over
    assert result.metrics["eval_exact_accuracy"] >= LEARNING_THRESHOLD, result.metrics
    assert result.metrics["samples_per_second"] > 0 and result.metrics["lr"] > 0 and "loss" in result.metrics
    # the 2 best by validation exact accuracy are kept, plus the latest (Ray never deletes the latest)
    kept = _checkpoint_dirs(store / "learn")
    assert kept[-1] == f"checkpoint_step_{config.train.max_steps:08d}" and 2 <= len(kept) <= 3, kept
    assert Path(result.best_checkpoint).name in kept
    model, _ = load_exported(result.best_checkpoint)
    val_ds = PuzzleDataset.open(config.data.resolve_path(), "val")  # the split checkpoints are scored on
    again = evaluate(model, val_ds, config.eval.batch_size, mode="fixed")
    assert again.metrics["exact_accuracy"] == pytest.approx(result.best_metrics["eval_exact_accuracy"], abs=1e-6)


def test_stopped_run_resumes_from_s3(local_ray, smoke_data_root, s3_server, tmp_path):
    bucket = s3_server.new_bucket()
    storage = f"s3://{bucket}/runs"
    name, steps, every = "s3run", 150, 10  # many checkpoints: the kill must land mid-run even on a fast machine
    overrides = [f"train.max_steps={steps}", f"train.eval_interval={every}", f"train.checkpoint_interval={every}"]
    s3 = s3_server.filesystem()

    def registered() -> bool:
        try:
            return _registered(s3.cat(f"{bucket}/runs/{name}/checkpoint_manager_snapshot.json").decode())
        except FileNotFoundError:
            return False

    def stored_checkpoints() -> list[str]:
        try:
            return sorted(Path(p).name for p in s3.ls(f"{bucket}/runs/{name}", refresh=True) if "checkpoint_step_" in p)
        except FileNotFoundError:
            return []

    env = {**os.environ, **s3_server.env(), "PYTHONPATH": str(REPO)}
    driver = subprocess.Popen(
        [sys.executable, str(DRIVER), local_ray.address, str(smoke_data_root), storage, name, *overrides],
        env=env,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        wait_for(
            lambda: registered() or driver.poll() is not None, timeout=240, what="a checkpoint in S3", interval=0.2
        )
        assert driver.poll() is None, f"driver ended early: {driver.stderr.read()[-3000:]}"
    finally:
        os.killpg(driver.pid, signal.SIGKILL)  # stop the whole run: its driver dies, Ray reaps the job's actors
        driver.wait(timeout=30)
    first = stored_checkpoints()
    assert first and first[-1] != f"checkpoint_step_{steps:08d}", first

    settings = S3Settings(
        endpoint_url=s3_server.endpoint_url, access_key=s3_server.access_key, secret_key=s3_server.secret_key
    )
    config = smoke_config(smoke_data_root, *overrides)
    result = run_ray_training(config, workers=2, storage=storage, s3=settings, name=name)
    assert result.restored and result.restored_from_step >= every and result.steps == steps
    assert result.run_uri == f"{storage}/{name}"
    assert result.best_checkpoint.startswith(f"{storage}/{name}/checkpoint_step_")
    assert stored_checkpoints()[-1] == f"checkpoint_step_{steps:08d}"
    local = fetch_checkpoint(result.latest_checkpoint, tmp_path / "downloaded", settings)
    _, meta = read_checkpoint(local)
    assert meta["step"] == steps and meta["ray"]["restores"] == 1
