"""The publish flow against a real Prefect server: an unreachable S3 endpoint makes the publish task retry with
backoff and then fail with a clear error (redacted URL, no secret); a refused publish is not retried."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pipeline_services import PrefectServer, free_port

pytestmark = pytest.mark.timeout(300)
SECRET = "h9-secret-key-never-logged"


@pytest.fixture(scope="module")
def tiny_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real exported model (untrained smoke-sized TRM for 4x4 Sudoku shapes) written by trm's exporter."""
    from trm.config import load_config
    from trm.model import TRM
    from trm.train.export import export_model

    config = load_config("smoke", ["model.seq_len=16", "model.vocab_size=6", "model.num_puzzle_identifiers=2"])
    return export_model(TRM(config.model), config, tmp_path_factory.mktemp("export") / "export")


def task_runs_of(server: PrefectServer, flow_run_id) -> list:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        return client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))


def test_unreachable_store_is_retried_then_fails_with_a_clear_error(
    prefect_server: PrefectServer, tiny_export: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from pipelines.publish import publish
    from trm.store import PublishRequest

    port = free_port()  # nothing listens there
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("TRM_STORE_RETRIES", "2")  # botocore's quick retries of each request, per task attempt
    with temporary_settings({PREFECT_API_URL: prefect_server.api_url}):
        state = publish(
            PublishRequest(name="tiny", model_dir=tiny_export),
            store_url="s3://trm-down/models",
            retries=2,
            retry_delay_s=0.2,
            return_state=True,
        )
        assert state.is_failed()
        message = state.message or ""
        assert "StoreUnavailableError" in message and "unreachable" in message, message
        assert "s3://trm-down/models" in message and "failed after 2 attempts" in message and SECRET not in message
        runs = [
            r
            for r in task_runs_of(prefect_server, state.state_details.flow_run_id)
            if r.name.startswith("publish_model")
        ]
    assert len(runs) == 1
    assert runs[0].run_count == 3  # first attempt + 2 retries
    assert runs[0].state.is_failed()


def test_refused_publish_is_not_retried(prefect_server: PrefectServer, tiny_export: Path, tmp_path: Path) -> None:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from pipelines.publish import publish
    from trm.store import PublishRequest

    with temporary_settings({PREFECT_API_URL: prefect_server.api_url}):
        state = publish(
            PublishRequest(name="../escape", model_dir=tiny_export),
            store_url=str(tmp_path / "store"),
            retries=3,
            retry_delay_s=5.0,
            return_state=True,
        )
        assert state.is_failed() and "InvalidNameError" in (state.message or ""), state.message
        runs = [
            r
            for r in task_runs_of(prefect_server, state.state_details.flow_run_id)
            if r.name.startswith("publish_model")
        ]
    assert len(runs) == 1 and runs[0].run_count == 1  # a retry would have waited 5 s and counted 2
    assert not (tmp_path / "store" / "models").exists() or not any((tmp_path / "store" / "models").iterdir())
