"""Fixtures for the Ray tests: the smoke dataset built once per session in a temp data root, and a private local
Ray (own temp dir, 2 CPUs, shut down after the module). Helpers live in ray_fixtures.py (importable by path)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ray_fixtures import build_smoke_data


@pytest.fixture(scope="session")
def smoke_data_root(tmp_path_factory) -> Path:
    """A data root holding the smoke preset's dataset (built with the real builder)."""
    return build_smoke_data(tmp_path_factory.mktemp("ray-data"))


@pytest.fixture(scope="module")
def local_ray() -> Iterator:
    """One real local Ray per test module (2 CPUs like CI), with its own temp dir; stopped afterwards."""
    from trm.distributed.cluster import connect

    session = connect(num_cpus=2)
    try:
        yield session
    finally:
        session.close()
