"""The TRM network (docs/reference.md §1.2-§1.5) and its ACT wrapper with the persistent carry (§2.1).

Module and buffer names mirror the official model, so an official state dict is ours once its wrapper prefixes are
stripped (`trm.model.official`). How exploration randomness is drawn, and why: docs/architecture.md ("Design: the
model").
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from trm.config import ModelConfig
from trm.model.eager import eager
from trm.model.init import trunc_normal_
from trm.model.layers import Block, CastedEmbedding, CastedLinear, CosSin, ReasoningModule, RotaryEmbedding
from trm.model.puzzle_embedding import PuzzleEmbedding

LEARNED_POSITION_SCALE = 0.707106781  # 1/sqrt(2): keeps the variance of token + position embeddings at 1
Q_HEAD_INIT_BIAS = -5.0  # sigmoid(-5) ≈ 0.0067: nothing halts early in training


class RecursionDepth(NamedTuple):
    """T and n of one supervision step: the config's by default, shallower during a depth curriculum."""

    H_cycles: int
    L_cycles: int


@dataclass
class InnerCarry:
    """Recursion state between supervision steps: z_H is the answer state y, z_L the latent z ([B, L+P, D])."""

    z_H: torch.Tensor
    z_L: torch.Tensor

    @property
    def y(self) -> torch.Tensor:
        return self.z_H

    @property
    def z(self) -> torch.Tensor:
        return self.z_L


@dataclass
class TRMCarry:
    """Everything that persists across supervision (= optimizer) steps for one batch of rows."""

    inner: InnerCarry
    steps: torch.Tensor  # int32 [B]: supervision steps done on the row's current example
    halted: torch.Tensor  # bool [B]: the row takes a new example (and fresh y, z) on the next call
    current_data: dict[str, torch.Tensor]  # the example each row is working on (same keys as a batch)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Flat name -> tensor map for checkpoints (safetensors-friendly)."""
        tensors = {"inner.z_H": self.inner.z_H, "inner.z_L": self.inner.z_L, "steps": self.steps, "halted": self.halted}
        tensors.update({f"current_data.{key}": value for key, value in self.current_data.items()})
        return tensors

    @classmethod
    def from_state_dict(cls, tensors: dict[str, torch.Tensor]) -> TRMCarry:
        missing = {"inner.z_H", "inner.z_L", "steps", "halted"} - tensors.keys()
        if missing:
            raise KeyError(f"carry state is missing {sorted(missing)}")
        data = {key.removeprefix("current_data."): v for key, v in tensors.items() if key.startswith("current_data.")}
        return cls(InnerCarry(tensors["inner.z_H"], tensors["inner.z_L"]), tensors["steps"], tensors["halted"], data)

    def to(self, device: torch.device | str) -> TRMCarry:
        return TRMCarry(
            InnerCarry(self.inner.z_H.to(device), self.inner.z_L.to(device)),
            self.steps.to(device),
            self.halted.to(device),
            {key: value.to(device) for key, value in self.current_data.items()},
        )


