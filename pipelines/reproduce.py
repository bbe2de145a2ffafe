"""Flow `reproduce` (`trm models reproduce NAME:V`, `python -m pipelines.reproduce NAME:V`): retrain a published
version from its manifest and publish the result as a new version that says what it reproduces and how it compares.

The recorded code must be the code that runs. When this checkout is at another commit (or has uncommitted changes)
the reproduction is refused, unless ``at_commit`` builds a git worktree at the recorded commit and runs that
commit's own retrain there (``runs/worktrees/<commit>``, kept for the next reproduction), or ``allow_code_drift``
accepts today's code. The data is rebuilt (or pulled) by DVC and must hash to the recorded md5; the recorded resolved
config, seed and worker count are trained. On CPU with the same worker count the weights come out bit-identical;
elsewhere (GPU kernels, another worker count) the test metrics are compared against ``tolerance``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer
from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from pydantic import BaseModel, Field

from pipelines.artifacts import artifact_key
from pipelines.plan import Infrastructure
from pipelines.project import local_prefect_settings, project_dir, tool_env
from pipelines.reproduction import COMPARISON_KEY, REPRODUCES_KEY, Comparison, RecordedRun, recorded_run
from pipelines.retrain import retrain
from trm.cli.output import OneLineCommand, OneLineErrors, set_debug
from trm.errors import UsageError
from trm.markdown import table
from trm.store import Manifest, ModelRef, ModelStore
from trm.store.lineage import collect_git
from trm.store.location import default_store_url

DEFAULT_TOLERANCE = 0.01  # absolute, on every test metric (a fraction: 0.01 = 1 point of accuracy)


class ReproduceSummary(BaseModel):
    original: str
    reproduction: str  # the new version's URI
    code: str  # how the recorded code was obtained
    comparison: Comparison
    tolerance: float
    verdict: str
    reproduced: bool = Field(description="bit-identical weights, or every metric delta within the tolerance")

    def markdown(self) -> str:
        rows = [(key, f"{delta:+.6f}") for key, delta in sorted(self.comparison.metric_deltas.items())]
        return (
            f"# Reproduction of {self.original}\n\n- new version: `{self.reproduction}`\n- code: {self.code}\n"
            f"- data md5: {self.comparison.data_md5}\n- verdict: **{self.verdict}**\n\n"
            f"{table(['test metric', 'reproduction - original'], rows)}\n"
        )


def code_source(recorded: RecordedRun, repo: Path, at_commit: bool, allow_code_drift: bool) -> str:
    """'checkout', 'worktree' or 'drift'; refuses (``UsageError``) when the code would silently differ."""
    here = collect_git(repo)
    if recorded.commit and here.commit == recorded.commit and here.dirty is False and not recorded.commit_was_dirty:
        return "checkout"
    if at_commit and recorded.commit and not recorded.commit_was_dirty:
        return "worktree"
    if allow_code_drift:
        return "drift"
    if recorded.commit_was_dirty or not recorded.commit:
        why = "was trained from a checkout with uncommitted changes" if recorded.commit else "records no commit"
        raise UsageError(f"{recorded.reference} {why}: its code cannot be checked out; pass --allow-code-drift")
    state = f"{(here.commit or 'unknown')[:12]}{' with uncommitted changes' if here.dirty else ''}"
    raise UsageError(
        f"{recorded.reference} was trained at commit {recorded.commit[:12]}, this checkout ({repo}) is at {state}; "
        "pass --at-commit to reproduce in a git worktree at the recorded commit, or --allow-code-drift to use this code"
    )


def worktree_at(repo: Path, commit: str) -> Path:
    """A detached git worktree of ``repo`` at ``commit`` under runs/worktrees (reused when it is already there)."""
    folder = repo / "runs" / "worktrees" / commit[:12]
    if not (folder / ".git").exists():
        folder.parent.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            ["git", "-C", str(repo), "worktree", "add", "--detach", str(folder), commit],
            capture_output=True,
            text=True,
            timeout=300,
        )
        if done.returncode != 0:
            raise UsageError(f"cannot create a git worktree at {commit[:12]} in {folder}: {done.stderr.strip()}")
    return folder


def retrain_arguments(recorded: RecordedRun, store_url: str, name: str) -> list[str]:
    """The recorded run as `python -m pipelines.retrain` arguments (what a worktree at an older commit runs)."""
    sets = [arg for override in recorded.overrides for arg in ("--set", override)]
    return [
        *("--preset", recorded.preset, "--dataset", recorded.dataset, "--workers", str(recorded.workers)),
        *sets,
        *("--store", store_url, "--name", name, "--reproduces", recorded.reference),
    ]


def retrain_in_worktree(worktree: Path, arguments: list[str]) -> None:
    """That commit's own code: its retrain command, in its folder, importing its packages first."""
    env = tool_env({"PYTHONPATH": os.pathsep.join([str(worktree), os.environ.get("PYTHONPATH", "")]).rstrip(":")})
    command = [sys.executable, "-m", "pipelines.retrain", *arguments, "--repo-dir", str(worktree)]
    done = subprocess.run(command, cwd=worktree, env=env, capture_output=True, text=True)
    get_run_logger().info("retrain at %s:\n%s", worktree.name, done.stdout[-4000:])
    if done.returncode != 0:
        lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()] or ["no output"]
        raise RuntimeError(f"the retrain in {worktree} failed (exit {done.returncode}): {lines[-1]}")


