"""Import of checkpoints written by the official TRM code (SamsungSAILMontreal/TinyRecursiveModels).

Official keys are ours under wrapper prefixes (`_orig_mod.`, `model.`): strip them, drop transient buffers, cast
floats to fp32, check the key set, and infer from the weights' shapes the config fields they determine (the rest
comes from a base config). Files are read without unpickling. Details: docs/architecture.md ("Design: the model").
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
from safetensors.torch import load_file

from trm.config import ModelConfig
from trm.model.layers import swiglu_inner_width
from trm.model.trm import TRM, resolve_puzzle_emb_len

WRAPPER_PREFIXES = ("_orig_mod.", "module.", "model.")
DROPPED_SUFFIXES = (
    "rotary_emb.cos_cached",
    "rotary_emb.sin_cached",
    "puzzle_emb.local_weights",
    "puzzle_emb.local_ids",
)
_LAYER_KEY = re.compile(r"^inner\.L_level\.layers\.(\d+)\.")


class OfficialCheckpointError(ValueError):
    """The file or state dict does not look like an official TRM checkpoint (message names the key/file)."""


def load_official_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read an official checkpoint file (torch zip or safetensors) into a name -> tensor dict on the CPU."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"official checkpoint {path} does not exist")
    if path.suffix == ".safetensors":
        return load_file(str(path), device="cpu")
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for foreign or unsafe content
        raise OfficialCheckpointError(f"{path}: not a tensor-only torch checkpoint ({error})") from error
    if isinstance(loaded, dict) and "state_dict" in loaded and isinstance(loaded["state_dict"], dict):
        loaded = loaded["state_dict"]
    if not isinstance(loaded, dict) or not all(isinstance(v, torch.Tensor) for v in loaded.values()):
        raise OfficialCheckpointError(f"{path}: expected a dict of tensors (a model state_dict)")
    return dict(loaded)


def strip_wrapper_prefixes(key: str) -> str:
    """`_orig_mod.model.inner.x` -> `inner.x` (compile wrapper, DDP wrapper, loss-head wrapper, in any nesting)."""
    changed = True
    while changed:
        changed = False
        for prefix in WRAPPER_PREFIXES:
            if key.startswith(prefix):
                key, changed = key[len(prefix) :], True
    return key


def convert_official_state_dict(official: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Official key names -> ours, fp32 floating tensors, transient buffers dropped."""
    converted: dict[str, torch.Tensor] = {}
    for key, tensor in official.items():
        name = strip_wrapper_prefixes(key)
        if name.endswith(DROPPED_SUFFIXES):
            continue
        if not name.startswith("inner."):
            raise OfficialCheckpointError(f"key {key!r} is not part of the TRM model (expected '...inner.<name>')")
        if name in converted:
            raise OfficialCheckpointError(f"key {key!r} maps to {name!r}, which another key already produced")
        converted[name] = tensor.detach().to(torch.float32) if tensor.is_floating_point() else tensor.detach()
    return converted


def _shape(state: dict[str, torch.Tensor], name: str) -> tuple[int, ...]:
    if name not in state:
        raise OfficialCheckpointError(f"checkpoint lacks {name!r}")
    return tuple(state[name].shape)


