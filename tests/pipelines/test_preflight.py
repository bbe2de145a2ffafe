"""Preflight of the outside world, against real services on 127.0.0.1: the store takes a probe write (and keeps
nothing), a store or DVC remote that does not answer fails in one line naming it (no secret in the line), and a Ray
cluster too small for the workers is waited for visibly and then refused within the bound."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pipeline_services import copy_project, free_port

from pipelines.plan import Infrastructure, plan_retrain
from pipelines.preflight import check_dvc_remote, check_store
from pipelines.retries import is_transient
from trm.distributed.capacity import Demand, wait_for_capacity
from trm.distributed.cluster import connect
from trm.errors import PreflightError, UsageError
from trm.store import StoreUnavailableError

SECRET = "preflight-secret-never-shown"


def test_a_writable_store_passes_and_keeps_nothing(tmp_path: Path) -> None:
    check_store(str(tmp_path / "store"))
    assert not [p for p in (tmp_path / "store").rglob("*") if p.is_file()]


def test_an_unreachable_store_fails_in_one_line_without_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("TRM_STORE_RETRIES", "2")
    started = time.monotonic()
    with pytest.raises(PreflightError) as caught:
        check_store("s3://trm-preflight/models")
    message = str(caught.value)
    assert "artifact store s3://trm-preflight/models" in message and "unreachable" in message
    assert SECRET not in message and "\n" not in message and time.monotonic() - started < 60


def test_a_dvc_remote_that_does_not_answer_fails_before_the_data_stage(
    tmp_path: Path, shared_datasets: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import subprocess

    repo = copy_project(tmp_path, shared_datasets)
    port = free_port()
    dvc = [sys.executable, "-m", "dvc"]
    subprocess.run([*dvc, "remote", "add", "-d", "down", "s3://trm-down/dvc"], cwd=repo, check=True)
    subprocess.run([*dvc, "remote", "modify", "down", "endpointurl", f"http://127.0.0.1:{port}"], cwd=repo, check=True)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    plan = plan_retrain(
        preset="smoke",
        dataset=None,
        overrides=None,
        workers=2,
        tune=None,
        store_url=str(tmp_path / "store"),
        model_name=None,
        eval_modes=None,
        infrastructure=Infrastructure(repo_dir=str(repo)),
        publishing=None,
        run_id="test",
    )
    with pytest.raises(PreflightError, match="DVC remote 'down' does not answer") as caught:
        check_dvc_remote(plan)
    assert SECRET not in str(caught.value) and not (repo / "data" / "sudoku-4x4").exists()
    with pytest.raises(UsageError, match="dvc_remote 'elsewhere' is not configured"):
        plan_retrain(
            preset="smoke",
            dataset=None,
            overrides=None,
            workers=2,
            tune=None,
            store_url=None,
            model_name=None,
            eval_modes=None,
            infrastructure=Infrastructure(repo_dir=str(repo), dvc_remote="elsewhere"),
            publishing=None,
            run_id="test",
        )


def test_a_cluster_too_small_is_waited_for_visibly_then_refused(tmp_path: Path) -> None:
    session = connect(num_cpus=2, temp_dir=None)
    said: list[str] = []
    try:
        started = time.monotonic()
        with pytest.raises(PreflightError, match=r"3 worker\(s\) x 1 CPU need 3 CPUs; the cluster has 2"):
            wait_for_capacity(Demand(3, 1.0), session.address, timeout_s=3.0, say=said.append)
        assert 3.0 <= time.monotonic() - started < 30
        assert said and said[0].startswith("waiting for 3 worker(s) on Ray cluster")
        wait_for_capacity(Demand(2, 1.0), session.address, timeout_s=0.0, say=said.append)  # fits: returns at once
    finally:
        session.close()


def test_only_transient_failures_are_retried() -> None:
    assert is_transient(StoreUnavailableError("down")) and is_transient(ConnectionError("reset"))
    assert not is_transient(UsageError("workers=0")) and not is_transient(ValueError("bad config"))
    assert not is_transient(PreflightError("store refuses writes"))
