"""End to end through real services on 127.0.0.1: a Prefect server, a process worker, `prefect deploy --all`, and
`prefect deployment run 'retrain/smoke' --watch`, twice (the second with force=True: the same inputs would
otherwise be "up to date"), then an active schedule that the server's scheduler fires. The flow builds the data
with DVC (in a copy of the project), trains on a local Ray with 2 workers, evaluates, and publishes to an S3 bucket
on a moto server. Then the published model is downloaded, verified and loaded and solves the test puzzles at the
accuracy it claims; the second run reproduces the data hash and the metrics without rebuilding the data, and the
manifest diff names only what identifies a run; the scheduled run finds the model up to date and trains nothing."""

from __future__ import annotations

import hashlib
import json
import signal
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pipeline_services import PrefectServer, base_env, start_worker, stop_group

pytestmark = pytest.mark.timeout(1200)

DEPLOYMENTS = {"smoke", "sudoku-extreme", "maze-hard", "arc-agi-1", "reproduce", "ablations"}
MODEL = "smoke"
STAGE = "sudoku-4x4"
OVERRIDES = ["train.max_steps=400", "train.eval_interval=200"]
# What may differ between two runs of the same deployment: the names that identify each run, nothing else.
RUN_IDENTITY_KEYS = {
    "ray_run_name",
    "config.run.name",
    "extra.prefect_flow_run",
    "files.config.json.sha256",
}  # config.json differs exactly by run.name (checked by the diff)


def data_fingerprint(folder: Path) -> dict[str, tuple[str, int]]:
    """sha256 and mtime (ns) of every file of a built dataset: equal mtimes = DVC did not rewrite anything."""
    return {
        p.name: (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
        for p in sorted(folder.iterdir())
        if p.is_file()
    }


@dataclass
class BadRun:
    returncode: int
    output: str
    flow_run_messages: list[str]  # state messages of the flow runs it created (none when refused at creation)
    left_behind: list[str]  # run folders, built data or store objects that exist after it


def bad_deployment_run(server: PrefectServer, repo: Path, store_url: str, parameters: dict[str, Any]) -> BadRun:
    """A deployment run with a wrong parameter: it must end (or be refused) quickly, and leave nothing behind."""
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: server.api_url}), get_client(sync_client=True) as client:
        before = {run.id for run in client.read_flow_runs()}
    done = server.cli(
        "deployment",
        "run",
        f"retrain/{MODEL}",
        "--params",
        json.dumps(parameters),
        "--watch",
        cwd=repo,
        timeout=300,
        check=False,
    )
    with temporary_settings({PREFECT_API_URL: server.api_url}), get_client(sync_client=True) as client:
        created = [run for run in client.read_flow_runs() if run.id not in before]
    left = [str(p) for p in [*(repo / "runs").glob("*"), *(repo / "data" / STAGE).glob("*")]]
    left += [str(p) for p in Path(store_url).rglob("*") if p.is_file()] if "://" not in store_url else []
    return BadRun(done.returncode, done.stdout + done.stderr, [r.state.message or "" for r in created if r.state], left)


@dataclass
class SmokeRuns:
    server: PrefectServer
    repo: Path
    store_url: str
    s3_env: dict[str, str]
    deploy_output: str
    summaries: list[dict[str, Any]]  # retrain.json of each run, in run order
    bad_runs: dict[str, BadRun]  # deployment runs with wrong parameters, made before the good ones
    fingerprints: list[dict[str, tuple[str, int]]]  # data/sudoku-4x4 after each run
    scheduled: Any  # the flow run the schedule fired (a prefect FlowRun)
    killed: Any  # the flow run SIGKILLed mid-training (its training went on as a Ray job)