def infer_model_config(state: dict[str, torch.Tensor], base: ModelConfig | None = None) -> ModelConfig:
    """Fill ModelConfig fields that the (converted) weights determine; everything else comes from `base`.

    Raises when a shape contradicts `base` in a way that cannot be inferred (e.g. a RoPE model's seq_len unknown).
    """
    base = base or ModelConfig()
    vocab_size, hidden = _shape(state, "inner.embed_tokens.embedding_weight")
    layer_ids = {int(m.group(1)) for key in state if (m := _LAYER_KEY.match(key))}
    if not layer_ids:
        raise OfficialCheckpointError("checkpoint has no 'inner.L_level.layers.<i>.*' weights")
    fields: dict[str, object] = {"vocab_size": vocab_size, "hidden_size": hidden, "L_layers": max(layer_ids) + 1}

    gate_up_rows, _ = _shape(state, "inner.L_level.layers.0.mlp.gate_up_proj.weight")
    inner_width = gate_up_rows // 2
    expansion = base.expansion
    if swiglu_inner_width(hidden, expansion) != inner_width:
        expansion = inner_width * 3 / (2 * hidden)
        if swiglu_inner_width(hidden, expansion) != inner_width:
            raise OfficialCheckpointError(f"no expansion gives SwiGLU width {inner_width} for hidden size {hidden}")
    fields["expansion"] = expansion

    if "inner.puzzle_emb.weights" in state:
        num_ids, ndim = _shape(state, "inner.puzzle_emb.weights")
        # A nonzero count in `base` (the target dataset's) wins: import_official then resizes the table.
        fields.update(num_puzzle_identifiers=base.num_puzzle_identifiers or num_ids, puzzle_emb_ndim=ndim)
    else:
        fields.update(puzzle_emb_ndim=0)

    mlp_t = "inner.L_level.layers.0.mlp_t.gate_up_proj.weight" in state
    fields["mlp_t"] = mlp_t
    total_len: int | None = None
    if "inner.embed_pos.embedding_weight" in state:
        fields["pos_encodings"] = "learned"
        total_len = _shape(state, "inner.embed_pos.embedding_weight")[0]
    elif mlp_t:
        # RoPE is only consumed by attention, so for mlp_t "rope" and "none" are the same function.
        fields["pos_encodings"] = "none"
    else:
        fields["pos_encodings"] = "rope"
    if mlp_t:
        token_len = _shape(state, "inner.L_level.layers.0.mlp_t.gate_up_proj.weight")[1]
        if total_len is not None and total_len != token_len:
            raise OfficialCheckpointError(f"embed_pos has {total_len} positions but mlp_t mixes {token_len}")
        total_len = token_len

    draft = base.model_copy(update=fields)
    if total_len is not None:
        prefix = resolve_puzzle_emb_len(draft)
        if total_len <= prefix:
            raise OfficialCheckpointError(f"sequence length {total_len} leaves no room for {prefix} prefix slots")
        draft = draft.model_copy(update={"seq_len": total_len - prefix})
    elif draft.seq_len <= 0:
        raise OfficialCheckpointError("a RoPE checkpoint does not reveal seq_len: pass it in the base config")
    if not draft.mlp_t and hidden % draft.num_heads:
        raise OfficialCheckpointError(f"hidden size {hidden} is not divisible by num_heads {draft.num_heads}")
    return ModelConfig.model_validate(draft.model_dump())


def to_official_state_dict(
    state: dict[str, torch.Tensor], loss_head: bool = True, compiled: bool = True
) -> dict[str, torch.Tensor]:
    """Our state dict -> the key names the official trainer writes (for export to official tooling and tests)."""
    prefix = ("_orig_mod." if compiled else "") + ("model." if loss_head else "")
    return {prefix + key: value for key, value in state.items()}


def import_official(
    source: str | Path | dict[str, torch.Tensor], base: ModelConfig | None = None
) -> tuple[TRM, ModelConfig]:
    """Build our TRM (eval mode) holding the official weights exactly; strict key check, clear errors.

    If `base.num_puzzle_identifiers` is nonzero and differs from the checkpoint's table, the table is rebuilt with
    that many rows, each the mean of the checkpoint's rows (what the official `load_checkpoint` does).
    """
    official = source if isinstance(source, dict) else load_official_state_dict(source)
    state = convert_official_state_dict(official)
    config = infer_model_config(state, base)
    table = state.get("inner.puzzle_emb.weights")
    if table is not None and table.shape[0] != config.num_puzzle_identifiers:
        # The official loader's rule for a dataset with another identifier count: every row = the mean row.
        mean_row = table.mean(0, keepdim=True)
        state["inner.puzzle_emb.weights"] = mean_row.expand(config.num_puzzle_identifiers, -1).clone()
    with torch.device("meta"):
        model = TRM(config)
    model = model.to_empty(device="cpu")
    expected = model.state_dict().keys()
    missing, unexpected = sorted(expected - state.keys()), sorted(state.keys() - expected)
    if missing or unexpected:
        raise OfficialCheckpointError(f"key mismatch: missing {missing}, unexpected {unexpected}")
    for key, tensor in model.state_dict().items():
        if tuple(tensor.shape) != tuple(state[key].shape):
            got, want = tuple(state[key].shape), tuple(tensor.shape)
            raise OfficialCheckpointError(f"{key}: shape {got} but config gives {want}")
    model.load_state_dict(state, strict=True)
    _rebuild_non_persistent_buffers(model)
    return model.eval(), config


def _rebuild_non_persistent_buffers(model: TRM) -> None:
    """Buffers not in state dicts (RoPE tables) were left uninitialised by the meta-device build: recompute them."""
    rotary = getattr(model.inner, "rotary_emb", None)
    if rotary is not None:
        fresh = type(rotary)(rotary.cos_cached.shape[-1], rotary.cos_cached.shape[0], model.config.rope_theta)
        rotary.cos_cached.copy_(fresh.cos_cached)
        rotary.sin_cached.copy_(fresh.sin_cached)