def plan_reproduction(
    reference: str, store_url: str | None, at_commit: bool, allow_code_drift: bool, repo_dir: str | None
) -> tuple[ModelStore, ModelRef, RecordedRun, Path, str]:
    """The store, the parsed reference, the recorded run, the checkout and where the code comes from; refuses
    before anything starts."""
    store = ModelStore.open(store_url or default_store_url())
    ref = ModelRef.parse(reference)
    recorded = recorded_run(store.manifest(ref.name, store.resolve(ref)))
    repo = project_dir(repo_dir)
    return store, ref, recorded, repo, code_source(recorded, repo, at_commit, allow_code_drift)


def newest_reproduction(store: ModelStore, name: str, reference: str) -> Manifest:
    for version in reversed(store.versions(name)):
        manifest = store.manifest(name, version)
        if manifest.extra.get(REPRODUCES_KEY) == reference:
            return manifest
    raise RuntimeError(f"the retrain finished but {store.url} holds no version of {name} reproducing {reference}")


@flow(name="reproduce", log_prints=True)
def reproduce(
    reference: str,
    store_url: str | None = None,
    at_commit: bool = False,
    allow_code_drift: bool = False,
    tolerance: Annotated[float, Field(ge=0)] = DEFAULT_TOLERANCE,
    repo_dir: str | None = None,
) -> ReproduceSummary:
    """Retrain ``reference`` (NAME:V, NAME@ALIAS) from its manifest in ``store_url`` and publish the reproduction."""
    store, ref, recorded, repo, source = plan_reproduction(reference, store_url, at_commit, allow_code_drift, repo_dir)
    if source == "worktree":
        assert recorded.commit is not None  # code_source checked it
        retrain_in_worktree(worktree_at(repo, recorded.commit), retrain_arguments(recorded, store.url, ref.name))
    else:
        retrain(
            preset=recorded.preset,
            dataset=recorded.dataset,
            overrides=recorded.overrides,
            workers=recorded.workers,
            store_url=store.url,
            model_name=ref.name,
            infrastructure=Infrastructure(repo_dir=str(repo)),
            reproduces=recorded.reference,
        )
    new = newest_reproduction(store, ref.name, recorded.reference)
    comparison = Comparison.model_validate(new.extra[COMPARISON_KEY])
    reproduced = comparison.weights_identical or comparison.largest_delta() <= tolerance
    summary = ReproduceSummary(
        original=recorded.reference,
        reproduction=f"{store.url}#{new.name}:{new.version}",
        code={"checkout": "this checkout", "worktree": "git worktree at the recorded commit"}.get(
            source, "this checkout's code, which differs from the recorded commit (--allow-code-drift)"
        )
        + f" ({(new.git.commit or '')[:12]})",
        comparison=comparison,
        tolerance=tolerance,
        verdict=comparison.verdict(tolerance),
        reproduced=reproduced,
    )
    create_markdown_artifact(summary.markdown(), key=artifact_key("reproduction", ref.name))
    return summary


cli = typer.Typer(cls=OneLineErrors, add_completion=False, rich_markup_mode=None, pretty_exceptions_enable=False)


@cli.command(cls=OneLineCommand)
def command(
    reference: Annotated[str, typer.Argument(help="NAME:VERSION or NAME@ALIAS of a published model")],
    store: Annotated[str | None, typer.Option(help="store URL (default $TRM_STORE, else ./artifacts)")] = None,
    at_commit: Annotated[bool, typer.Option("--at-commit", help="run the recorded commit in a git worktree")] = False,
    allow_code_drift: Annotated[
        bool, typer.Option("--allow-code-drift", help="reproduce with this checkout's code even if it differs")
    ] = False,
    tolerance: Annotated[float, typer.Option(min=0, help="largest metric delta accepted without equal weights")] = (
        DEFAULT_TOLERANCE
    ),
    repo_dir: Annotated[str | None, typer.Option(help="project checkout (default: this one)")] = None,
    debug: Annotated[bool, typer.Option("--debug", help="show the traceback of a failure")] = False,
) -> None:
    """Reproduce a published model; exit 1 when the result is neither bit-identical nor within the tolerance."""
    set_debug(debug)
    plan_reproduction(reference, store, at_commit, allow_code_drift, repo_dir)  # refuse before Prefect starts
    with local_prefect_settings():
        summary = reproduce(reference, store, at_commit, allow_code_drift, tolerance, repo_dir)
    print(f"\n{summary.markdown()}")
    if not summary.reproduced:
        raise typer.Exit(1)


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