def run_deployment(server: PrefectServer, repo: Path, parameters: dict[str, Any], worker) -> str:
    done = server.cli(
        "deployment",
        "run",
        f"retrain/{MODEL}",
        "--params",
        json.dumps(parameters),
        "--watch",
        cwd=repo,
        timeout=900,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0 and "Completed" in output, (
        f"deployment run failed ({done.returncode}):\n{output[-4000:]}\n--- worker ---\n{worker.output()}"
    )
    return output


@pytest.fixture(scope="module")
def smoke_runs(prefect_server: PrefectServer, project_copy: Path, s3_server) -> SmokeRuns:
    repo = project_copy
    server = prefect_server
    server.cli("work-pool", "create", "trm-local", "--type", "process", "--overwrite", cwd=repo)
    deployed = server.cli("--no-prompt", "deploy", "--all", cwd=repo, timeout=300)
    bucket = s3_server.new_bucket()
    store_url = f"s3://{bucket}/trm"
    worker_env = base_env(
        PREFECT_HOME=str(server.home),
        PREFECT_API_URL=server.api_url,
        PREFECT_WORKER_QUERY_SECONDS="1",
        TRM_DATASETS=str(repo.parent / "shared" / "datasets"),
        **s3_server.env(),
    )
    worker = start_worker(server, repo, worker_env)
    try:
        bad_runs = {
            "unknown preset": bad_deployment_run(server, repo, store_url, {"preset": "nope"}),
            "zero workers": bad_deployment_run(server, repo, store_url, {"workers": 0}),
            "unknown dataset": bad_deployment_run(server, repo, store_url, {"dataset": "nope"}),
        }
        # half the smoke preset's steps keeps the two runs inside the test budget; it still learns (checked below)
        parameters = {"store_url": store_url, "workers": 2, "overrides": OVERRIDES}
        summaries, fingerprints = [], []
        for force in (False, True):  # the same inputs again: only force retrains (else "up to date", tested below)
            run_deployment(server, repo, {**parameters, "force": force}, worker)
            summaries.append(latest_summary(repo, expected_count=len(summaries) + 1))
            fingerprints.append(data_fingerprint(repo / "data" / STAGE))
        scheduled = fire_schedule(server, parameters, worker)
        summaries.append(latest_summary(repo, expected_count=3))
        killed = kill_mid_training(server, repo, {**parameters, "force": True})
        run_deployment(server, repo, {**parameters, "force": True}, worker)  # the same inputs, after the kill
        summaries.append(latest_summary(repo, expected_count=4))
    finally:
        stop_group(worker.process, signal.SIGINT)
    return SmokeRuns(
        server, repo, store_url, s3_server.env(), deployed.stdout, summaries, bad_runs, fingerprints, scheduled, killed
    )


def kill_mid_training(server: PrefectServer, repo: Path, parameters: dict[str, Any], timeout_s: float = 300) -> Any:
    """Start a deployment run and SIGKILL its flow process (only that process) once its training job has logged
    100 steps; returns the killed flow run, as the server saw it after the kill."""
    import psutil
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment as start_run
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: server.api_url}):
        run = start_run(f"retrain/{MODEL}", parameters=parameters, timeout=0)
    before = set((repo / "runs").glob(f"{MODEL}-*/metrics.jsonl"))
    deadline = time.monotonic() + timeout_s
    while True:
        logs = [p for p in (repo / "runs").glob(f"{MODEL}-*/metrics.jsonl") if p not in before]
        steps = [json.loads(line).get("step", 0) for p in logs for line in p.read_text().splitlines() if line]
        if steps and max(steps) >= 100:
            break
        assert time.monotonic() < deadline, "the training job never logged 100 steps"
        time.sleep(0.5)
    flow_processes = []
    for process in psutil.process_iter():
        try:
            if process.environ().get("PREFECT__FLOW_RUN_ID") == str(run.id):
                flow_processes.append(process)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    assert flow_processes, f"no process runs flow run {run.id}"
    for process in flow_processes:
        process.kill()
    with temporary_settings({PREFECT_API_URL: server.api_url}), get_client(sync_client=True) as client:
        while not (state := client.read_flow_run(run.id).state) or not state.is_final():
            assert time.monotonic() < deadline + 120, f"the killed flow run never ended: {state}"
            time.sleep(1)
        return client.read_flow_run(run.id)


