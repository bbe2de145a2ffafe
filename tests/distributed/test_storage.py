"""Storage locations for Ray runs: local folders and s3:// on the moto server; secrets never leak into reprs."""

from __future__ import annotations

import pyarrow.fs as pafs
import pytest

from trm.distributed.storage import S3Settings, StorageError, resolve_storage


def test_local_folder_is_made_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    storage = resolve_storage("results")
    assert storage.uri == str(tmp_path / "results") and storage.ray_path == storage.uri
    assert storage.filesystem is None and not storage.is_remote
    assert not (tmp_path / "results").exists()  # resolving checks, it does not create (Ray creates it when writing)
    assert storage.uri_of("run", "checkpoint_1") == f"{tmp_path}/results/run/checkpoint_1"


def test_s3_from_settings_round_trips_and_hides_secrets(s3_server, tmp_path, monkeypatch):
    for key in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(key, raising=False)
    bucket = s3_server.new_bucket()
    settings = S3Settings(
        endpoint_url=s3_server.endpoint_url, access_key=s3_server.access_key, secret_key=s3_server.secret_key
    )
    assert s3_server.secret_key not in repr(settings) and s3_server.secret_key not in str(settings.model_dump())
    storage = resolve_storage(f"s3://{bucket}/runs/", settings)
    assert storage.uri == f"s3://{bucket}/runs" and storage.ray_path == f"{bucket}/runs" and storage.is_remote
    assert isinstance(storage.filesystem, pafs.S3FileSystem)
    with storage.filesystem.open_output_stream(f"{bucket}/runs/r/ckpt/state.json") as handle:
        handle.write(b'{"step": 3}')
    assert storage.exists(storage.uri_of("r", "ckpt")) and storage.list_dir(storage.uri_of("r")) == ["ckpt"]
    local = storage.download(storage.uri_of("r", "ckpt"), tmp_path / "copy")
    assert (local / "state.json").read_text() == '{"step": 3}'


def test_s3_from_environment(s3_server, monkeypatch):
    for key, value in s3_server.env().items():
        monkeypatch.setenv(key, value)
    bucket = s3_server.new_bucket()
    storage = resolve_storage(f"s3://{bucket}/x")
    assert storage.list_dir(storage.uri) == []  # reachable with credentials and endpoint from the environment


@pytest.mark.parametrize("bad", ["s3://", "s3://ab/x", "gs://bucket/x"])
def test_bad_locations_are_rejected(bad):
    with pytest.raises(StorageError, match=r"s3|supported"):
        resolve_storage(bad)


def test_half_credentials_are_rejected(monkeypatch):
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(key, raising=False)
    with pytest.raises(StorageError, match="both"):
        resolve_storage("s3://bucket/x", S3Settings(access_key="only-this"))
