"""One supervision step: T-1 processes without grad then one with grad; carry detached (docs/reference.md §1.2)."""

from __future__ import annotations

import pytest
import torch

from trm.model import TRM, InnerCarry, RecursionDepth


@pytest.mark.parametrize(("h_cycles", "l_cycles"), [(3, 2), (2, 3), (1, 2)])
def test_only_the_last_process_runs_with_grad(tiny_config, make_batch, h_cycles: int, l_cycles: int) -> None:
    torch.manual_seed(0)
    model = TRM(tiny_config(H_cycles=h_cycles, L_cycles=l_cycles)).train()
    calls: list[bool] = []
    model.inner.L_level.register_forward_hook(lambda module, args, out: calls.append(out.requires_grad))
    batch = make_batch(model.config, 3)
    carry, out = model(model.initial_carry(batch), batch)
    assert len(calls) == h_cycles * (l_cycles + 1)
    grad_calls = l_cycles + 1
    assert calls == [False] * (len(calls) - grad_calls) + [True] * grad_calls
    assert out["logits"].requires_grad and out["q_halt_logits"].requires_grad
    assert not carry.inner.z_H.requires_grad and not carry.inner.z_L.requires_grad
    assert carry.inner.z_H.grad_fn is None and carry.inner.z_L.grad_fn is None


def test_no_gradient_reaches_the_incoming_carry(tiny_config, make_batch) -> None:
    torch.manual_seed(0)
    model = TRM(tiny_config(H_cycles=2)).train()
    batch = make_batch(model.config, 3)
    shape = (3, model.inner.total_len, model.config.hidden_size)
    z_H = torch.randn(shape, requires_grad=True)
    z_L = torch.randn(shape, requires_grad=True)
    _, logits, (q_halt, _) = model.inner(InnerCarry(z_H, z_L), batch)
    (logits.sum() + q_halt.sum()).backward()
    assert z_H.grad is None and z_L.grad is None
    assert all(p.grad is not None for p in model.parameters())


def test_gradients_equal_a_hand_unrolled_last_process(tiny_config, make_batch) -> None:
    """The gradient is that of the last process alone, started from the no-grad states."""
    torch.manual_seed(0)
    model = TRM(tiny_config(H_cycles=2, L_cycles=2)).train()
    inner = model.inner
    batch = make_batch(model.config, 2)
    start = inner.reset_carry(torch.ones(2, dtype=torch.bool), inner.empty_carry(2))
    _, logits, _ = inner(start, batch)
    logits.sum().backward()
    expected = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    inner.puzzle_emb.discard_pending()

    cos_sin = inner.rotary_emb()
    with torch.no_grad():
        x = inner.input_embeddings(batch["inputs"], batch["puzzle_identifiers"])
        z_H, z_L = start.z_H, start.z_L
        for _ in range(2):
            z_L = inner.L_level(z_L, z_H + x, cos_sin)
        z_H = inner.L_level(z_H, z_L, cos_sin)
    x = inner.input_embeddings(batch["inputs"], batch["puzzle_identifiers"])
    for _ in range(2):
        z_L = inner.L_level(z_L, z_H + x, cos_sin)
    z_H = inner.L_level(z_H, z_L, cos_sin)
    inner.lm_head(z_H)[:, inner.puzzle_emb_len :].sum().backward()
    for name, param in model.named_parameters():
        if name in expected:
            assert torch.equal(param.grad, expected[name]), name


def test_one_step_gradient_differentiates_only_the_last_z_and_y_updates(tiny_config, make_batch) -> None:
    torch.manual_seed(0)
    model = TRM(tiny_config(H_cycles=2, L_cycles=3, one_step_gradient=True)).train()
    calls: list[bool] = []
    model.inner.L_level.register_forward_hook(lambda module, args, out: calls.append(out.requires_grad))
    batch = make_batch(model.config, 3)
    model(model.initial_carry(batch), batch)
    assert calls == [False] * 6 + [True, True]


def _parameter_gradients(model: TRM) -> dict[str, torch.Tensor]:
    grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    model.inner.puzzle_emb.discard_pending()
    return grads


def test_one_step_gradient_equals_a_hand_detached_recursion(tiny_config, make_batch) -> None:
    """HRM's 1-step gradient: the gradient of the last f_L and f_H calls alone, every earlier call detached."""
    torch.manual_seed(0)
    one_step = TRM(tiny_config(H_cycles=2, L_cycles=3, one_step_gradient=True)).train()
    full = TRM(one_step.config.model_copy(update={"one_step_gradient": False})).train()
    full.load_state_dict(one_step.state_dict())
    inner = one_step.inner
    batch = make_batch(one_step.config, 2)
    start = inner.reset_carry(torch.ones(2, dtype=torch.bool), inner.empty_carry(2))

    def backward(model: TRM) -> dict[str, torch.Tensor]:
        _, logits, (q_halt, _) = model.inner(start, batch)
        (logits.sum() + q_halt.sum()).backward()
        return _parameter_gradients(model)

    got, default = backward(one_step), backward(full)

    cos_sin = inner.rotary_emb()
    x = inner.input_embeddings(batch["inputs"], batch["puzzle_identifiers"])
    z_H, z_L = start.z_H, start.z_L
    for call in range(2 * 4 - 2):  # T(n+1) calls, all but the last two detached
        if call % 4 == 3:
            z_H = inner.L_level(z_H, z_L, cos_sin).detach()
        else:
            z_L = inner.L_level(z_L, z_H + x, cos_sin).detach()
    z_L = inner.L_level(z_L, z_H + x, cos_sin)
    z_H = inner.L_level(z_H, z_L, cos_sin)
    logits = inner.lm_head(z_H)[:, inner.puzzle_emb_len :]
    (logits.sum() + inner.q_head(z_H[:, 0]).float()[..., 0].sum()).backward()
    expected = _parameter_gradients(one_step)

    assert sorted(got) == sorted(expected) == sorted(default)
    for name in expected:
        assert torch.equal(got[name], expected[name]), name
    block_weights = [name for name in got if ".L_level." in name]
    assert block_weights and all(not torch.allclose(got[n], default[n]) for n in block_weights)


