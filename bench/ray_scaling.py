"""Ray Train weak scaling and overhead on this machine: 1 vs 2 CPU workers with a fixed batch per worker.

What is measured (one local Ray, started once and timed):
* ``ray_start_s``: ``connect()`` of a fresh local Ray (what a laptop run pays once).
* per run: wall time of ``run_ray_training`` and the steady training throughput (samples/s) from the last
  report window (the run reports twice, so the second window excludes start-up and the first evaluation);
  ``overhead_s`` = wall time - steps / steady steps-per-second (worker start, process group, dataset open,
  evaluations, checkpoint upload, teardown).
* a plain single-process Trainer with the same per-worker batch and 1 thread, as the no-Ray baseline.
Weak-scaling efficiency = throughput(2 workers) / (2 x throughput(1 worker)); target >= 0.9 (1.8x).

    .venv/bin/python bench/ray_scaling.py [--steps 300] [--batch-per-worker 64] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from trm.config import load_config  # noqa: E402


def plain_throughput(config, steps: int) -> float:
    """Samples/s of one process, one thread, no Ray (after a short warm-up)."""
    from trm.data.loader import PuzzleDataset
    from trm.train.loop import ensure_dataset
    from trm.train.trainer import Trainer

    torch.set_num_threads(1)
    trainer = Trainer(config, PuzzleDataset.open(ensure_dataset(config), "train"))
    for _ in range(10):
        trainer.step()
    start = time.perf_counter()
    for _ in range(steps):
        trainer.step()
    return steps * config.train.global_batch_size / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="smoke")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch-per-worker", type=int, default=64)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    from trm.distributed.cluster import connect
    from trm.distributed.train_job import run_ray_training

    work = Path(tempfile.mkdtemp(prefix="trm-bench-ray-"))
    data_root = work / "data"  # built here, so the benchmark never touches the DVC-tracked data/ folder

    def config_for(workers: int):
        return load_config(args.preset, [
            f"data.root={data_root}", f"train.max_steps={args.steps}", f"train.eval_interval={args.steps // 2}",
            f"train.global_batch_size={args.batch_per_worker * workers}", f"run.output_dir={work}",
        ])

    rows: dict = {"preset": args.preset, "steps": args.steps, "batch_per_worker": args.batch_per_worker,
                  "cpus": os.cpu_count()}
    rows["plain_samples_per_s"] = plain_throughput(config_for(1), min(args.steps, 200))

    started = time.perf_counter()
    session = connect(num_cpus=max(args.workers))
    rows["ray_start_s"] = time.perf_counter() - started
    try:
        for workers in args.workers:
            config = config_for(workers)
            t0 = time.perf_counter()
            result = run_ray_training(config, workers=workers, storage=work / "store", name=f"w{workers}")
            wall = time.perf_counter() - t0
            steady = result.metrics["samples_per_second"]
            compute = args.steps * config.train.global_batch_size / steady
            rows[f"w{workers}"] = {"wall_s": wall, "samples_per_s": steady, "overhead_s": wall - compute,
                                   "eval_exact_accuracy": result.metrics.get("eval_exact_accuracy")}
            print(f"{workers} worker(s): {steady:,.0f} samples/s steady, wall {wall:.1f} s, "
                  f"overhead {wall - compute:.1f} s", flush=True)
    finally:
        session.close()
        shutil.rmtree(work, ignore_errors=True)
    if 1 in args.workers and 2 in args.workers:
        rows["speedup_2_over_1"] = rows["w2"]["samples_per_s"] / rows["w1"]["samples_per_s"]
        rows["weak_scaling_efficiency"] = rows["speedup_2_over_1"] / 2
    rows["ray_1worker_vs_plain"] = rows["w1"]["samples_per_s"] / rows["plain_samples_per_s"] if "w1" in rows else None
    print(json.dumps(rows, indent=1))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
