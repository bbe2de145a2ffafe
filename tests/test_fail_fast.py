"""Fail fast: a wrong parameter, or a service the run will need that cannot serve it, ends every command with one
`error:` line and a non-zero exit (2 for a usage error, 1 for a failed preflight), without a traceback, within a
bounded time, and before anything started: no Ray, no data build, no run folder, no store object.

Each row runs the real command in a child process, as a user would (`python -m pipelines.retrain`, `trm ...`), in
an environment whose data root, run folder and store are empty temporary folders checked afterwards."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
TIME_LIMIT_S = 120.0  # what "fails fast" means here: a few import-bound seconds, never Ray's silent wait
RETRAIN = [sys.executable, "-m", "pipelines.retrain"]
TRM = [sys.executable, "-m", "trm.cli"]

# (id, command, extra args, exit code, words the one line must contain)
ROWS = [
    ("retrain-unknown-preset", RETRAIN, ["--preset", "nope"], 2, "unknown preset 'nope'"),
    ("retrain-unknown-dataset", RETRAIN, ["--dataset", "nope"], 2, "dataset 'nope' has no DVC stage"),
    ("retrain-unknown-space", RETRAIN, ["--tune", "--tune-space", "nope"], 2, "unknown search space 'nope'"),
    ("retrain-zero-workers", RETRAIN, ["--workers", "0"], 2, "--workers"),
    ("retrain-uneven-batch", RETRAIN, ["--workers", "3"], 2, "does not split over 3 worker(s)"),
    ("retrain-too-many-workers", RETRAIN, ["--workers", "8"], 2, "need 8 CPUs; this machine has"),
    ("retrain-bad-model-name", RETRAIN, ["--name", "../x"], 2, "invalid model name '../x'"),
    ("retrain-bad-override", RETRAIN, ["--set", "train.nope=1"], 2, "unknown key 'nope' in train"),
    ("retrain-bad-ray-address", RETRAIN, ["--ray-address", "no port"], 2, "ray_address 'no port'"),
    (
        "retrain-dead-ray-address",
        RETRAIN,
        ["--ray-address", "127.0.0.1:{dead_port}"],
        1,
        "Ray cluster 127.0.0.1:{dead_port} does not answer",
    ),
    ("retrain-unsupported-store", RETRAIN, ["--store", "ftp://host/x"], 2, "unsupported store URL"),
    (
        "retrain-store-without-credentials",
        RETRAIN,
        ["--store", "s3://no-such-bucket/x"],
        1,
        "artifact store s3://no-such-bucket/x",
    ),
    ("train-unknown-preset", TRM, ["train", "--preset", "nope"], 2, "unknown preset 'nope'"),
    ("train-bad-value", TRM, ["train", "--preset", "smoke", "--set", "train.lr=abc"], 2, "train.lr"),
    (
        "train-missing-dataset",
        TRM,
        ["train", "--preset", "smoke", "--set", "data.name=/nonexistent/set"],
        2,
        "/nonexistent/set",
    ),
    (
        "train-ray-too-many-workers",
        TRM,
        ["train", "--preset", "smoke", "--ray", "--workers", "8"],
        2,
        "need 8 CPUs; this machine has",
    ),
    (
        "train-ray-dead-address",
        TRM,
        ["train", "--preset", "smoke", "--ray", "--address", "ray://127.0.0.1:{dead_port}"],
        1,
        "does not answer",
    ),
    ("tune-unknown-space", TRM, ["tune", "--preset", "smoke", "--space", "nope"], 2, "unknown search space"),
    (
        "tune-trial-too-big",
        TRM,
        ["tune", "--preset", "smoke", "--space", "{big_space}"],
        2,
        "need 7.21 CPUs; this machine has",
    ),
    ("evaluate-missing-model", TRM, ["evaluate", "/nonexistent/export"], 2, "/nonexistent/export"),
    ("evaluate-unknown-mode", TRM, ["evaluate", "/nonexistent/export", "--mode", "sometimes"], 2, "--mode"),
    ("models-missing-version", TRM, ["models", "show", "smoke:7", "--store", "{store}"], 1, "smoke:7 does not exist"),
    (
        "models-bad-alias",
        TRM,
        ["models", "promote", "smoke", "1", "Prod", "--store", "{store}"],
        2,
        "invalid alias 'Prod'",
    ),
    ("models-unsupported-store", TRM, ["models", "list", "--store", "ftp://host/x"], 2, "unsupported store URL"),
    ("trm-unknown-option", TRM, ["train", "--preset", "smoke", "--epochz", "3"], 2, "No such option: --epochz"),
]


def files_below(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []


@pytest.fixture(scope="module")
def big_space(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("spaces") / "big.yaml"
    path.write_text("space:\n  train.lr: {choice: [0.001]}\nsearch:\n  workers_per_trial: 8\n  cpus_per_worker: 0.9\n")
    return path


@pytest.fixture(scope="module")
def dead_port() -> int:
    """A local port nothing listens on: bound, then released (a Ray address that does not answer)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# Rows run once more at a narrow terminal width (scripts/test.sh): one per way an error line is printed (click's
