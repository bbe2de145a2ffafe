"""Import of official checkpoints: key names as the official code writes them (verified against
SamsungSAILMontreal/TinyRecursiveModels models/recursive_reasoning/trm.py, models/layers.py,
models/sparse_embedding.py and the ACTLossHead wrapper `model` in models/losses.py)."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from trm.model import TRM, ModelConfig, count_trainable_parameters
from trm.model.official import (
    OfficialCheckpointError,
    convert_official_state_dict,
    import_official,
    infer_model_config,
    load_official_state_dict,
    to_official_state_dict,
)


def official_state_dict(
    vocab: int,
    total_len: int,
    num_ids: int,
    layers: int = 2,
    hidden: int = 512,
    mlp_t: bool = False,
    learned: bool = False,
    compiled: bool = True,
) -> dict[str, torch.Tensor]:
    """Random tensors under the official names and shapes (bf16 H_init/L_init like a GPU checkpoint)."""
    inner_width = 1536 if hidden == 512 else None
    assert inner_width is not None
    shapes: dict[str, tuple[int, ...]] = {
        "inner.embed_tokens.embedding_weight": (vocab, hidden),
        "inner.lm_head.weight": (vocab, hidden),
        "inner.q_head.weight": (2, hidden),
        "inner.q_head.bias": (2,),
        "inner.puzzle_emb.weights": (num_ids, 512),
    }
    if learned:
        shapes["inner.embed_pos.embedding_weight"] = (total_len, hidden)
    for i in range(layers):
        block = f"inner.L_level.layers.{i}."
        if mlp_t:
            token_width = 512 if total_len == 97 else None
            shapes[block + "mlp_t.gate_up_proj.weight"] = (2 * token_width, total_len)
            shapes[block + "mlp_t.down_proj.weight"] = (total_len, token_width)
        else:
            shapes[block + "self_attn.qkv_proj.weight"] = (3 * hidden, hidden)
            shapes[block + "self_attn.o_proj.weight"] = (hidden, hidden)
        shapes[block + "mlp.gate_up_proj.weight"] = (2 * inner_width, hidden)
        shapes[block + "mlp.down_proj.weight"] = (hidden, inner_width)
    gen = torch.Generator().manual_seed(0)
    state = {name: torch.randn(shape, generator=gen) for name, shape in shapes.items()}
    state["inner.H_init"] = torch.randn(hidden, generator=gen).to(torch.bfloat16)
    state["inner.L_init"] = torch.randn(hidden, generator=gen).to(torch.bfloat16)
    prefix = "_orig_mod.model." if compiled else "model."
    return {prefix + name: tensor for name, tensor in state.items()}


@pytest.mark.parametrize("compiled", [True, False])
def test_sudoku_att_import_round_trip(compiled: bool) -> None:
    official = official_state_dict(vocab=11, total_len=97, num_ids=1, compiled=compiled)
    model, config = import_official(official, ModelConfig(seq_len=81, L_cycles=6))
    assert (config.vocab_size, config.seq_len, config.pos_encodings, config.mlp_t) == (11, 81, "rope", False)
    assert count_trainable_parameters(model) == 6_828_034 and not model.training
    ours = model.state_dict()
    prefix = "_orig_mod.model." if compiled else "model."
    for key, tensor in official.items():
        assert torch.equal(ours[key.removeprefix(prefix)], tensor.float()), key
    assert ours["inner.H_init"].dtype == torch.float32
    assert set(to_official_state_dict(ours, compiled=compiled)) == set(official)
    fresh = TRM(config).inner.rotary_emb
    assert torch.equal(model.inner.rotary_emb.cos_cached, fresh.cos_cached)


def test_sudoku_mlp_shapes_are_inferred() -> None:
    official = official_state_dict(vocab=11, total_len=97, num_ids=1, mlp_t=True)
    model, config = import_official(official)
    assert (config.seq_len, config.mlp_t, config.pos_encodings, config.L_layers) == (81, True, "none", 2)
    assert count_trainable_parameters(model) == 5_028_866


def test_learned_positions_reveal_the_sequence_length() -> None:
    state = convert_official_state_dict(official_state_dict(vocab=12, total_len=916, num_ids=9, learned=True))
    config = infer_model_config(state)
    assert (config.seq_len, config.vocab_size, config.num_puzzle_identifiers) == (900, 12, 9)
    assert config.pos_encodings == "learned"


def test_imported_model_computes_like_the_source(tiny_config, make_batch) -> None:
    torch.manual_seed(0)
    source = TRM(tiny_config()).eval()
    with torch.no_grad():
        source.inner.puzzle_emb.weights.normal_()
    imported, _ = import_official(to_official_state_dict(source.state_dict()), tiny_config())
    batch = make_batch(source.config, 4)
    with torch.inference_mode():
        _, expected = source(source.initial_carry(batch), batch)
        _, got = imported(imported.initial_carry(batch), batch)
    assert all(torch.equal(expected[k], got[k]) for k in expected)


def test_files_load_from_torch_and_safetensors(tmp_path) -> None:
    official = official_state_dict(vocab=6, total_len=916, num_ids=1, compiled=False)
    official["_orig_mod.model.inner.rotary_emb.cos_cached"] = torch.zeros(916, 64)  # transient buffers are dropped
    torch.save(official, tmp_path / "step_100")
    save_file(official, str(tmp_path / "step_100.safetensors"))
    for path in (tmp_path / "step_100", tmp_path / "step_100.safetensors"):
        model, _config = import_official(path, ModelConfig(seq_len=900))
        assert count_trainable_parameters(model) == 6_822_914
    torch.save({"weights": [1, 2]}, tmp_path / "not_a_state_dict.pt")
    with pytest.raises(OfficialCheckpointError, match="not_a_state_dict"):
        load_official_state_dict(tmp_path / "not_a_state_dict.pt")


def test_clear_errors() -> None:
    official = official_state_dict(vocab=11, total_len=97, num_ids=1)
    with pytest.raises(OfficialCheckpointError, match="seq_len"):
        import_official(official)  # RoPE: the weights do not reveal seq_len
    missing = {k: v for k, v in official.items() if not k.endswith("layers.1.mlp.down_proj.weight")}
    with pytest.raises(OfficialCheckpointError, match=r"layers\.1\.mlp\.down_proj\.weight"):
        import_official(missing, ModelConfig(seq_len=81))
    foreign = {**official, "_orig_mod.model.head.weight": torch.zeros(1)}
    with pytest.raises(OfficialCheckpointError, match=r"head\.weight"):
        import_official(foreign, ModelConfig(seq_len=81))
    corrupt = {**official, "_orig_mod.model.inner.L_level.layers.1.self_attn.o_proj.weight": torch.zeros(512, 256)}
    with pytest.raises(OfficialCheckpointError, match=r"layers.1.self_attn.o_proj.weight: shape \(512, 256\)"):
        import_official(corrupt, ModelConfig(seq_len=81))


def test_puzzle_table_resized_to_the_mean_row_for_another_dataset() -> None:
    official = official_state_dict(vocab=12, total_len=916, num_ids=9, learned=True, compiled=False)
    table = official["model.inner.puzzle_emb.weights"]
    model, config = import_official(official, ModelConfig(num_puzzle_identifiers=4))
    assert config.num_puzzle_identifiers == 4
    assert torch.allclose(model.inner.puzzle_emb.weights, table.mean(0).expand(4, -1))
    same, _ = import_official(official)
    assert torch.equal(same.inner.puzzle_emb.weights, table)
