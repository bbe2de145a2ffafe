"""Shared helpers for training tests (imported by path: tests use --import-mode=importlib): a tiny synthetic
dataset written with the real dataset writer (many puzzle identifiers, groups of several puzzles, some ignored
labels), so trainer tests exercise the sparse puzzle table and the group sampler without depending on any
generator, and a very small config on it."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from trm.config import TRMConfig, load_config
from trm.data.writer import DatasetWriter, ExampleBatch

SEQ_LEN = 8
VOCAB = 6


def write_tiny_dataset(out: Path, groups: int = 12, puzzles_per_group: int = 2, examples_per_puzzle: int = 2) -> Path:
    rng = np.random.default_rng(123)
    with DatasetWriter(out, SEQ_LEN) as writer:
        for split, split_groups in (("train", groups), ("val", 3), ("test", 3)):
            n_puzzles = split_groups * puzzles_per_group
            n = n_puzzles * examples_per_puzzle
            puzzle_index = np.repeat(np.arange(n_puzzles), examples_per_puzzle).astype(np.int32)
            group_index = (puzzle_index // puzzles_per_group).astype(np.int32)
            if split == "train":
                writer.identifiers.extend(f"p{i}" for i in range(n_puzzles))
            ids = (puzzle_index % (groups * puzzles_per_group) + 1).astype(np.int32)
            inputs = rng.integers(1, VOCAB, size=(n, SEQ_LEN)).astype(np.uint8)
            labels = ((inputs.astype(np.int64) + ids[:, None]) % (VOCAB - 1) + 1).astype(np.uint8)
            labels[:, -1] = 0  # ignored position
            writer.split(split).write(
                ExampleBatch(
                    inputs=inputs,
                    labels=labels,
                    puzzle_identifier=ids,
                    puzzle_index=puzzle_index,
                    group_index=group_index,
                    source_names=["tiny"],
                    source_codes=np.zeros(n, np.int32),
                )
            )
        writer.commit(
            {
                "name": "tiny",
                "task": "sudoku",
                "builder_version": "test",
                "params": {},
                "seq_len": SEQ_LEN,
                "vocab_size": VOCAB,
                "vocab": [str(i) for i in range(VOCAB)],
                "pad_id": 0,
                "ignore_label_id": 0,
                "blank_identifier_id": 0,
                "grid_shape": (2, 4),
                "sources": [],
            }
        )
    return out


TINY_OVERRIDES = (
    "model.hidden_size=32",
    "model.num_heads=2",
    "model.H_cycles=2",
    "model.L_cycles=2",
    "model.puzzle_emb_ndim=32",
    "model.halt_max_steps=4",
    "model.halt_exploration_prob=0.5",
    "train.global_batch_size=8",
    "train.max_steps=20",
    "train.lr_warmup_steps=2",
    "train.puzzle_emb_lr=0.01",
    "train.ema_rate=0.9",
    "eval.batch_size=8",
)


def tiny_config(data_path: Path, run_dir: Path, *overrides: str) -> TRMConfig:
    """A very small model on the tiny dataset; several micro-batches' worth of rows per global batch."""
    return load_config(
        "smoke",
        [
            f"data.name={data_path}",
            f"run.output_dir={run_dir}",
            *TINY_OVERRIDES,
            *overrides,
        ],
    )
