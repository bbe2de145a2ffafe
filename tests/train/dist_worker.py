"""Run as a script: one rank of a gloo process group trains the tiny config for a few steps and saves its
trainer state (rank 0 only) to a safetensors file. Used by test_distributed.py with 2 real processes."""

from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist

sys.path.insert(0, str(Path(__file__).resolve().parent))
from safetensors.torch import save_file
from train_fixtures import tiny_config

from trm.data.loader import PuzzleDataset
from trm.train.trainer import Trainer


def main() -> None:
    rank, world, init_file, data_path, out_file, steps = sys.argv[1:7]
    overrides = sys.argv[7:]
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", init_method=f"file://{init_file}", rank=int(rank), world_size=int(world), timeout=timedelta(seconds=120)
    )
    try:
        config = tiny_config(Path(data_path), Path(out_file).parent, *overrides)
        trainer = Trainer(config, PuzzleDataset.open(data_path, "train"), process_group=dist.group.WORLD)
        metrics = [trainer.step() for _ in range(int(steps))]
        tensors, _meta = trainer.state_dict()
        if int(rank) == 0:
            tensors["metrics.lm_loss"] = torch.tensor([m["lm_loss"] for m in metrics], dtype=torch.float64)
            save_file(tensors, out_file)
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
