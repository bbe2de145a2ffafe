"""Shape and recursion hyper-parameters of the TRM network (spec §1). Defaults are the paper's ARC/Maze-Att values."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class ModelConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # filled from the dataset's metadata.json when left at 0
    seq_len: int = 0
    vocab_size: int = 0
    num_puzzle_identifiers: int = 0

    hidden_size: int = 512
    num_heads: int = 8
    expansion: float = 4.0
    L_layers: int = 2  # blocks in the one shared network
    H_cycles: int = Field(3, description="T: recursion processes per supervision step")
    L_cycles: int = Field(4, description="n: z-updates per process")
    puzzle_emb_ndim: int = 512  # 0 disables the puzzle embedding
    puzzle_emb_len: int = 16  # prefix slots; 0 = ceil(puzzle_emb_ndim / hidden_size)
    pos_encodings: Literal["rope", "learned", "none"] = "rope"
    mlp_t: bool = False  # token-mixing MLP instead of attention (Sudoku-MLP)
    rope_theta: float = 10000.0
    rms_norm_eps: float = 1e-5
    halt_max_steps: int = 16
    halt_exploration_prob: float = 0.1
    # True = TRM default: halt when q_halt > 0, no continue target. False = HRM-style q_halt > q_continue plus a
    # bootstrapped continue target from a second no-grad inner forward (outputs["target_q_continue"]).
    no_ACT_continue: bool = True
    forward_dtype: Literal["float32", "bfloat16"] = "float32"  # the trainer picks bfloat16 on CUDA
