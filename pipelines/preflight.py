"""Before the first expensive stage, check what the run will need at its end: the store takes writes, the DVC
remote answers, the Ray cluster answers and can host the workers. A failure is one ``PreflightError`` line naming
the service, its URL (secrets redacted) and the fix; the run has not built data or trained anything yet."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable

from pipelines.plan import RetrainPlan
from pipelines.prepare_data import default_remote
from pipelines.project import run_tool
from pipelines.tune import resolve_space
from trm.distributed.capacity import TRAINABLE_CPU, Demand, ensure_capacity, starts_local_ray, wait_for_capacity
from trm.distributed.cluster import ray_session
from trm.distributed.train_job import RayScaling
from trm.errors import PreflightError, UsageError
from trm.store import ModelStore, StoreError, redact

REMOTE_TIMEOUT_S = 300.0


def check_store(url: str) -> None:
    """Write and delete a probe object with the credentials the publish will use."""
    try:
        ModelStore.open(url).check_writable()
    except Exception as error:  # noqa: BLE001 - StoreError, or what the S3 client raises (e.g. NoCredentialsError)
        why = str(error) if isinstance(error, StoreError) else f"{type(error).__name__}: {error}"
        raise PreflightError(
            f"artifact store {redact(url)}: {why} (fix: the store URL, AWS_ENDPOINT_URL and the AWS_* credentials "
            "the workers see, or create the bucket)"
        ) from None


# Asks the remote's own filesystem (as DVC configures it: URL, endpoint, credentials) whether its root exists; a
# missing root is fine (the first push creates it), an exception means the remote does not answer or refuses.
_PROBE_REMOTE = """
import sys
from dvc.repo import Repo
remote = Repo(".").cloud.get_remote(sys.argv[1])
remote.fs.exists(remote.path)
"""


def check_dvc_remote(plan: RetrainPlan) -> None:
    """The DVC remote the data stage pulls from and pushes to must answer."""
    remote = plan.where.dvc_remote or default_remote(plan.repo_dir)
    if remote is None:
        return
    try:
        result = run_tool([sys.executable, "-c", _PROBE_REMOTE, remote], cwd=plan.repo_dir, timeout=REMOTE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise PreflightError(
            f"DVC remote {remote!r} did not answer within {REMOTE_TIMEOUT_S:.0f} s (fix: `dvc remote "
            "list` for its URL, and the credentials in the environment)"
        ) from None
    if result.returncode != 0:
        lines = [line for line in result.output.strip().splitlines() if line.strip()] or ["no answer"]
        raise PreflightError(
            f"DVC remote {remote!r} does not answer: {redact(lines[-1])} (fix: `dvc remote list` "
            "for its URL, and the credentials in the environment)"
        )


def demand_of(plan: RetrainPlan) -> Demand:
    """What one Ray job of the plan needs at once: the Train run, or one Tune trial."""
    if plan.tune is None:
        return RayScaling(workers=plan.workers).demand()
    search = resolve_space(plan.tune.space, plan.preset, plan.tune.trials).search
    return RayScaling(workers=search.workers_per_trial, cpus_per_worker=search.cpus_per_worker).demand(TRAINABLE_CPU)


def check_ray(plan: RetrainPlan, say: Callable[[str], None] = print) -> None:
    """A local Ray is checked against this machine (nothing started); a cluster must answer and grow to fit."""
    demand = demand_of(plan)
    ensure_capacity(demand, plan.where.ray_address)
    if starts_local_ray(plan.where.ray_address):
        return
    try:
        with ray_session(plan.where.ray_address) as session:
            wait_for_capacity(demand, session.address, say=say)
    except (PreflightError, UsageError):
        raise
    except Exception as error:  # noqa: BLE001 - whatever Ray raises when it cannot connect
        raise PreflightError(
            f"Ray cluster {redact(plan.where.ray_address or 'from $RAY_ADDRESS')} does not answer "
            f"({type(error).__name__}: {error}); fix: the address, and that the head is up"
        ) from None


def preflight(plan: RetrainPlan, say: Callable[[str], None] = print) -> None:
    """All three checks, cheapest first."""
    check_store(plan.store_url)
    check_dvc_remote(plan)
    check_ray(plan, say)
