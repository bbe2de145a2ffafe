"""Ray Train weak scaling and overhead on this machine: 1 vs 2 CPU workers with a fixed batch per worker.

What is measured (one local Ray, started once and timed):
* ``ray_start_s``: ``connect()`` of a fresh local Ray (what a laptop run pays once).
* per run: wall time of ``run_ray_training`` and the steady training throughput (samples/s) from the last
  report window (the run reports twice, so the second window excludes start-up and the first evaluation);
  ``overhead_s`` = wall time - steps / steady steps-per-second (worker start, process group, dataset open,
  evaluations, checkpoint upload, teardown).
* the same Trainer without Ray, one thread per process: 1 plain process, 2 plain processes over gloo (file://
  rendezvous) and 2 *independent* plain processes run at the same time (no communication at all), which is the
  ceiling this machine allows for 2 busy cores; all timed over the same steps after a warm-up.
Weak-scaling efficiency = throughput(2 workers) / (2 x throughput(1 worker)); target >= 0.9 (1.8x).

    .venv/bin/python bench/ray_scaling.py [--preset smoke] [--steps 300] [--batch-per-worker 64]
                                          [--set key=value ...] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from trm.config import load_config  # noqa: E402

WARMUP_STEPS = 10


def plain_worker(config_json: str, steps: int, rank: int, world: int, rendezvous: str) -> None:
    """Child-process entry: train ``steps`` steps after a warm-up (in a gloo group when world > 1) and print the
    samples/s of the global batch as JSON on stdout."""
    import torch.distributed as dist

    from trm.config import TRMConfig
    from trm.data.build import ensure_built
    from trm.data.loader import PuzzleDataset
    from trm.train.trainer import Trainer

    torch.set_num_threads(1)
    config = TRMConfig.model_validate_json(config_json)
    group = None
    if world > 1:
        dist.init_process_group("gloo", init_method=f"file://{rendezvous}", rank=rank, world_size=world)
        group = dist.group.WORLD
    trainer = Trainer(
        config,
        PuzzleDataset.open(ensure_built(config.data.resolve_path(), config.data.name), "train"),
        process_group=group,
    )
    for _ in range(WARMUP_STEPS):
        trainer.step()
    if group is not None:
        dist.barrier()
    start = time.perf_counter()
    for _ in range(steps):
        trainer.step()
    seconds = time.perf_counter() - start
    if group is not None:
        dist.destroy_process_group()
    print(json.dumps({"samples_per_s": steps * config.train.global_batch_size / seconds}), flush=True)


def plain_throughput(config, steps: int, world: int, work: Path, independent: bool = False) -> float:
    """Samples/s without Ray: `world` child processes (one thread each) in one gloo group, or, with
    `independent`, `world` unconnected single processes at once (their throughputs summed)."""
    rendezvous = str(work / f"rdv-{time.monotonic_ns()}")  # a fresh file:// rendezvous per group
    child_config = (
        config
        if not independent
        else config.model_copy(
            update={
                "train": config.train.model_copy(update={"global_batch_size": config.train.global_batch_size // world})
            }
        )
    )
    size = 1 if independent else world
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--plain-worker",
                child_config.model_dump_json(),
                str(steps),
                str(0 if independent else rank),
                str(size),
                rendezvous,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        for rank in range(world)
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"plain benchmark process failed:\n{err[-2000:]}")
        results.append(json.loads(out.strip().splitlines()[-1])["samples_per_s"])
    return sum(results) if independent else results[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="smoke")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch-per-worker", type=int, default=64)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--plain-steps", type=int, default=None, help="steps of the no-Ray runs (default: --steps)")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra config overrides (e.g. eval.modes=[fixed] to shorten the evaluations)",
    )
    args = parser.parse_args()

    from trm.distributed.cluster import connect
    from trm.distributed.train_job import run_ray_training

    work = Path(tempfile.mkdtemp(prefix="trm-bench-ray-"))
    data_root = work / "data"  # built here, so the benchmark never touches the DVC-tracked data/ folder

    def config_for(workers: int):
        return load_config(
            args.preset,
            [
                f"data.root={data_root}",
                f"train.max_steps={args.steps}",
                f"train.eval_interval={args.steps // 2}",
                f"train.global_batch_size={args.batch_per_worker * workers}",
                f"run.output_dir={work}",
                "train.device=cpu",
                *args.overrides,
            ],
        )

    rows: dict = {
        "preset": args.preset,
        "steps": args.steps,
        "batch_per_worker": args.batch_per_worker,
        "cpus": os.cpu_count(),
        "load_before": os.getloadavg()[0],
    }
    plain_steps = args.plain_steps or args.steps
    from trm.data.build import ensure_built

    first = config_for(1)
    ensure_built(first.data.resolve_path(), first.data.name)  # build once, before anything is timed
    rows["plain_samples_per_s"] = plain_throughput(config_for(1), plain_steps, 1, work)
    if 2 in args.workers:
        rows["plain_2proc_gloo_samples_per_s"] = plain_throughput(config_for(2), plain_steps, 2, work)
        rows["plain_2proc_independent_samples_per_s"] = plain_throughput(
            config_for(2), plain_steps, 2, work, independent=True
        )
        print(
            f"no Ray: 1 process {rows['plain_samples_per_s']:,.1f}/s, 2 gloo processes "
            f"{rows['plain_2proc_gloo_samples_per_s']:,.1f}/s, 2 independent processes "
            f"{rows['plain_2proc_independent_samples_per_s']:,.1f}/s",
            flush=True,
        )

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
            rows[f"w{workers}"] = {
                "wall_s": wall,
                "samples_per_s": steady,
                "overhead_s": wall - compute,
                "eval_exact_accuracy": result.metrics.get("eval_exact_accuracy"),
            }
            print(
                f"{workers} worker(s): {steady:,.0f} samples/s steady, wall {wall:.1f} s, "
                f"overhead {wall - compute:.1f} s",
                flush=True,
            )
    finally:
        session.close()
        shutil.rmtree(work, ignore_errors=True)
    if 1 in args.workers and 2 in args.workers:
        rows["speedup_2_over_1"] = rows["w2"]["samples_per_s"] / rows["w1"]["samples_per_s"]
        rows["weak_scaling_efficiency"] = rows["speedup_2_over_1"] / 2
    rows["ray_1worker_vs_plain"] = rows["w1"]["samples_per_s"] / rows["plain_samples_per_s"] if "w1" in rows else None
    if "plain_2proc_gloo_samples_per_s" in rows:
        rows["plain_speedup_2_over_1"] = rows["plain_2proc_gloo_samples_per_s"] / rows["plain_samples_per_s"]
        rows["independent_speedup_2_over_1"] = (
            rows["plain_2proc_independent_samples_per_s"] / rows["plain_samples_per_s"]
        )
    rows["load_after"] = os.getloadavg()[0]
    print(json.dumps(rows, indent=1))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--plain-worker":
        plain_worker(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), sys.argv[6])
    else:
        main()
