"""Fixtures of the pipeline tests: one Prefect server per session, one project copy per module."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pipeline_services import PrefectServer, copy_project, running_prefect_server


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectServer]:
    with running_prefect_server(tmp_path_factory.mktemp("prefect-home")) as server:
        yield server


@pytest.fixture(scope="module")
def project_copy(tmp_path_factory: pytest.TempPathFactory, shared_datasets: Path) -> Path:
    return copy_project(tmp_path_factory.mktemp("project"), shared_datasets)
