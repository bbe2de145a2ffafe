"""A publishing process SIGKILLed midway leaves no visible version, and the next publish succeeds."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from trm.store import ModelStore, PublishRequest

from .conftest import make_export
from .publish_with_pauses import pause_after_each_upload

DRIVER = Path(__file__).with_name("publish_with_pauses.py")


def _wait_for(predicate, timeout: float, what: str, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if process.poll() is not None:
            raise AssertionError(
                f"publisher exited early ({process.returncode}) before {what}: "
                f"{process.stderr.read().decode() if process.stderr else ''}"
            )
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_killed_publish_leaves_no_version(store_url: str, exported: Path, tmp_path: Path) -> None:
    store = ModelStore.open(store_url)
    store.publish(PublishRequest(name="victim", model_dir=exported))  # version 1 exists and must survive untouched
    version_dir = store.location.join("models", "victim", "2")
    fs = store.location.fs
    # the real publish in another process, sleeping 60 s after each uploaded file: the kill lands in a pause
    process = subprocess.Popen(
        [sys.executable, str(DRIVER), store_url, "victim", str(make_export(tmp_path / "v2", seed=2)), "60"],
        env=dict(os.environ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        _wait_for(lambda: fs.exists(f"{version_dir}/model.safetensors"), 60, "the first file of version 2", process)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL
    assert fs.exists(f"{version_dir}/model.safetensors")  # really killed midway: some files are there...
    assert not fs.exists(f"{version_dir}/manifest.json")  # ...but not the manifest
    assert not fs.exists(f"{version_dir}/README.md") and not fs.exists(f"{version_dir}/config.json")

    fresh = ModelStore.open(store_url)
    assert fresh.versions("victim") == [1]
    assert [row.version for row in fresh.list()] == [1]
    assert fresh.aliases("victim") == {"latest": 1}
    assert fresh.resolve("victim") == 1

    redo = fresh.publish(PublishRequest(name="victim", model_dir=make_export(tmp_path / "v3", seed=4)))
    assert redo.version == 3  # the killed publisher still holds a fresh claim on 2: never write into it
    assert fresh.versions("victim") == [1, 3] and fresh.aliases("victim") == {"latest": 3}
    _, folder = fresh.download("victim:3", tmp_path / "dl")
    assert (folder / "model.safetensors").read_bytes() == (tmp_path / "v3" / "model.safetensors").read_bytes()
    fresh.download("victim:1", tmp_path / "dl1")  # the old version still verifies
    assert not fs.exists(store.location.join("models", "victim", "3", ".claim.json"))  # released after commit

    # once the claim is stale (here: any age) the abandoned folder is removed by the next publish
    patient = ModelStore.open(store_url, stale_after_s=0)
    assert patient.publish(PublishRequest(name="victim", model_dir=exported)).version == 4
    assert not fs.exists(version_dir + "/model.safetensors")
    assert patient.versions("victim") == [1, 3, 4]


def test_concurrent_publishers_get_distinct_versions(store_url: str, tmp_path: Path) -> None:
    exports = [make_export(tmp_path / f"e{i}", seed=i) for i in range(3)]
    store = ModelStore.open(store_url)
    with pause_after_each_upload(0.05), ThreadPoolExecutor(3) as pool:  # the publishers' uploads overlap
        versions = sorted(
            m.version for m in pool.map(lambda e: store.publish(PublishRequest(name="race", model_dir=e)), exports)
        )
    assert versions == [1, 2, 3]
    assert store.aliases("race") == {"latest": 3}
    weights = set()
    for version in versions:
        manifest, _ = store.download(f"race:{version}", tmp_path / f"dl{version}")  # every version verifies
        weights.add(manifest.files["model.safetensors"].sha256)
    assert len(weights) == 3


def test_leftovers_are_invisible_and_cleaned(store_url: str, exported: Path) -> None:
    """All files but the manifest (the worst case of a kill) and no live claim: not listed, then cleaned and the
    number reused."""
    store = ModelStore.open(store_url)
    fs = store.location.fs
    leftovers = store.location.join("models", "half", "1")
    fs.makedirs(leftovers, exist_ok=True)
    for name in ("model.safetensors", "config.json", "metrics.json", "training_curve.png", "README.md", "junk.bin"):
        fs.pipe_file(f"{leftovers}/{name}", b"partial")
    assert store.versions("half") == [] and store.names() == [] and store.list() == []
    assert store.publish(PublishRequest(name="half", model_dir=exported)).version == 1
    assert not fs.exists(f"{leftovers}/junk.bin")
    assert store.versions("half") == [1]


def test_a_cleanup_during_a_local_claim_leaves_the_claim_alone(tmp_path: Path, monkeypatch) -> None:
    """CI found this race: publisher B's cleanup of abandoned folders ran while A was between staging its claim and
    linking it, saw a folder with a file but no claim, and deleted it under A. Here the link is slowed (the OS
    call only) so B's cleanup lands inside A's claim window every time."""
    exports = [make_export(tmp_path / f"e{i}", seed=i) for i in range(2)]
    store = ModelStore.open(str(tmp_path / "store"))
    link = os.link

    def slow_link(source: object, target: object) -> None:
        time.sleep(0.3)
        link(source, target)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "link", slow_link)
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(store.publish, PublishRequest(name="window", model_dir=exports[0]))
        time.sleep(0.1)  # A is inside its claim's link now
        second = pool.submit(store.publish, PublishRequest(name="window", model_dir=exports[1]))
        versions = sorted([first.result().version, second.result().version])
    assert versions == [1, 2]
    assert store.versions("window") == [1, 2]
