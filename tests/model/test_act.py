"""ACT wrapper and carry semantics (docs/reference.md §2.1): resets, data replacement, halting, exploration RNG."""

from __future__ import annotations

import torch

from trm.model import TRM, InnerCarry, TRMCarry


def _set_q_bias(model: TRM, halt: float) -> None:
    with torch.no_grad():
        model.inner.q_head.bias.fill_(halt)


def test_initial_carry_loads_every_row(tiny_config, make_batch) -> None:
    torch.manual_seed(0)
    model = TRM(tiny_config()).train()
    batch = make_batch(model.config, 4)
    carry = model.initial_carry(batch)
    assert carry.halted.all() and carry.steps.dtype == torch.int32 and (carry.steps == 0).all()
    carry, _ = model(carry, batch)
    assert all(torch.equal(carry.current_data[k], batch[k]) for k in batch)
    assert (carry.steps == 1).all()


def test_halted_rows_reset_and_take_new_rows_others_keep_theirs(tiny_config, make_batch) -> None:
    torch.manual_seed(0)
    model = TRM(tiny_config()).train()
    old, new = make_batch(model.config, 4, seed=1), make_batch(model.config, 4, seed=2)
    shape = (4, model.inner.total_len, model.config.hidden_size)
    carry = TRMCarry(
        InnerCarry(torch.randn(shape), torch.randn(shape)),
        steps=torch.tensor([3, 5, 16, 2], dtype=torch.int32),
        halted=torch.tensor([True, False, True, False]),
        current_data={k: v.clone() for k, v in old.items()},
    )
    seen: list[InnerCarry] = []
    model.inner.register_forward_pre_hook(lambda module, args: seen.append(args[0]))
    result, _ = model(carry, new)

    state = seen[0]
    for row, reset in enumerate([True, False, True, False]):
        if reset:
            assert torch.equal(state.z_H[row], model.inner.H_init.expand(shape[1:]))
            assert torch.equal(state.z_L[row], model.inner.L_init.expand(shape[1:]))
        else:
            assert torch.equal(state.z_H[row], carry.inner.z_H[row])
            assert torch.equal(state.z_L[row], carry.inner.z_L[row])
        source = new if reset else old
        for key in old:
            assert torch.equal(result.current_data[key][row], source[key][row]), (row, key)
    assert result.steps.tolist() == [1, 6, 1, 3]


def test_eval_always_runs_halt_max_steps(tiny_config, make_batch) -> None:
    torch.manual_seed(0)
    model = TRM(tiny_config(halt_max_steps=5)).eval()
    _set_q_bias(model, 5.0)  # q_halt > 0 everywhere: must be ignored in eval
    batch = make_batch(model.config, 3)
    carry = model.initial_carry(batch)
    halted_per_step = []
    with torch.inference_mode():
        for _ in range(5):
            carry, out = model(carry, batch)
            assert (out["q_halt_logits"] > 0).all()
            halted_per_step.append(bool(carry.halted.any()))
    assert halted_per_step == [False, False, False, False, True]
    assert carry.halted.all() and (carry.steps == 5).all()
    state = model.exploration_generator.get_state()
    assert torch.equal(state, model.exploration_generator.get_state())  # eval consumed no exploration numbers


def test_training_halts_on_positive_q_or_at_max(tiny_config, make_batch) -> None:
    torch.manual_seed(0)
    model = TRM(tiny_config(halt_max_steps=4, halt_exploration_prob=0.0)).train()
    batch = make_batch(model.config, 3)
    _set_q_bias(model, 5.0)
    carry, _ = model(model.initial_carry(batch), batch)
    assert carry.halted.all()
    _set_q_bias(model, -5.0)
    carry = model.initial_carry(batch)
    history = []
    for _ in range(5):
        carry, _ = model(carry, batch)
        history.append((carry.steps.tolist(), carry.halted.tolist()))
    assert history[3] == ([4, 4, 4], [True, True, True])
    assert all(not any(h) for _, h in history[:3])
    assert history[4][0] == [1, 1, 1]  # the rows restarted after halting


def test_exploration_sets_a_minimum_from_the_generator(tiny_config, make_batch) -> None:
    torch.manual_seed(0)
    model = TRM(tiny_config(halt_max_steps=6, halt_exploration_prob=0.5)).train()
    _set_q_bias(model, 5.0)  # the q head wants to halt immediately
    model.configure_exploration(seed=123)
    reference = torch.Generator().manual_seed(123)
    batch = make_batch(model.config, 64)
    explore = torch.rand(64, generator=reference) < 0.5
    minimum = explore * torch.randint(2, 7, (64,), generator=reference)
    carry, _ = model(model.initial_carry(batch), batch)
    assert torch.equal(carry.halted, minimum <= 1)  # rows without a minimum > 1 halt at step 1
    assert 10 < int(explore.sum()) < 54


