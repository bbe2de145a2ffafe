"""Names cannot escape the store, secrets never leak, and an unreachable S3 endpoint fails clearly after retries."""

from __future__ import annotations

import errno
import logging
import socket
import time
from pathlib import Path

import pytest

from trm.store import InvalidNameError, ModelRef, ModelStore, StoreError, StoreUnavailableError, open_store, redact
from trm.store.manifest import check_name

from .conftest import ACCESS_KEY, SECRET_KEY


@pytest.mark.parametrize("bad", ["../x", "..", "a/b", "/abs", "x/../../y", ".hidden", "a..b", "", "a\\b", "ü", "-x"])
def test_bad_names_rejected(bad: str) -> None:
    with pytest.raises(InvalidNameError):
        check_name(bad)


@pytest.mark.parametrize("good", ["sudoku-4x4", "Maze_Hard.v2", "a", "0"])
def test_good_names_accepted(good: str) -> None:
    assert check_name(good) == good


def test_escaping_name_touches_nothing(store_url: str, exported: Path, tmp_path: Path) -> None:
    store = ModelStore.open(store_url)
    fs, root = store.location.fs, store.location.root
    for call in (
        lambda: store.publish("../x", exported),
        lambda: store.publish("ok", exported, aliases=["../prod"]),
        lambda: store.download("../x:1", tmp_path / "dl"),
        lambda: store.resolve("../../etc@latest"),
        lambda: store.promote("../x", 1, "latest"),
        lambda: ModelRef.parse("a/b:1"),
    ):
        with pytest.raises(InvalidNameError):
            call()
    assert not fs.exists(root)  # nothing was created: not the store root, not a sibling
    assert not fs.exists(root.rsplit("/", 1)[0] + "/x")
    assert not (tmp_path / "dl").exists()


def test_redact_hides_credentials() -> None:
    assert redact("s3://AKIA:topsecret@bucket/p") == "s3://***@bucket/p"
    assert "topsecret" not in redact("https://host/x?X-Amz-Signature=topsecret&secret_key=topsecret&part=1")
    assert redact("https://host/x?part=1") == "https://host/x?part=1"
    assert redact("/plain/path") == "/plain/path"
    with pytest.raises(StoreError, match=r"s3://\*\*\*@bucket/p.*carries credentials") as caught:
        ModelStore.open("s3://AKIA:topsecret@bucket/p")
    assert "topsecret" not in str(caught.value)


def test_secret_never_written_or_printed(s3_env: dict[str, str], s3_server, exported: Path, tmp_path: Path,
                                         caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
                                         ) -> None:
    from typer.testing import CliRunner

    from trm.store.cli import models_app

    bucket = s3_server.new_bucket()
    url = f"s3://{bucket}/models-store"
    caplog.set_level(logging.DEBUG, logger="trm")
    store = ModelStore.open(url)
    store.publish("secret-check", exported, metrics={"exact_accuracy": 1.0})
    store.promote("secret-check", 1, "production")
    store.download("secret-check@production", tmp_path / "dl")
    runner = CliRunner()
    outputs = [runner.invoke(models_app, [cmd, *args, "--store", url]).output for cmd, args in (
        ("list", []), ("show", ["secret-check:1"]), ("download", ["secret-check", str(tmp_path / "dl2")]),
    )]
    assert "secret-check" in outputs[0]
    s3 = s3_server.filesystem()
    written = [s3.cat_file(key) for key in s3.find(bucket)]
    written += [p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()]
    assert len(written) >= 2 * 7
    logged = caplog.text + capsys.readouterr().out + "".join(outputs)
    for blob in written:
        assert SECRET_KEY.encode() not in blob
    assert SECRET_KEY not in logged
    assert ACCESS_KEY not in logged and all(ACCESS_KEY.encode() not in blob for blob in written)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_endpoint_down_retries_then_clear_error(monkeypatch: pytest.MonkeyPatch, exported: Path,
                                                caplog: pytest.LogCaptureFixture) -> None:
    port = _free_port()  # nothing listens here
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    caplog.set_level(logging.WARNING, logger="trm.store")
    store = ModelStore.open("s3://down-bucket/prefix", retry_attempts=3, retry_backoff_s=0.1)
    start = time.monotonic()
    with pytest.raises(StoreUnavailableError) as caught:
        store.publish("m", exported)
    elapsed = time.monotonic() - start
    message = str(caught.value)
    assert "s3://down-bucket/prefix" in message and "failed 3 times" in message
    assert SECRET_KEY not in message and SECRET_KEY not in caplog.text
    retries = [r.getMessage() for r in caplog.records if r.name.startswith("trm.store")]
    assert len(retries) == 2 and all("retry" in m for m in retries)  # two retries logged, then the error
    assert elapsed >= 0.1 + 0.2  # the backoff really waited
    with pytest.raises(StoreUnavailableError, match="down-bucket"):
        ModelStore.open("s3://down-bucket/prefix", retry_attempts=1).list()


def test_missing_bucket_is_a_clear_error(s3_env: dict[str, str], exported: Path) -> None:
    store = ModelStore.open("s3://no-such-bucket-here/p")
    assert store.list() == []
    with pytest.raises(StoreError, match=r"cannot write to store s3://no-such-bucket-here/p .*bucket does not exist"):
        store.publish("m", exported)


def test_only_transient_errors_are_retried(s3_env: dict[str, str]) -> None:
    location = open_store("s3://bucket-x/p", retry_attempts=4, retry_backoff_s=0.01)
    calls: list[str] = []

    def throttled_twice() -> str:
        calls.append("throttled")
        if len(calls) < 3:
            raise OSError(errno.EBUSY, "SlowDown")  # what s3fs raises for S3 throttling / 503
        return "ok"

    assert location.call("read x", throttled_twice) == "ok" and len(calls) == 3

    def missing() -> None:
        calls.append("missing")
        raise FileNotFoundError("no such key")

    with pytest.raises(FileNotFoundError):
        location.call("read y", missing)
    assert calls.count("missing") == 1  # a missing key is an answer, not an outage
