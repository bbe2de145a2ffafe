"""`prepare_data` with a DVC remote, against a real Prefect server: the first checkout builds the stage and pushes
it; a second checkout of the same commit (with the first one's dvc.lock, as after a git pull) pulls the data
instead of rebuilding it and names it by the same hash."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pipeline_services import PrefectServer, copy_project

pytestmark = pytest.mark.timeout(400)
STAGE = "sudoku-4x4"


def add_remote(repo: Path, folder: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "dvc", "remote", "add", "--default", "shared", str(folder)],
        cwd=repo,
        check=True,
        capture_output=True,
        timeout=120,
    )


def test_second_checkout_pulls_instead_of_rebuilding(
    prefect_server: PrefectServer, tmp_path: Path, shared_datasets: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from pipelines.prepare_data import DvcError, prepare_data

    remote = tmp_path / "dvc-remote"
    first = copy_project(tmp_path / "machine-a", shared_datasets)
    second = copy_project(tmp_path / "machine-b", shared_datasets)
    for repo in (first, second):
        add_remote(repo, remote)
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}:{__import__('os').environ['PATH']}")
    with temporary_settings({PREFECT_API_URL: prefect_server.api_url}):
        built = prepare_data(STAGE, repo_dir=str(first))
        assert built.stages_ran == [STAGE] and built.remote == "shared" and built.pushed
        assert any(remote.rglob("*")), "dvc push left nothing in the remote"

        shutil.copy2(first / "dvc.lock", second / "dvc.lock")  # what a commit + pull of dvc.lock would do
        pulled = prepare_data(STAGE, repo_dir=str(second))
        assert pulled.stages_ran == [] and pulled.pulled  # the data came from the remote, nothing was rebuilt
        assert pulled.md5 == built.md5
        names = sorted(p.name for p in (second / "data" / STAGE).iterdir())
        assert names == sorted(p.name for p in (first / "data" / STAGE).iterdir())
        for name in names:
            assert (second / "data" / STAGE / name).read_bytes() == (first / "data" / STAGE / name).read_bytes()

        with pytest.raises(DvcError, match="no DVC stage"):
            prepare_data("no-such-dataset", repo_dir=str(second))