def test_exploration_is_reproducible_and_resumable(tiny_config, make_batch) -> None:
    torch.manual_seed(0)
    model = TRM(tiny_config(halt_max_steps=6, halt_exploration_prob=0.5)).train()
    _set_q_bias(model, 5.0)
    batch = make_batch(model.config, 32)

    def run(steps: int, carry: TRMCarry) -> tuple[list[list[bool]], TRMCarry]:
        out = []
        for _ in range(steps):
            carry, _ = model(carry, batch)
            out.append(carry.halted.tolist())
        return out, carry

    model.configure_exploration(seed=7)
    full, _ = run(6, model.initial_carry(batch))
    model.configure_exploration(seed=7)
    first, carry = run(3, model.initial_carry(batch))
    saved_rng, saved_carry = model.exploration_generator.get_state(), TRMCarry.from_state_dict(carry.state_dict())
    model.configure_exploration(seed=999)  # disturb, then restore
    model.exploration_generator.set_state(saved_rng)
    second, _ = run(3, saved_carry)
    assert first + second == full
    model.configure_exploration(seed=8)
    other, _ = run(6, model.initial_carry(batch))
    assert other != full


def test_two_ranks_with_half_batches_draw_like_one_rank(tiny_config, make_batch) -> None:
    torch.manual_seed(0)
    single = TRM(tiny_config(halt_max_steps=6, halt_exploration_prob=0.5)).train()
    _set_q_bias(single, 5.0)
    ranks = [TRM(single.config).train() for _ in range(2)]
    for rank, model in enumerate(ranks):
        model.load_state_dict(single.state_dict())
        model.configure_exploration(seed=5, rank=rank, world_size=2)
    single.configure_exploration(seed=5)
    batch = make_batch(single.config, 16)
    halves = [{k: v[:8] for k, v in batch.items()}, {k: v[8:] for k, v in batch.items()}]
    carry = single.initial_carry(batch)
    carries = [m.initial_carry(h) for m, h in zip(ranks, halves, strict=True)]
    for _ in range(4):
        carry, out = single(carry, batch)
        results = [m(c, h) for m, c, h in zip(ranks, carries, halves, strict=True)]
        carries = [c for c, _ in results]
        assert torch.equal(carry.halted, torch.cat([c.halted for c in carries]))
        assert torch.allclose(out["logits"], torch.cat([o["logits"] for _, o in results]), atol=1e-5)


def test_explicit_min_halt_steps_bypass_the_generator(tiny_config, make_batch) -> None:
    torch.manual_seed(0)
    model = TRM(tiny_config(halt_max_steps=6)).train()
    _set_q_bias(model, 5.0)
    batch = make_batch(model.config, 4)
    before = model.exploration_generator.get_state()
    minimum = torch.tensor([0, 3, 0, 2], dtype=torch.int32)
    carry = model.initial_carry(batch)
    carry, _ = model(carry, batch, min_halt_steps=minimum)
    assert carry.halted.tolist() == [True, False, True, False]
    carry, _ = model(carry, batch, min_halt_steps=minimum)
    assert carry.halted.tolist() == [True, False, True, True]
    assert torch.equal(before, model.exploration_generator.get_state())


def test_carry_state_dict_round_trip(tiny_config, make_batch) -> None:
    torch.manual_seed(0)
    model = TRM(tiny_config()).train()
    batch = make_batch(model.config, 3)
    carry, _ = model(model.initial_carry(batch), batch)
    flat = carry.state_dict()
    assert set(flat) == {"inner.z_H", "inner.z_L", "steps", "halted", *(f"current_data.{k}" for k in batch)}
    back = TRMCarry.from_state_dict(flat)
    assert all(torch.equal(back.state_dict()[k], v) for k, v in flat.items())


def test_act_continue_variant_produces_a_target(tiny_config, make_batch) -> None:
    torch.manual_seed(0)
    model = TRM(tiny_config(no_ACT_continue=False)).train()
    batch = make_batch(model.config, 3)
    _, out = model(model.initial_carry(batch), batch)
    target = out["target_q_continue"]
    assert target.shape == (3,) and not target.requires_grad and ((target > 0) & (target < 1)).all()


def test_act_off_runs_every_row_to_halt_max_steps_in_training(tiny_config, make_batch) -> None:
    torch.manual_seed(0)
    model = TRM(tiny_config(halt_max_steps=4, halt_exploration_prob=0.5, act=False)).train()
    _set_q_bias(model, 5.0)  # the q head wants to halt at once: must be ignored
    batch = make_batch(model.config, 6)
    before = model.exploration_generator.get_state()
    carry = model.initial_carry(batch)
    history = []
    for _ in range(9):
        carry, out = model(carry, batch, min_halt_steps=torch.zeros(6, dtype=torch.int32))
        assert (out["q_halt_logits"] > 0).all() and out["q_halt_logits"].requires_grad  # the q head still trains
        history.append((carry.steps.tolist(), carry.halted.tolist()))
    assert [steps for steps, _ in history] == [[s] * 6 for s in (1, 2, 3, 4, 1, 2, 3, 4, 1)]
    assert [halted for _, halted in history] == [[s == 4] * 6 for s in (1, 2, 3, 4, 1, 2, 3, 4, 1)]
    carry, _ = model(carry, batch)  # without given minimums nothing is drawn either: no exploration
    assert torch.equal(before, model.exploration_generator.get_state())


def test_act_off_keeps_the_continue_target_of_the_hrm_variant(tiny_config, make_batch) -> None:
    torch.manual_seed(0)
    model = TRM(tiny_config(act=False, no_ACT_continue=False)).train()
    with torch.no_grad():
        model.inner.q_head.bias.copy_(torch.tensor([5.0, -5.0]))  # q_halt > q_continue: HRM would halt
    batch = make_batch(model.config, 3)
    carry, out = model(model.initial_carry(batch), batch)
    assert not carry.halted.any() and "target_q_continue" in out