def latest_summary(repo: Path, expected_count: int) -> dict[str, Any]:
    found = sorted((repo / "runs").glob(f"{MODEL}-*/retrain.json"), key=lambda p: p.stat().st_mtime_ns)
    assert len(found) == expected_count, f"expected {expected_count} retrain.json, found {found}"
    return json.loads(found[-1].read_text())


def fire_schedule(server: PrefectServer, parameters: dict[str, Any], worker, timeout_s: float = 300.0) -> Any:
    """Give the deployment an active interval schedule (with the runs' parameters) whose first run is due in a few
    seconds; the server's scheduler creates the run and the worker executes it. Returns that flow run, finished;
    the schedule is removed after."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
    from prefect.client.schemas.schedules import IntervalSchedule
    from prefect.settings import PREFECT_API_URL, temporary_settings

    due = datetime.now(UTC) + timedelta(seconds=10)
    with temporary_settings({PREFECT_API_URL: server.api_url}), get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name(f"retrain/{MODEL}")
        (schedule,) = client.create_deployment_schedules(
            deployment.id,
            [(IntervalSchedule(interval=timedelta(hours=1), anchor_date=due), True)],
            parameters=parameters,
            slug="test-hourly",
        )
        try:
            deadline = time.monotonic() + timeout_s
            while True:
                runs = client.read_flow_runs(
                    deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment.id]))
                )
                fired = [r for r in runs if r.auto_scheduled and r.state and r.state.is_final()]
                if fired:
                    return fired[0]
                assert time.monotonic() < deadline, (
                    f"no scheduled run finished in {timeout_s:.0f} s: {[(r.name, r.state_name) for r in runs]}\n"
                    f"--- worker ---\n{worker.output()}"
                )
                time.sleep(2)
        finally:
            client.delete_deployment_schedule(deployment.id, schedule.id)


def test_deploy_all_declares_every_preset_with_inactive_schedules(smoke_runs: SmokeRuns) -> None:
    listed = smoke_runs.server.cli("deployment", "ls", cwd=smoke_runs.repo).stdout
    for name in DEPLOYMENTS - {"reproduce", "ablations"}:
        assert f"retrain/{name}" in listed, listed
    assert "reproduce/reproduce" in listed and "study/ablations" in listed, listed
    inspected = smoke_runs.server.cli("deployment", "inspect", "retrain/smoke", cwd=smoke_runs.repo).stdout
    assert "'active': False" in inspected and "'active': True" not in inspected
    assert f"'directory': '{smoke_runs.repo}'" in inspected  # the pull step points at the checkout that deployed
    declared = yaml.safe_load((smoke_runs.repo / "prefect.yaml").read_text())
    assert {d["name"] for d in declared["deployments"]} == DEPLOYMENTS


def test_published_model_loads_verified_and_solves_what_it_claims(
    smoke_runs: SmokeRuns, monkeypatch, tmp_path: Path
) -> None:
    import torch

    import trm
    from trm.data.loader import PuzzleDataset
    from trm.evaluate.inference import evaluate
    from trm.store import ModelStore

    for key, value in smoke_runs.s3_env.items():
        monkeypatch.setenv(key, value)
    first = smoke_runs.summaries[0]
    store = ModelStore.open(smoke_runs.store_url)
    assert store.versions(MODEL) == [1, 2, 3]  # run 1, the forced rerun, the run after a kill (the schedule: none)
    manifest = store.manifest(MODEL, 1)
    lock = yaml.safe_load((smoke_runs.repo / "dvc.lock").read_text())["stages"][STAGE]
    assert manifest.data is not None and manifest.data.stage == STAGE
    assert [o.md5 for o in manifest.data.outs] == [o["md5"] for o in lock["outs"]] == [first["data"]["md5"]]
    assert manifest.ray_run_name == first["train"]["run_name"] and manifest.git.commit
    assert manifest.config["train"]["max_steps"] == 400 and set(OVERRIDES) <= set(manifest.extra["overrides"])
    assert manifest.extra["workers"] == 2

    model, config = trm.load_model(f"{smoke_runs.store_url}#{MODEL}:1")  # downloads and verifies every sha256
    dataset = PuzzleDataset.open(smoke_runs.repo / "data" / STAGE, "test")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the flow evaluates with one thread too
    try:
        result = evaluate(model, dataset, config.eval.batch_size, mode="fixed")
    finally:
        torch.set_num_threads(threads)
    claimed = manifest.metrics
    assert result.metrics["count"] == claimed["fixed/count"] == len(dataset)
    assert result.metrics["exact_accuracy"] == pytest.approx(claimed["fixed/exact_accuracy"], abs=1e-9)
    assert result.metrics["accuracy"] == pytest.approx(claimed["fixed/accuracy"], abs=1e-6)
    assert claimed["fixed/accuracy"] > 0.5  # it learned something: 4x4 Sudoku tokens are 25 % at chance

    # chosen on validation (its step's numbers are recorded), measured once on test; the card shows both
    selection = manifest.selection
    assert selection is not None and (selection["rule"], selection["split"]) == ("best", "val"), selection
    assert selection["step"] in (200, 400) and selection["metric"] == "fixed/exact_accuracy"  # evaluation steps
    val_split = PuzzleDataset.open(smoke_runs.repo / "data" / STAGE, "val")
    val_exact = evaluate(model, val_split, config.eval.batch_size).metrics["exact_accuracy"]
    assert val_exact == pytest.approx(selection["metrics"]["fixed/exact_accuracy"], abs=0.011)
    _, folder = store.download(f"{MODEL}:1", tmp_path / "card")
    card = Path(folder) / "README.md"
    text = card.read_text()
    assert f"| metric | val (step {selection['step']}) | test |" in text and "Selected: step" in text


def test_second_run_reproduces_data_and_metrics_without_rebuilding(smoke_runs: SmokeRuns, monkeypatch) -> None:
    from trm.store import ModelStore, diff_manifests

    first, second = smoke_runs.summaries[:2]
    assert first["data"]["stages_ran"] == [STAGE]  # fresh copy: the first run built the data
    assert second["data"]["stages_ran"] == []  # dvc repro ran nothing the second time
    assert smoke_runs.fingerprints[0] == smoke_runs.fingerprints[1]  # same bytes, not even rewritten (mtimes)
    assert second["data"]["md5"] == first["data"]["md5"]
    assert second["metrics"] == first["metrics"]
    for key, value in smoke_runs.s3_env.items():
        monkeypatch.setenv(key, value)
    store = ModelStore.open(smoke_runs.store_url)
    old, new = store.manifest(MODEL, 1), store.manifest(MODEL, 2)
    assert old.metrics == new.metrics and old.data == new.data
    differences = diff_manifests(old, new)
    assert set(differences) <= RUN_IDENTITY_KEYS, f"unexplained differences between the runs: {differences}"
    assert differences["ray_run_name"] == (first["train"]["run_name"], second["train"]["run_name"])


def test_each_run_leaves_metrics_curve_and_model_link_artifacts(smoke_runs: SmokeRuns) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.settings import PREFECT_API_URL, temporary_settings

    keys = [f"{MODEL}-metrics", f"{MODEL}-training-curve", f"{MODEL}-model"]
    with temporary_settings({PREFECT_API_URL: smoke_runs.server.api_url}), get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=keys)))
    by_key: dict[str, list] = {}
    for artifact in artifacts:
        by_key.setdefault(artifact.key, []).append(artifact)
    assert {k: len(v) for k, v in by_key.items()} == dict.fromkeys(keys, 3)  # one of each per published run
    tables = sorted(str(a.data) for a in by_key[f"{MODEL}-metrics"])
    md5 = smoke_runs.summaries[0]["data"]["md5"]
    assert all(md5 in table and "fixed/exact_accuracy" in table for table in tables)
    assert any("none (up to date)" in table for table in tables)
    assert all("data:image/png;base64," in str(a.data) for a in by_key[f"{MODEL}-training-curve"])
    links = {str(a.data) for a in by_key[f"{MODEL}-model"]}
    assert {f"{smoke_runs.store_url}/models/{MODEL}/{v}/README.md" for v in (1, 2)} <= {
        link.split("](")[-1].rstrip(")") if "](" in link else link for link in links
    }


def test_bad_parameters_end_the_run_in_one_line_before_any_work(smoke_runs: SmokeRuns) -> None:
    """A wrong preset or dataset fails the flow run at once, with the problem as the one-line state message; a value
    the flow's signature forbids (workers=0) is refused by Prefect before a run exists. Nothing is left behind."""
    for label, run in smoke_runs.bad_runs.items():
        assert run.returncode != 0, f"{label}: the deployment run did not fail:\n{run.output[-2000:]}"
        assert not run.left_behind, f"{label}: left behind {run.left_behind}"
    refused = smoke_runs.bad_runs["zero workers"]
    assert refused.flow_run_messages == [] and "workers" in refused.output
    for label, words in (("unknown preset", "unknown preset 'nope'"), ("unknown dataset", "dataset 'nope' has no DVC")):
        (message,) = smoke_runs.bad_runs[label].flow_run_messages
        assert words in message and "\n" not in message and "Traceback" not in message, f"{label}: {message!r}"


