"""`load_model(uri)` end to end: a real TRM exported by the trainer's exporter, published, loaded back verified,
giving the same weights, config and outputs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from trm.config import load_config
from trm.model import TRM
from trm.store import ChecksumError, ModelStore, PublishRequest, load_model
from trm.train.export import export_model


def _batch(config, rows: int = 3) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    seq_len, vocab = config.model.seq_len, config.model.vocab_size
    return {
        "inputs": torch.randint(1, vocab, (rows, seq_len), generator=generator, dtype=torch.int32),
        "labels": torch.randint(1, vocab, (rows, seq_len), generator=generator).long(),
        "puzzle_identifiers": torch.ones(rows, dtype=torch.int32),
    }


@torch.no_grad()
def _logits(model: TRM, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    carry = model.initial_carry(batch)
    carry, out = model(carry, batch)
    return out["logits"]


def test_load_model_round_trip(store_url: str, tmp_path: Path) -> None:
    torch.manual_seed(0)
    config = load_config(
        "smoke",
        [
            "model.seq_len=16",
            "model.vocab_size=6",
            "model.num_puzzle_identifiers=3",
            "model.hidden_size=32",
            "model.puzzle_emb_ndim=32",
            "model.num_heads=2",
        ],
    )
    model = TRM(config.model).eval()
    export_model(model, config, tmp_path / "export")
    store = ModelStore.open(store_url)
    store.publish(PublishRequest(name="smoke-model", model_dir=tmp_path / "export", metrics={"exact_accuracy": 0.0}))
    store.promote("smoke-model", 1, "production")

    loaded, loaded_config = load_model(f"{store_url}#smoke-model@production")
    assert loaded_config == config
    assert not loaded.training
    expected = model.state_dict()
    got = loaded.state_dict()
    assert set(got) == set(expected)
    for key, value in expected.items():
        assert torch.equal(got[key], value), key
    batch = _batch(config)
    assert torch.equal(_logits(loaded, batch), _logits(model, batch))

    if store_url.startswith("s3://"):
        return  # the cache logic below is store-independent: exercised once, on the local store, to save time
    # a cache folder is reused while it matches the store, and re-verified on every load
    cache = tmp_path / "cache"
    load_model("smoke-model:1", store=store_url, cache_dir=cache)
    cached_weights = cache / "smoke-model" / "1" / "model.safetensors"
    again, _ = load_model("smoke-model:1", store=store_url, cache_dir=cache)
    assert torch.equal(again.state_dict()[next(iter(expected))], expected[next(iter(expected))])
    data = bytearray(cached_weights.read_bytes())
    data[-1] ^= 0x01
    cached_weights.write_bytes(bytes(data))
    with pytest.raises(ChecksumError, match=r"model\.safetensors"):
        load_model("smoke-model:1", store=store_url, cache_dir=cache)
