"""Names cannot escape the store, secrets never leak, and an unreachable S3 endpoint fails clearly after a bounded
number of attempts (counted by a real local HTTP endpoint), while answers (not found, denied, precondition) are
never retried."""

from __future__ import annotations

import logging
import socket
from pathlib import Path

import pytest

from trm.store import (
    InvalidNameError,
    ModelRef,
    ModelStore,
    NotFoundError,
    PublishRequest,
    StoreError,
    StoreUnavailableError,
    open_store,
    redact,
)
from trm.store.manifest import check_name

from .conftest import ACCESS_KEY, SECRET_KEY
from .scripted_s3 import Script, scripted_s3


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
        lambda: store.publish(PublishRequest(name="../x", model_dir=exported)),
        lambda: store.publish(PublishRequest(name="ok", model_dir=exported, aliases=["../prod"])),
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


@pytest.mark.cli
def test_secret_never_written_or_printed(
    s3_env: dict[str, str],
    s3_server,
    exported: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from typer.testing import CliRunner

    from trm.cli.models import models_app

    bucket = s3_server.new_bucket()
    url = f"s3://{bucket}/models-store"
    caplog.set_level(logging.DEBUG, logger="trm")
    store = ModelStore.open(url)
    store.publish(PublishRequest(name="secret-check", model_dir=exported, metrics={"exact_accuracy": 1.0}))
    store.promote("secret-check", 1, "production")
    store.download("secret-check@production", tmp_path / "dl")
    runner = CliRunner()
    outputs = [
        runner.invoke(models_app, [cmd, *args, "--store", url]).output
        for cmd, args in (
            ("list", []),
            ("show", ["secret-check:1"]),
            ("download", ["secret-check", str(tmp_path / "dl2")]),
        )
    ]
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
        return int(sock.getsockname()[1])


@pytest.fixture
def s3_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    monkeypatch.delenv("TRM_STORE_RETRIES", raising=False)


def test_endpoint_down_fails_clearly(
    s3_credentials: None, monkeypatch: pytest.MonkeyPatch, exported: Path, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{_free_port()}")  # nothing listens here
    caplog.set_level(logging.DEBUG, logger="trm")
    store = ModelStore.open("s3://down-bucket/prefix", retry_attempts=2)
    with pytest.raises(StoreUnavailableError) as caught:
        store.publish(PublishRequest(name="m", model_dir=exported))
    message = str(caught.value)
    assert (
        message.startswith("store s3://down-bucket/prefix is unreachable: list ")
        and "failed after 2 attempts" in message
    )
    assert SECRET_KEY not in message and SECRET_KEY not in caplog.text and ACCESS_KEY not in message
    with pytest.raises(StoreUnavailableError, match="down-bucket"):
        ModelStore.open("s3://down-bucket/prefix", retry_attempts=1).list()


@pytest.mark.parametrize(("status", "code"), [(503, "SlowDown"), (500, "InternalError")])
def test_transient_errors_are_retried_a_bounded_number_of_times(
    s3_credentials: None, monkeypatch: pytest.MonkeyPatch, exported: Path, status: int, code: str
) -> None:
    script = Script(status, code)
    with scripted_s3(script) as endpoint:
        monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
        with pytest.raises(StoreUnavailableError, match=r"unreachable: list .* failed after 3 attempts") as caught:
            ModelStore.open("s3://flaky-bucket/p", retry_attempts=3).publish(
                PublishRequest(name="m", model_dir=exported)
            )
        assert len(script.requests) == 3  # exactly the configured attempts, then the publish stopped
        assert f"last error: OSError: [Errno {16 if status == 503 else 121}] scripted {code}" in str(caught.value)
        monkeypatch.setenv("TRM_STORE_RETRIES", "2")
        with pytest.raises(StoreUnavailableError, match="failed after 2 attempts"):
            ModelStore.open("s3://flaky-bucket/p").list()
        assert len(script.requests) == 3 + 2


def test_a_retry_that_succeeds_is_invisible(s3_credentials: None, monkeypatch: pytest.MonkeyPatch) -> None:
    script = Script(503, "SlowDown", failures=2, body=b"the object")
    with scripted_s3(script) as endpoint:
        monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
        store = ModelStore.open("s3://flaky-bucket/p", retry_attempts=4)
        assert store.objects.read(store.location.join("k")) == b"the object"
    assert len(script.requests) == 3 + 1  # two refused probes, the successful probe, then the download


@pytest.mark.parametrize(
    ("script", "operation", "error"),
    [
        (Script(404, "NoSuchKey"), "read", NotFoundError),
        (Script(403, "AccessDenied"), "read", PermissionError),
        (Script(412, "PreconditionFailed", condition="If-None-Match"), "create", FileExistsError),
        (Script(400, "InvalidRequest"), "create", OSError),
    ],
    ids=["not-found", "denied", "precondition", "bad-request"],
)
def test_answers_are_never_retried(
    s3_credentials: None, monkeypatch: pytest.MonkeyPatch, script: Script, operation: str, error: type[Exception]
) -> None:
    with scripted_s3(script) as endpoint:
        monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
        store = ModelStore.open("s3://strict-bucket/p", retry_attempts=4)
        path = store.location.join("models", "m", "1", ".claim.json")
        with pytest.raises(error) as caught:
            if operation == "read":
                store.objects.read(path)
            else:
                store.objects.write_small(path, b"{}", exclusive=True)
    assert not isinstance(caught.value, StoreUnavailableError)
    first = script.requests[0]
    assert script.requests.count(first) == 1, script.requests  # the request that got the answer was not repeated


def test_missing_bucket_is_a_clear_error(s3_env: dict[str, str], exported: Path) -> None:
    store = ModelStore.open("s3://no-such-bucket-here/p")
    assert store.list() == []
    with pytest.raises(StoreError, match=r"cannot write to store s3://no-such-bucket-here/p .*bucket does not exist"):
        store.publish(PublishRequest(name="m", model_dir=exported))


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("s3://ab/p", "too short"),
        ("s3://Upper-Case/p", "not valid"),
        ("s3://bucket_x/p", "not valid"),
        ("s3:///p", "no bucket name"),
        ("s3://bucket-x/p?versionId=3", "without '\\?'"),
        ("s3://bucket-x/../p", "'..' are not allowed"),
    ],
)
def test_bad_s3_urls_are_refused_before_any_request(url: str, reason: str) -> None:
    with pytest.raises(StoreError, match=reason):
        open_store(url)


def test_s3a_urls_name_the_same_store(s3_credentials: None) -> None:
    assert (
        open_store("s3a://bucket-x/team/store/").root
        == open_store("s3://bucket-x/team/store").root
        == ("bucket-x/team/store")
    )


def test_bad_retry_setting_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRM_STORE_RETRIES", "many")
    with pytest.raises(StoreError, match="TRM_STORE_RETRIES='many'"):
        open_store("s3://bucket-x/p")