def resolve_puzzle_emb_len(config: ModelConfig) -> int:
    """Number of prefix slots P: 0 without a puzzle embedding, else the configured count or ceil(ndim / D)."""
    if config.puzzle_emb_ndim == 0:
        return 0
    if config.puzzle_emb_len == 0:
        return -(config.puzzle_emb_ndim // -config.hidden_size)
    return config.puzzle_emb_len


def _check_config(config: ModelConfig) -> None:
    problems = []
    if config.seq_len <= 0:
        problems.append(f"seq_len={config.seq_len} (fill it from the dataset metadata)")
    if config.vocab_size <= 0:
        problems.append(f"vocab_size={config.vocab_size} (fill it from the dataset metadata)")
    if config.puzzle_emb_ndim > 0 and config.num_puzzle_identifiers <= 0:
        problems.append(f"num_puzzle_identifiers={config.num_puzzle_identifiers} with puzzle_emb_ndim > 0")
    if config.hidden_size % config.num_heads:
        problems.append(f"hidden_size {config.hidden_size} not divisible by num_heads {config.num_heads}")
    if config.puzzle_emb_ndim > resolve_puzzle_emb_len(config) * config.hidden_size:
        problems.append(f"puzzle_emb_ndim {config.puzzle_emb_ndim} exceeds puzzle_emb_len × hidden_size")
    if config.H_cycles < 1 or config.L_cycles < 1 or config.L_layers < 1 or config.halt_max_steps < 1:
        problems.append("H_cycles, L_cycles, L_layers and halt_max_steps must be >= 1")
    if problems:
        raise ValueError("invalid ModelConfig: " + "; ".join(problems))


class TRMInner(nn.Module):
    """Embedding, the shared 2-block network, the T×(n+1) recursion and the two heads (one supervision step)."""

    H_init: torch.Tensor
    L_init: torch.Tensor

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        _check_config(config)
        self.config = config
        self.forward_dtype: torch.dtype = getattr(torch, config.forward_dtype)
        self.puzzle_emb_len = resolve_puzzle_emb_len(config)
        self.total_len = config.seq_len + self.puzzle_emb_len
        hidden = config.hidden_size
        self.embed_scale = math.sqrt(hidden)
        embed_std = 1.0 / self.embed_scale

        # Construction order follows the official module so the global-RNG consumption order is the same.
        self.embed_tokens = CastedEmbedding(config.vocab_size, hidden, init_std=embed_std, cast_to=self.forward_dtype)
        self.lm_head = CastedLinear(hidden, config.vocab_size, bias=False)
        self.q_head = CastedLinear(hidden, 2, bias=True)
        if config.puzzle_emb_ndim > 0:
            self.puzzle_emb = PuzzleEmbedding(
                config.num_puzzle_identifiers, config.puzzle_emb_ndim, cast_to=self.forward_dtype
            )
        if config.pos_encodings == "rope":
            self.rotary_emb = RotaryEmbedding(hidden // config.num_heads, self.total_len, config.rope_theta)
        elif config.pos_encodings == "learned":
            self.embed_pos = CastedEmbedding(self.total_len, hidden, init_std=embed_std, cast_to=self.forward_dtype)

        token_mixing_length = self.total_len if config.mlp_t else None
        blocks = [
            Block(hidden, config.num_heads, config.expansion, config.rms_norm_eps, token_mixing_length)
            for _ in range(config.L_layers)
        ]
        self.L_level = ReasoningModule(blocks)

        # Fixed (never trained) initial states, kept in fp32 and cast to the forward dtype on use.
        self.register_buffer("H_init", trunc_normal_(torch.empty(hidden), std=1.0), persistent=True)
        self.register_buffer("L_init", trunc_normal_(torch.empty(hidden), std=1.0), persistent=True)

        assert self.q_head.bias is not None  # built with bias=True just above
        with torch.no_grad():
            self.q_head.weight.zero_()
            self.q_head.bias.fill_(Q_HEAD_INIT_BIAS)

    def input_embeddings(self, inputs: torch.Tensor, puzzle_identifiers: torch.Tensor) -> torch.Tensor:
        """x: [B, L+P, D] = sqrt(D) · (prefix slots ++ token embeddings) (+ learned positions)."""
        if inputs.ndim != 2 or inputs.shape[1] != self.config.seq_len:
            raise ValueError(f"inputs have shape {tuple(inputs.shape)}, expected [B, {self.config.seq_len}]")
        embedding: torch.Tensor = self.embed_tokens(inputs.to(torch.int32))
        if self.config.puzzle_emb_ndim > 0:
            prefix = self.puzzle_emb(puzzle_identifiers)
            pad = self.puzzle_emb_len * self.config.hidden_size - prefix.shape[-1]
            if pad > 0:
                prefix = F.pad(prefix, (0, pad))
            embedding = torch.cat((prefix.view(-1, self.puzzle_emb_len, self.config.hidden_size), embedding), dim=-2)
        if self.config.pos_encodings == "learned":
            embedding = LEARNED_POSITION_SCALE * (embedding + self.embed_pos.embedding_weight.to(self.forward_dtype))
        return self.embed_scale * embedding

    def empty_carry(self, batch_size: int, device: torch.device | None = None) -> InnerCarry:
        """Zero-filled states (zeros rather than torch.empty so a carry never holds garbage or NaN)."""
        device = device if device is not None else self.H_init.device
        shape = (batch_size, self.total_len, self.config.hidden_size)
        return InnerCarry(
            torch.zeros(shape, dtype=self.forward_dtype, device=device),
            torch.zeros(shape, dtype=self.forward_dtype, device=device),
        )

    def reset_carry(self, reset: torch.Tensor, carry: InnerCarry) -> InnerCarry:
        """Rows flagged in `reset` restart from H_init / L_init at every position; other rows keep their state."""
        flag = reset.view(-1, 1, 1)
        return InnerCarry(
            torch.where(flag, self.H_init.to(carry.z_H.dtype), carry.z_H),
            torch.where(flag, self.L_init.to(carry.z_L.dtype), carry.z_L),
        )

    def _rotary(self) -> CosSin | None:
        return self.rotary_emb() if self.config.pos_encodings == "rope" else None

    def forward(
        self, carry: InnerCarry, data: dict[str, torch.Tensor], depth: RecursionDepth | None = None
    ) -> tuple[InnerCarry, torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """One supervision step: T-1 processes without grad, one with grad (with ``one_step_gradient`` only its last
        z and y updates); returns detached new states. ``depth`` overrides the config's T and n."""
        h_cycles, l_cycles = depth if depth is not None else (self.config.H_cycles, self.config.L_cycles)
        differentiated_z_updates = 1 if self.config.one_step_gradient else l_cycles
        cos_sin = self._rotary()
        x = self.input_embeddings(data["inputs"], data["puzzle_identifiers"])
        z_H, z_L = carry.z_H, carry.z_L
        with torch.no_grad():
            for _process in range(h_cycles - 1):
                for _update in range(l_cycles):
                    z_L = self.L_level(z_L, z_H + x, cos_sin)
                z_H = self.L_level(z_H, z_L, cos_sin)
            for _update in range(l_cycles - differentiated_z_updates):
                z_L = self.L_level(z_L, z_H + x, cos_sin)
        for _update in range(differentiated_z_updates):
            z_L = self.L_level(z_L, z_H + x, cos_sin)
        z_H = self.L_level(z_H, z_L, cos_sin)

        new_carry = InnerCarry(z_H.detach(), z_L.detach())
        logits = self.lm_head(z_H)[:, self.puzzle_emb_len :]
        q_logits = self.q_head(z_H[:, 0]).to(torch.float32)
        return new_carry, logits, (q_logits[..., 0], q_logits[..., 1])


class TRM(nn.Module):
    """ACT wrapper: one call = one supervision step for every row of the persistent carry (contract 3)."""

    def __init__(self, config: ModelConfig, exploration_seed: int = 0) -> None:
        super().__init__()
        self.config = config
        self.inner = TRMInner(config)
        self.exploration_generator = torch.Generator(device="cpu")
        self.exploration_generator.manual_seed(exploration_seed)
        self.exploration_rank = 0
        self.exploration_world_size = 1

    @property
    def puzzle_emb(self) -> PuzzleEmbedding | None:
        return getattr(self.inner, "puzzle_emb", None)

    def configure_exploration(
        self, seed: int | None = None, rank: int | None = None, world_size: int | None = None
    ) -> None:
        """Seed the exploration generator and/or set this process's slot in the global batch."""
        if seed is not None:
            self.exploration_generator.manual_seed(seed)
        world_size = self.exploration_world_size if world_size is None else world_size
        rank = self.exploration_rank if rank is None else rank
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"exploration rank {rank} is not in [0, world_size={world_size})")
        self.exploration_rank, self.exploration_world_size = rank, world_size

    @eager
    def draw_min_halt_steps(self, global_batch_size: int) -> torch.Tensor:
        """Minimum steps per row of the global batch (int32, CPU): U{2..max} with prob. p, else 0 (no minimum)."""
        uniform = torch.rand(global_batch_size, generator=self.exploration_generator)
        explore = uniform < self.config.halt_exploration_prob
        low_high = (2, self.config.halt_max_steps + 1)
        min_steps = torch.randint(*low_high, (global_batch_size,), generator=self.exploration_generator)
        return (explore * min_steps).to(torch.int32)

    def _local_min_halt_steps(self, local_batch_size: int) -> torch.Tensor:
        drawn = self.draw_min_halt_steps(local_batch_size * self.exploration_world_size)
        start = self.exploration_rank * local_batch_size
        return drawn[start : start + local_batch_size]

    def initial_carry(self, batch: dict[str, torch.Tensor]) -> TRMCarry:
        """A carry whose rows are all halted, so the first call loads every row of `batch`."""
        batch_size = batch["inputs"].shape[0]
        device = self.inner.H_init.device
        return TRMCarry(
            inner=self.inner.empty_carry(batch_size, device),
            steps=torch.zeros(batch_size, dtype=torch.int32, device=device),
            halted=torch.ones(batch_size, dtype=torch.bool, device=device),
            current_data={key: torch.zeros_like(value) for key, value in batch.items()},
        )

    def forward(
        self,
        carry: TRMCarry,
        batch: dict[str, torch.Tensor],
        min_halt_steps: torch.Tensor | None = None,
        depth: RecursionDepth | None = None,
    ) -> tuple[TRMCarry, dict[str, torch.Tensor]]:
        """Replace halted rows by the batch's rows, run one supervision step, decide which rows halt next.
        ``depth``: the recursion depth of this step (a training curriculum); None = the config's."""
        missing = carry.current_data.keys() - batch.keys()
        if missing:
            raise KeyError(f"batch lacks keys {sorted(missing)} that the carry holds")
        halted = carry.halted
        inner_carry = self.inner.reset_carry(halted, carry.inner)
        steps = torch.where(halted, 0, carry.steps)
        data = {
            key: torch.where(halted.view((-1,) + (1,) * (batch[key].ndim - 1)), batch[key], held)
            for key, held in carry.current_data.items()
        }

        inner_carry, logits, (q_halt, q_continue) = self.inner(inner_carry, data, depth)
        outputs = {"logits": logits, "q_halt_logits": q_halt, "q_continue_logits": q_continue}

        with torch.no_grad():
            steps = steps + 1
            is_last_step = steps >= self.config.halt_max_steps
            new_halted = is_last_step
            if self.training and self.config.halt_max_steps > 1:
                if self.config.act:
                    new_halted = self._halts_early(new_halted, steps, q_halt, q_continue, min_halt_steps)
                if not self.config.no_ACT_continue:
                    _, _, (next_halt, next_continue) = self.inner(inner_carry, data, depth)
                    target = torch.where(is_last_step, next_halt, torch.maximum(next_halt, next_continue))
                    outputs["target_q_continue"] = torch.sigmoid(target)

        return TRMCarry(inner_carry, steps, new_halted, data), outputs

    def _halts_early(
        self,
        halted: torch.Tensor,
        steps: torch.Tensor,
        q_halt: torch.Tensor,
        q_continue: torch.Tensor,
        min_halt_steps: torch.Tensor | None,
    ) -> torch.Tensor:
        """ACT in training: a row also halts when its q head says so, but not before its exploration minimum."""
        wants_to_halt = q_halt > 0 if self.config.no_ACT_continue else q_halt > q_continue
        halted = halted | wants_to_halt
        if min_halt_steps is None:
            min_halt_steps = self._local_min_halt_steps(steps.shape[0])
        return halted & (steps >= min_halt_steps.to(steps.device))


def count_trainable_parameters(model: nn.Module) -> int:
    """Parameters that receive gradients (the puzzle table is a buffer and is not counted, as in the paper)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