@pytest.mark.parametrize(("h_cycles", "l_cycles"), [(1, 1), (1, 2), (2, 1)])
def test_a_given_depth_overrides_the_configured_one(tiny_config, make_batch, h_cycles: int, l_cycles: int) -> None:
    torch.manual_seed(0)
    model = TRM(tiny_config(H_cycles=2, L_cycles=3)).train()
    calls: list[bool] = []
    model.inner.L_level.register_forward_hook(lambda module, args, out: calls.append(out.requires_grad))
    batch = make_batch(model.config, 3)
    carry, _ = model(model.initial_carry(batch), batch, depth=RecursionDepth(h_cycles, l_cycles))
    assert calls == [False] * ((h_cycles - 1) * (l_cycles + 1)) + [True] * (l_cycles + 1)
    calls.clear()
    model(carry, batch)
    assert len(calls) == 2 * (3 + 1)  # no depth given: the config's


def test_output_shapes_and_q_head_reads_slot_zero(tiny_config, make_batch) -> None:
    torch.manual_seed(0)
    for overrides in ({}, {"mlp_t": True, "pos_encodings": "none"}, {"pos_encodings": "learned"}):
        model = TRM(tiny_config(**overrides)).eval()
        batch = make_batch(model.config, 5)
        carry, out = model(model.initial_carry(batch), batch)
        assert out["logits"].shape == (5, 12, 7) and out["logits"].dtype == torch.float32
        assert out["q_halt_logits"].shape == (5,) and out["q_continue_logits"].shape == (5,)
        assert carry.inner.z_H.shape == (5, 12 + 4, 32)
    # q logits are a function of position 0 of y only
    with torch.no_grad():
        model.inner.q_head.weight.normal_()
    y = torch.randn(2, 16, 32)
    y2 = y.clone()
    y2[:, 1:] = torch.randn(2, 15, 32)
    assert torch.equal(model.inner.q_head(y[:, 0]), model.inner.q_head(y2[:, 0]))


def test_learned_positions_and_input_scale(tiny_config) -> None:
    torch.manual_seed(0)
    model = TRM(tiny_config(pos_encodings="learned", puzzle_emb_ndim=0))
    inner = model.inner
    inputs = torch.randint(0, 7, (2, 12), dtype=torch.int32)
    x = inner.input_embeddings(inputs, torch.zeros(2, dtype=torch.int32))
    tokens = inner.embed_tokens.embedding_weight[inputs.long()]
    expected = (32**0.5) * 0.707106781 * (tokens + inner.embed_pos.embedding_weight)
    assert inner.puzzle_emb_len == 0 and x.shape == (2, 12, 32)
    assert torch.allclose(x, expected, atol=1e-6)


def test_puzzle_vector_fills_slot_zero_only(tiny_config) -> None:
    torch.manual_seed(0)
    model = TRM(tiny_config()).eval()
    with torch.no_grad():
        model.inner.puzzle_emb.weights.normal_()
    ids = torch.tensor([3, 1], dtype=torch.int32)
    x = model.inner.input_embeddings(torch.zeros(2, 12, dtype=torch.int32), ids)
    assert torch.allclose(x[:, 0], (32**0.5) * model.inner.puzzle_emb.weights[ids.long()])
    assert torch.count_nonzero(x[:, 1:4]) == 0  # the other prefix slots get zero input


def test_bad_input_shape_is_named(tiny_config) -> None:
    model = TRM(tiny_config())
    with pytest.raises(ValueError, match=r"expected \[B, 12\]"):
        model.inner.input_embeddings(torch.zeros(2, 10, dtype=torch.int32), torch.zeros(2, dtype=torch.int32))
    with pytest.raises(ValueError, match="seq_len"):
        TRM(tiny_config(seq_len=0))


def test_bfloat16_forward_keeps_fp32_master_weights(tiny_config, make_batch) -> None:
    """The CUDA path (bf16 activations, fp32 weights cast per call) also runs on CPU; q logits come back fp32."""
    torch.manual_seed(0)
    model = TRM(tiny_config(forward_dtype="bfloat16")).train()
    batch = make_batch(model.config, 2)
    carry, out = model(model.initial_carry(batch), batch)
    assert out["logits"].dtype == torch.bfloat16 and out["q_halt_logits"].dtype == torch.float32
    assert carry.inner.z_H.dtype == torch.bfloat16
    (out["logits"].float().sum() + out["q_halt_logits"].sum()).backward()
    assert all(p.dtype == torch.float32 and p.grad.dtype == torch.float32 for p in model.parameters())
    reset = model.inner.reset_carry(torch.tensor([True, False]), carry.inner)
    assert torch.equal(reset.z_H[0, 0], model.inner.H_init.to(torch.bfloat16))