# usage error, our one-line handler in the retrain command and in `trm`, a store error), not all of them: every row
# of a kind goes through the same printing code, and each retrain row costs a Prefect and Ray import (~7 s).
NARROW = {"retrain-zero-workers", "retrain-unknown-preset", "trm-unknown-option", "models-missing-version"}
PARAMS = [pytest.param(*row, id=row[0], marks=[pytest.mark.cli] if row[0] in NARROW else []) for row in ROWS]


@pytest.mark.parametrize(("row", "command", "args", "code", "words"), PARAMS)
def test_bad_input_fails_fast_in_one_line_and_starts_nothing(
    row: str,
    command: list[str],
    args: list[str],
    code: int,
    words: str,
    tmp_path: Path,
    big_space: Path,
    dead_port: int,
) -> None:
    data, runs, store, ray_tmp = tmp_path / "data", tmp_path / "runs", tmp_path / "store", tmp_path / "ray"
    ray_tmp.mkdir()
    args = [a.format(store=store, big_space=big_space, dead_port=dead_port) for a in args]
    words = words.format(dead_port=dead_port)
    if command is TRM and args[0] in ("train", "tune"):
        args += ["--set", f"run.output_dir={runs}"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and k not in ("TRM_DEBUG", "RAY_ADDRESS")}
    env.update(
        TRM_DATA=str(data),
        TRM_STORE=str(store),
        TRM_RAY_TMPDIR=str(ray_tmp),
        PYTHONPATH=str(REPO),
        AWS_EC2_METADATA_DISABLED="true",
    )
    repo_runs_before = set((REPO / "runs").glob("*")) if (REPO / "runs").exists() else set()

    started = time.monotonic()
    done = subprocess.run(
        [*command, *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIME_LIMIT_S,
        stdin=subprocess.DEVNULL,
    )
    seconds = time.monotonic() - started

    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    assert done.returncode == code, f"{row}: exit {done.returncode} after {seconds:.0f} s:\n" + "\n".join(lines)
    assert len(lines) == 1 and lines[0].startswith("error: "), f"{row}: expected one error line, got:\n" + "\n".join(
        lines
    )
    assert words in lines[0], f"{row}: {lines[0]!r} does not name the problem ({words!r})"
    assert "Traceback" not in done.stderr
    assert not files_below(data) and not runs.exists(), f"{row}: data was built or a run folder written"
    assert not files_below(store), f"{row}: the store was written to: {files_below(store)}"
    assert not any(ray_tmp.iterdir()), f"{row}: a local Ray was started"
    now_runs = set((REPO / "runs").glob("*")) if (REPO / "runs").exists() else set()
    assert now_runs <= repo_runs_before, f"{row}: a retrain run folder was created: {now_runs - repo_runs_before}"


def test_the_table_covers_every_command_family() -> None:
    families = {((c is RETRAIN) and "retrain") or a[0] for _, c, a, _, _ in ROWS}
    assert {"retrain", "train", "tune", "evaluate", "models"} <= families and len(ROWS) >= 15
