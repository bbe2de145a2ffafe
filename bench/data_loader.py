"""Loader benchmark: how fast a built split opens and how many examples/s the sampler + batch assembly deliver,
next to what a training step consumes.

    .venv/bin/python bench/data_loader.py DATASET [--batch 768] [--steps 300] [--threads 1] [--cache DIR]

DATASET is a built folder or a name under the data root (build it first, e.g. `trm data build sudoku-extreme-1k`).
The training-side reference rates come from the official runs' wall-clock (docs/reference.md §2.5/§5): Sudoku
65,104 steps of 768 in < 36 h on one L40S (>= 386 examples/s) and ARC-AGI-1 ~519k steps of 768 in ~3 days on 4 H100
(~1,540 examples/s for the whole job, ~385 per rank). Prints one JSON object per measurement.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import psutil
import torch

from trm.data.loader import PuzzleDataset, test_batches
from trm.data.sampler import GroupSampler

OFFICIAL_CONSUMPTION = {  # examples per second a training job needs (whole job), from the official wall-clock
    "sudoku (1x L40S, 65,104 steps < 36 h)": 65_104 * 768 / (36 * 3600),
    "arc-agi-1 (4x H100, ~519k steps ~72 h)": 518_071 * 768 / (72 * 3600),
}


def _rss_gb() -> float:
    return psutil.Process().memory_info().rss / 1e9


def _anon_rss_gb() -> float:
    """RSS minus file-backed pages: the memory a memory-mapped split really costs (mapped pages are page cache)."""
    info = psutil.Process().memory_info()
    return (info.rss - info.shared) / 1e9


def open_split(dataset: str, split: str, cache: Path | None) -> tuple[PuzzleDataset, dict[str, float]]:
    """Open a split, reporting the seconds and the RSS it added (and, with a cache, a second warm open)."""
    rss_before, anon_before = _rss_gb(), _anon_rss_gb()
    started = time.perf_counter()
    ds = PuzzleDataset.open(dataset, split, cache_dir=cache)
    report = {
        "open_seconds": round(time.perf_counter() - started, 3),
        "open_rss_gb": round(_rss_gb() - rss_before, 3),
        "open_anon_rss_gb": round(_anon_rss_gb() - anon_before, 3),
    }
    if cache is not None:
        started = time.perf_counter()
        ds = PuzzleDataset.open(dataset, split, cache_dir=cache)
        report["warm_open_seconds"] = round(time.perf_counter() - started, 3)
    return ds, report


def sampler_rate(ds: PuzzleDataset, batch: int, steps: int, world_size: int) -> dict[str, float]:
    sampler = GroupSampler(ds, batch, seed=0, rank=0, world_size=world_size)
    next(sampler)  # plan the first iteration outside the timing
    started = time.perf_counter()
    for _ in range(steps):
        next(sampler)
    seconds = time.perf_counter() - started
    return {
        f"w{world_size}_rank_examples_per_s": round(steps * (batch // world_size) / seconds),
        f"w{world_size}_batches_per_s": round(steps / seconds, 1),
    }


def measure(dataset: str, batch: int, steps: int, cache: Path | None) -> dict[str, object]:
    ds, train_open = open_split(dataset, "train", cache)
    result: dict[str, object] = {
        "dataset": ds.path.name,
        "storage": ds.storage.split(":")[0],
        "train_examples": len(ds),
        "groups": ds.num_groups,
        "puzzles": ds.num_puzzles,
        "seq_len": ds.seq_len,
        "global_batch": batch,
        **{f"train_{k}": v for k, v in train_open.items()},
    }
    for world_size in (1, 4):
        result.update(sampler_rate(ds, batch, steps, world_size))
    test, _ = open_split(dataset, "test", cache)
    started = time.perf_counter()
    test_rows = sum(int((b["example_index"] >= 0).sum()) for b in test_batches(test, batch))
    result["test_batches_examples_per_s"] = round(test_rows / max(time.perf_counter() - started, 1e-9))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("dataset")
    parser.add_argument("--batch", type=int, default=768)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the loader runs beside training)")
    parser.add_argument("--cache", type=Path, default=None, help="decoded-token cache dir (memory-mapped open)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(json.dumps(measure(args.dataset, args.batch, args.steps, args.cache)))
    for what, rate in OFFICIAL_CONSUMPTION.items():
        print(json.dumps({"training_consumes": what, "examples_per_s": round(rate)}))


if __name__ == "__main__":
    main()
