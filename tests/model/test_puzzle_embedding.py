"""The sparse puzzle table: a buffer, per-forward gradient leaves, gradients handed to the SignSGD optimizer."""

from __future__ import annotations

import torch

from trm.model import TRM, PuzzleEmbedding


def test_table_is_a_buffer_and_eval_records_nothing() -> None:
    table = PuzzleEmbedding(10, 4, cast_to=torch.float32)
    assert "weights" in dict(table.named_buffers()) and not list(table.parameters())
    table.eval()
    out = table(torch.tensor([1, 2]))
    assert not out.requires_grad and table.local_ids is None
    table.train()
    with torch.no_grad():
        table(torch.tensor([1, 2]))
    assert table.local_ids is None


def test_training_forward_returns_a_leaf_and_collects_row_gradients() -> None:
    table = PuzzleEmbedding(10, 4, cast_to=torch.float32).train()
    with torch.no_grad():
        table.weights.copy_(torch.arange(40, dtype=torch.float32).view(10, 4))
    ids = torch.tensor([[7], [2], [7]], dtype=torch.int32)
    out = table(ids)
    assert torch.equal(out, table.weights[[7, 2, 7]]) and table.local_weights.is_leaf
    (out * torch.tensor([[1.0], [2.0], [3.0]])).sum().backward()
    second = table(torch.tensor([5]))  # gradient accumulation: a second micro-batch, no gradient reaching it
    assert second.shape == (1, 4)
    grads = table.take_sparse_gradients()
    assert grads.ids.tolist() == [7, 2, 7, 5]
    assert torch.equal(grads.grads, torch.tensor([[1.0] * 4, [2.0] * 4, [3.0] * 4, [0.0] * 4]))
    assert table.local_ids is None and table.take_sparse_gradients().ids.numel() == 0
    assert table.weights.grad is None  # the table itself is never touched by autograd


def test_model_gradients_reach_only_the_batch_rows(tiny_config, make_batch) -> None:
    torch.manual_seed(0)
    model = TRM(tiny_config(num_puzzle_identifiers=50)).train()
    batch = make_batch(model.config, 6)
    _, out = model(model.initial_carry(batch), batch)
    out["logits"].sum().backward()
    grads = model.puzzle_emb.take_sparse_gradients()
    assert torch.equal(grads.ids, batch["puzzle_identifiers"].long())
    assert grads.grads.shape == (6, 32) and grads.grads.abs().sum() > 0


def test_bfloat16_forward_casts_but_keeps_fp32_gradients() -> None:
    table = PuzzleEmbedding(3, 4, cast_to=torch.bfloat16).train()
    out = table(torch.tensor([0, 1]))
    assert out.dtype == torch.bfloat16
    out.float().sum().backward()
    assert table.take_sparse_gradients().grads.dtype == torch.float32