def test_an_active_schedule_fires_a_run_that_finds_the_model_up_to_date(smoke_runs: SmokeRuns) -> None:
    """The scheduler (not a `deployment run`) created the run, the worker finished it, and because code, data,
    config, lock file and workers equal those of the latest version, it trained nothing and published nothing."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.settings import PREFECT_API_URL, temporary_settings

    run = smoke_runs.scheduled
    assert run.auto_scheduled and run.state.is_completed(), (run.name, run.state)
    skipped = smoke_runs.summaries[2]
    assert skipped["up_to_date"] == f"{MODEL}:2" and skipped["train"] is None
    assert skipped["fingerprint"] == smoke_runs.summaries[1]["fingerprint"] == smoke_runs.summaries[0]["fingerprint"]
    with temporary_settings({PREFECT_API_URL: smoke_runs.server.api_url}), get_client(sync_client=True) as client:
        notes = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[f"up-to-date-{MODEL}"]))
        )
    assert [str(a.flow_run_id) for a in notes] == [str(run.id)] and f"up to date: {MODEL}:2" in str(notes[0].data)
    print(f"scheduled run skipped as up to date in {run.total_run_time.total_seconds():.1f} s of flow run time")


def test_a_flow_killed_mid_training_leaves_its_job_running_and_the_next_run_reattaches(
    smoke_runs: SmokeRuns, monkeypatch
) -> None:
    """SIGKILL of the flow process did not stop training (a Ray job on the local head); the next deployment run
    with the same inputs re-attached to that job instead of submitting another, and published weights equal to
    those of the uninterrupted run with the same inputs (smoke:2)."""
    from trm.distributed.head import read_head
    from trm.distributed.job import TrainJobs
    from trm.store import ModelStore

    assert smoke_runs.killed.state.is_crashed() or smoke_runs.killed.state.is_failed(), smoke_runs.killed.state
    resumed = smoke_runs.summaries[3]
    key = f"trm-{Path(resumed['run_dir']).name}"
    head = read_head()
    assert head is not None
    attempts = TrainJobs(head.dashboard_url).attempts(key)
    assert [(job.submission_id, job.status) for job in attempts] == [(key, "SUCCEEDED")]  # one job, never resubmitted
    for name, value in smoke_runs.s3_env.items():
        monkeypatch.setenv(name, value)
    store = ModelStore.open(smoke_runs.store_url)
    assert store.versions(MODEL) == [1, 2, 3]
    uninterrupted, after_kill = store.manifest(MODEL, 2), store.manifest(MODEL, 3)
    assert after_kill.files["model.safetensors"] == uninterrupted.files["model.safetensors"]
    assert after_kill.metrics == uninterrupted.metrics
