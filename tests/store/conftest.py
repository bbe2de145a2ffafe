"""Store-test fixtures: a real exported-model folder and store URLs for the local filesystem and S3 (moto)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

# moto accepts any credentials: a unique secret lets tests prove it is never written or printed anywhere
SECRET_KEY = f"sEcReT-{uuid.uuid4().hex}"
ACCESS_KEY = "AKIATESTSTORE"


def make_export(folder: Path, seed: int = 0, steps: int = 20) -> Path:
    """A real exported model folder: safetensors weights, a JSON config, a metrics.jsonl like the trainer's."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    save_file(
        {
            "inner.embed.weight": rng.standard_normal((11, 16)).astype(np.float32),
            "inner.lm_head.weight": rng.standard_normal((11, 16)).astype(np.float32),
        },
        str(folder / "model.safetensors"),
    )
    (folder / "config.json").write_text(
        json.dumps({"model": {"hidden_size": 16, "vocab_size": 11}, "train": {"lr": 1e-4, "seed": seed}})
    )
    with open(folder / "metrics.jsonl", "w") as handle:
        for step in range(1, steps + 1):
            handle.write(json.dumps({"kind": "train", "step": step, "lm_loss": 2.0 / step, "lr": 1e-4}) + "\n")
        handle.write(json.dumps({"kind": "eval", "step": steps, "exact_accuracy": 0.5 + seed / 100}) + "\n")
    return folder


@pytest.fixture
def exported(tmp_path: Path) -> Path:
    return make_export(tmp_path / "export")


@pytest.fixture
def s3_env(s3_server, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Point every S3 client (ours and subprocesses) at the moto server with the unique secret."""
    env = {**s3_server.env(), "AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


@pytest.fixture(params=["local", "s3"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The same tests run against a local folder and against an S3 bucket on the moto server."""
    if request.param == "local":
        return str(tmp_path / "store")
    request.getfixturevalue("s3_env")
    bucket = request.getfixturevalue("s3_server").new_bucket()
    return f"s3://{bucket}/team/store"
