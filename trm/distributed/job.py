"""Training submitted as a Ray job (the Ray Jobs API), so that it outlives the process that asked for it.

The job's driver runs on the Ray head, not in the caller: killing the caller (a Prefect flow run, its worker)
leaves training running. Jobs are named by the caller's key plus an attempt number; a later caller with the same
key finds the latest attempt and re-attaches to it while it runs, takes its result when it finished, or submits the
next attempt when it failed or was stopped. Every attempt trains under the same Ray run name and storage, so a new
attempt resumes from the last checkpoint instead of starting over.

As a module (`python -m trm.distributed.job SPEC`) this is the job's driver: it trains the spec and prints the
result on one marked line, which the caller reads back from the job's logs (so no shared folder is needed). SPEC is
``@PATH`` of the spec's JSON on a local head (the run folder; readable in the job's log line), else the spec inline.
"""

from __future__ import annotations

import base64
import os
import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from ray.job_submission import JobDetails, JobStatus, JobSubmissionClient

from trm.atomic import atomic_write_text
from trm.config import TRMConfig
from trm.distributed.train_job import RayScaling, RayTrainResult, run_ray_training

RESULT_MARKER = "TRM_RAY_TRAIN_RESULT "
# environment a job's driver and workers get from the caller: data, store and S3 settings, Ray tuning
PASSED_ENV_PREFIXES = ("TRM_", "AWS_", "RAY_TRAIN_", "TORCH_", "OMP_")
ACTIVE = {JobStatus.PENDING, JobStatus.RUNNING}


class RayJobError(RuntimeError):
    """A training job failed or was stopped; the message ends with its last log lines."""


class TrainJobSpec(BaseModel):
    """Everything the job's driver needs, passed inline in its entrypoint."""

    config: dict[str, Any]
    scaling: RayScaling
    storage: str
    name: str

    def encoded(self) -> str:
        return base64.urlsafe_b64encode(self.model_dump_json().encode()).decode()

    @classmethod
    def decode(cls, text: str) -> TrainJobSpec:
        if text.startswith("@"):
            return cls.model_validate_json(Path(text[1:]).read_text())
        return cls.model_validate_json(base64.urlsafe_b64decode(text.encode()))


def reusable(job: JobDetails) -> bool:
    """An attempt a new caller should follow instead of submitting another: still running, or finished well."""
    return job.status in ACTIVE or job.status == JobStatus.SUCCEEDED


def attempt_id(key: str, attempt: int) -> str:
    return key if attempt == 0 else f"{key}-attempt-{attempt}"


class TrainJobs:
    """The Jobs API of one cluster (a local head's dashboard URL, or any address Ray's job client accepts)."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.client = JobSubmissionClient(address)

    def attempts(self, key: str) -> list[JobDetails]:
        """Every job submitted under ``key``, oldest first."""
        ids = {attempt_id(key, n) for n in range(100)}
        found = [job for job in self.client.list_jobs() if job.submission_id in ids]
        return sorted(found, key=lambda job: job.start_time or 0)

    def submit(self, key: str, spec: TrainJobSpec, workdir: str | None, attempt: int) -> str:
        """Submit attempt ``attempt`` of ``key``; ``workdir`` (a folder the head can see, i.e. a local head) is where
        the driver runs and what it imports first (a git worktree's code stays its own)."""
        env = {k: v for k, v in os.environ.items() if k.startswith(PASSED_ENV_PREFIXES)}
        entrypoint = f"python -m trm.distributed.job {spec.encoded()}"
        if workdir:  # the head shares this machine's disk: the spec goes into the run folder (absolute)
            run = spec.config["run"]
            spec_file = Path(run["output_dir"]) / run["name"] / f"{attempt_id(key, attempt)}.json"
            atomic_write_text(spec_file, spec.model_dump_json())
            command = f"{shlex.quote(sys.executable)} -m trm.distributed.job {shlex.quote('@' + str(spec_file))}"
            entrypoint = f"cd {shlex.quote(workdir)} && {command}"
            env["PYTHONPATH"] = os.pathsep.join(p for p in (workdir, os.environ.get("PYTHONPATH")) if p)
        return self.client.submit_job(
            entrypoint=entrypoint, submission_id=attempt_id(key, attempt), runtime_env={"env_vars": env}
        )

    def wait(self, submission_id: str, say: Callable[[str], None], poll_s: float = 2.0) -> RayTrainResult:
        """Follow the job to its end, handing each new log line to ``say``; its result, or ``RayJobError``."""
        shown = 0
        while True:
            status = self.client.get_job_status(submission_id)
            logs = self.client.get_job_logs(submission_id)
            for line in logs[shown:].splitlines():
                if not line.startswith(RESULT_MARKER):
                    say(line)
            shown = len(logs)
            if status not in ACTIVE:
                return _result_of(submission_id, status, logs)
            time.sleep(poll_s)


def _result_of(submission_id: str, status: JobStatus, logs: str) -> RayTrainResult:
    lines = logs.splitlines()
    results = [line[len(RESULT_MARKER) :] for line in lines if line.startswith(RESULT_MARKER)]
    if status == JobStatus.SUCCEEDED and results:
        return RayTrainResult.model_validate_json(results[-1])
    tail = " | ".join(line for line in lines[-8:] if line.strip())
    raise RayJobError(f"Ray job {submission_id} ended {status.value}: {tail or 'no log output'}")


def main(encoded: str) -> None:
    """The job's driver: train the spec on the cluster this job runs in ($RAY_ADDRESS, set by Ray)."""
    spec = TrainJobSpec.decode(encoded)
    config = TRMConfig.model_validate(spec.config)
    result = run_ray_training(config, scaling=spec.scaling, storage=spec.storage, name=spec.name)
    print(RESULT_MARKER + result.model_dump_json(), flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
