"""Batch inference with Ray Data (`trm solve --ray`, trm/distributed/batch_solve.py) on this machine: worker scaling
and a streaming run over a million puzzles.

What is measured (one local Ray, started once):
* ``plain``: the same model answering the same puzzles in this process with one torch thread (``solve_tokens`` +
  ``answers_from``, no Ray, no files): the ceiling one worker can reach.
* ``scaling``: one CSV file of 9x9 Sudoku solved by ``solve_files`` with 1 worker, then with 2 workers (one torch
  thread each), side by side; puzzles/s = puzzles / wall time of the Ray Data job (read, solve, write, actor
  start-up included). Target: 2 workers >= 1.6x the puzzles/s of 1 worker.
* ``streaming``: a CSV of 1,000,000 puzzles (made from the 1000 real Sudoku-Extreme rows by relabelling digits,
  so every row is a valid puzzle with its solution; cached under runs/, never in git) solved with 2 workers and a
  cheap strategy, with the peak memory (PSS) of this process and all its descendants (the Ray processes included)
  sampled every second: a streaming job's memory stays flat while the file is far larger than any block.

The scaling model is the headroom model (runs/bench/headroom/full-seed0/export, trained 9x9 Sudoku) when present,
else an untrained one of the same shape. The streaming run uses a light untrained model by default (its rows/s
then measure the pipeline: CSV, encoding, answers, Parquet); ``--streaming-model headroom`` uses the real one
(about an hour and a half on 2 loaded cores at fixed:steps=1).

    .venv/bin/python bench/batch_solve.py [--scaling-rows 1536] [--scaling-strategy fixed]
                                          [--streaming-rows 1000000] [--streaming-model light|headroom] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import psutil  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.csv as pacsv  # noqa: E402
import torch  # noqa: E402
from _bench_report import cpu_model, emit, machine_note, replace_section  # noqa: E402

from trm.config import load_config  # noqa: E402
from trm.distributed.batch_solve import BatchSolveSummary, solve_files  # noqa: E402
from trm.distributed.cluster import connect  # noqa: E402
from trm.markdown import table  # noqa: E402
from trm.model import TRM  # noqa: E402
from trm.solver.answers import answers_from  # noqa: E402
from trm.solver.runner import as_strategy, open_solver, read_for, solve_tokens  # noqa: E402
from trm.train.export import export_model  # noqa: E402

SECTION = "batch_solve"
OUT = REPO / "runs" / "bench" / "batch_solve"
HEADROOM = REPO / "runs" / "bench" / "headroom" / "full-seed0" / "export"
SOURCE_CSV = REPO.parent / "shared" / "datasets" / "sudoku-extreme-1k" / "train1k.csv"
STREAMING_STRATEGY = "fixed:steps=1"
TARGET_RATIO = 1.6


# ---------------------------------------------------------------------------------------------------- inputs
def puzzles_csv(path: Path, rows: int) -> Path:
    """``rows`` valid 9x9 Sudoku with solutions: the 1000 real rows, then copies with their digits relabelled by a
    seeded permutation per copy (a relabelled Sudoku is still a Sudoku). Written once, in chunks, and reused."""
    if path.is_file() and path.with_suffix(".rows").is_file() and path.with_suffix(".rows").read_text() == str(rows):
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    base = pacsv.read_csv(
        SOURCE_CSV, convert_options=pacsv.ConvertOptions(column_types={c: pa.string() for c in ("question", "answer")})
    )
    questions = np.array([list(q.encode()) for q in base.column("question").to_pylist()], np.uint8)
    answers = np.array([list(a.encode()) for a in base.column("answer").to_pylist()], np.uint8)
    rng = np.random.default_rng(0)
    tmp = path.with_suffix(".tmp")
    with pacsv.CSVWriter(tmp, pa.schema([(c, pa.string()) for c in ("source", "question", "answer", "rating")])) as out:
        for start in range(0, rows, len(base)):
            lut = np.arange(256, dtype=np.uint8)
            if start:
                lut[ord("1") : ord("9") + 1] = ord("1") + rng.permutation(9)
            n = min(len(base), rows - start)
            as_text = (
                [bytes(row).decode() for row in lut[questions[:n]]],
                [bytes(row).decode() for row in lut[answers[:n]]],
            )
            out.write_table(
                pa.table({"source": ["bench"] * n, "question": as_text[0], "answer": as_text[1], "rating": ["0"] * n})
            )
    tmp.replace(path)
    path.with_suffix(".rows").write_text(str(rows))
    return path


def untrained_model(folder: Path, light: bool) -> Path:
    """A 9x9 Sudoku model with random weights: the headroom model's shape, or a light one (width 16, one layer,
    no recursion) whose answers cost little next to reading and writing the rows."""
    if (folder / "config.json").is_file():
        return folder
    torch.manual_seed(0)
    shape = ["model.seq_len=81", "model.vocab_size=11", "model.num_puzzle_identifiers=1"]
    if light:
        sizes = ["model.hidden_size=16", "model.puzzle_emb_ndim=16", "model.L_layers=1", "model.H_cycles=1"]
        config = load_config("smoke", ["data.name=sudoku-extreme-1k", *shape, *sizes, "model.L_cycles=1"])
    else:
        config = load_config("sudoku-9x9-hard", [*shape])
    return export_model(TRM(config.model), config, folder)


# ---------------------------------------------------------------------------------------------------- measuring
class TreeMeter:
    """This process and all its descendants (the Ray processes), sampled every ``interval`` seconds in a thread:
    the PSS timeline (its peak) and the CPU seconds each kind of process used while the meter ran."""

    def __init__(self, interval: float = 2.0) -> None:
        self.interval, self._stop = interval, threading.Event()
        self.timeline: list[tuple[float, int]] = []
        self._cpu: dict[int, tuple[str, float, float]] = {}  # pid -> (kind, CPU seconds at start or 0, latest)
        self._running = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._start = time.perf_counter()

    @staticmethod
    def kind(process: psutil.Process) -> str:
        """ "actor" (a Ray Data model worker), "driver" (this process) or the Ray process's name."""
        if process.pid == os.getpid():
            return "driver"
        try:
            title = " ".join(process.cmdline())
            name = process.name()
        except psutil.Error:
            return "other"
        if "SolveBatch" in title:
            return "actor"
        if title.startswith("ray::"):
            return "ray tasks (read, write, idle workers)"
        return name

    def sample(self) -> int:
        me = psutil.Process()
        total = 0
        for process in [me, *me.children(recursive=True)]:
            try:
                total += process.memory_full_info().pss
                used = sum(process.cpu_times()[:2])
            except psutil.Error:
                continue
            _, base, _ = self._cpu.get(process.pid, ("", used if not self._running else 0.0, 0))
            self._cpu[process.pid] = (self.kind(process), base, used)  # a Ray worker turns into an actor later
        self.timeline.append((time.perf_counter() - self._start, total))
        return total

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    @property
    def peak(self) -> int:
        return max((pss for _, pss in self.timeline), default=0)

    def cpu_seconds(self) -> dict[str, float]:
        """CPU seconds used while the meter ran, by kind of process (a new process counts from zero)."""
        totals: dict[str, float] = {}
        for kind, base, latest in self._cpu.values():
            totals[kind] = totals.get(kind, 0.0) + latest - base
        ranked = sorted(totals.items(), key=lambda kv: -kv[1])
        return {kind: round(seconds, 1) for kind, seconds in ranked if seconds >= 0.05}

    def pss_at(self, fractions: tuple[float, ...] = (0.1, 0.25, 0.5, 0.75, 1.0)) -> list[float]:
        """PSS (GB) at these fractions of the run's duration (the sample closest before each)."""
        end = self.timeline[-1][0]
        return [round(max(p for t, p in self.timeline if t <= f * end + 1e-9) / 1e9, 2) for f in fractions]

    def __enter__(self) -> TreeMeter:
        self._start = time.perf_counter()
        self.sample()
        self._running = True
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()


def plain_rate(model: Path, csv_file: Path, strategy: str, rows: int) -> float:
    """Puzzles/s of one thread in this process, no Ray: answers included, reading the file excluded."""
    torch.set_num_threads(1)
    solver = open_solver(str(model))
    puzzles = read_for(solver, csv_file)
    n = min(rows, len(puzzles))
    head = replace(
        puzzles,
        names=puzzles.names[:n],
        inputs=puzzles.inputs[:n],
        labels=puzzles.labels[:n] if puzzles.labels is not None else None,
        has_label=puzzles.has_label[:n],
        puzzle_identifiers=puzzles.puzzle_identifiers[:n],
        group=puzzles.group[:n],
    )
    start = time.perf_counter()
    solved = solve_tokens(solver, head.inputs, head.puzzle_identifiers, as_strategy(strategy), 128)
    answers_from(head, solved.predictions, solved.q_halt, solved.steps, solved.forward_passes)
    return n / (time.perf_counter() - start)


def plain_processes(model: Path, csv_file: Path, strategy: str, rows: int, count: int) -> list[float]:
    """Puzzles/s of ``count`` independent plain processes (one thread each) run at the same time: with 2, the
    most this machine gives two busy cores right now (no Ray, nothing shared)."""
    command = [sys.executable, __file__, "--plain-child", str(model), str(csv_file), strategy, str(rows)]
    children = [subprocess.Popen(command, stdout=subprocess.PIPE, text=True) for _ in range(count)]
    outputs = [child.communicate()[0] for child in children]
    if any(child.returncode for child in children):
        raise RuntimeError(f"a plain child process failed: {outputs}")
    return [float(json.loads(out.strip().splitlines()[-1])["puzzles_per_s"]) for out in outputs]


def timed_run(model: Path, csv_file: Path, strategy: str, workers: int, work: Path, **options) -> dict:
    """One ``solve_files`` run, metered (memory timeline, CPU by process kind); its output is removed after."""
    out = work / f"answers-{workers}w-{time.monotonic_ns()}"
    load = os.getloadavg()[0]
    with TreeMeter() as meter:
        summary: BatchSolveSummary = solve_files(
            str(model), [str(csv_file)], str(out), strategy, workers=workers, threads_per_worker=1, **options
        )
    parquet_bytes = sum(p.stat().st_size for p in out.glob("*.parquet"))
    shutil.rmtree(out, ignore_errors=True)
    return {
        "workers": workers,
        "puzzles": summary.puzzles,
        "seconds": round(summary.seconds, 2),
        "puzzles_per_s": round(summary.puzzles_per_s, 2),
        "accuracy": summary.accuracy,
        "part_files": len(summary.part_files),
        "parquet_mb": round(parquet_bytes / 1e6, 1),
        "peak_pss_gb": round(meter.peak / 1e9, 2),
        "running_peak_gb": meter.pss_at(),  # at 10, 25, 50, 75, 100 % of the run
        "cpu_seconds": meter.cpu_seconds(),
        "load_before": round(load, 2),
        "load_after": round(os.getloadavg()[0], 2),
    }


# ---------------------------------------------------------------------------------------------------- report
def _cpu_share(run: dict) -> str:
    """CPU seconds of the actors and of everything else (driver, Ray's processes, read/write tasks) in a run."""
    cpu = run["cpu_seconds"]
    actors = cpu.get("actor", 0.0)
    rest = sum(cpu.values()) - actors
    top = ", ".join(f"{kind} {sec:.0f}" for kind, sec in cpu.items() if kind != "actor" and sec >= 1)
    return f"actors {actors:.0f} s, the rest {rest:.0f} s ({top})"


def section(result: dict) -> str:
    scaling, streaming = result["scaling"], result["streaming"]
    plain = scaling["plain_puzzles_per_s"]
    rows = [
        ["plain process, 1 thread, no Ray", "-", f"{plain:.1f}", "1.00x", "-", "-"],
        ["2 plain processes at once (the machine's ceiling)", "-", f"{scaling['plain_pair_puzzles_per_s']:.1f}",
         f"{scaling['plain_pair_puzzles_per_s'] / plain:.2f}x", "-", "-"],
    ]  # fmt: skip
    for run in scaling["runs"]:
        cores = run["cpu_seconds"].get("actor", 0.0) / run["seconds"]
        rows.append(
            [f"Ray Data, {run['workers']} worker(s)", f"{run['puzzles']:,}", f"{run['puzzles_per_s']:.1f}",
             f"{run['puzzles_per_s'] / plain:.2f}x", f"{cores:.2f}", f"{run['peak_pss_gb']:.2f}"]
        )  # fmt: skip
    verdict = "met" if scaling["ratio"] >= TARGET_RATIO else "NOT met"
    big = streaming["run"]
    big_row = [
        f"{big['puzzles']:,}",
        f"{big['seconds']:.0f}",
        f"{big['puzzles_per_s']:.0f}",
        f"**{big['peak_pss_gb']:.2f} GB**",
        " / ".join(f"{gb:.2f}" for gb in big["running_peak_gb"]),
        f"{big['part_files']} files, {big['parquet_mb']:.0f} MB",
    ]
    two = [r for r in scaling["runs"] if r["workers"] == 2][-1]
    pair = scaling["plain_pair_puzzles_per_s"] / plain
    return f"""## Batch inference with Ray Data (`trm solve --ray`) — `bench/batch_solve.py`

{result["cpu"]}, {os.cpu_count()} cores. One local Ray per invocation; workers are Ray Data actors with 1 CPU and 1
torch thread each; puzzles/s = puzzles / wall time of the whole Ray Data job (read, solve, write Parquet; actor
start-up and model load included). Memory = PSS of the bench process and all its descendants (the Ray processes
and object store included), sampled every 2 s. Ratios are the result; absolute rates move with the machine's load.

### Scaling: the same {scaling["rows"]:,} puzzles, 1 worker vs 2 workers, interleaved

Measured {scaling["machine"]}.

Model: {scaling["model"]}; strategy `{scaling["strategy"]}`; batch size {scaling["batch_size"]}; runs in the order
listed. "Plain" is the same model in a process of its own, one thread, no Ray ({scaling["plain_rows"]} puzzles).

{table(["run", "puzzles", "puzzles/s", "vs plain", "cores the actors got", "peak GB"], rows)}

**2 workers / 1 worker = {scaling["ratio"]:.3f}x** (mean of each side's runs; target >= {TARGET_RATIO}x: {verdict}).
Two independent plain processes reached {pair:.2f}x of one at the same time: that is what the machine gave two busy
cores while this ran, so Ray Data reached {scaling["ratio"] / pair:.0%} of this machine's own two-core scaling.
"Cores the actors got" = the actors' CPU seconds / wall time: what separates 2 workers from 2x is cores they did
not get (other jobs, Ray's own processes).
CPU seconds in the last 2-worker run: {_cpu_share(two)}.

### Streaming: {big["puzzles"]:,} puzzles in one CSV file

Measured {streaming["machine"]}.

{streaming["rows"]:,} rows ({streaming["csv_mb"]:.0f} MB of CSV: real Sudoku-Extreme rows, digits relabelled); model:
{streaming["model"]}; strategy `{streaming["strategy"]}`; 2 workers; batch size {streaming["batch_size"]}.

{table(["puzzles", "seconds", "rows/s", "peak PSS", "running peak at 10/25/50/75/100% (GB)", "Parquet"], [big_row])}

The process tree holds {result["idle_pss_gb"]:.2f} GB with Ray started and idle. Memory levels off early in the run
and stays flat while the rest of the file streams through in ~1 MB blocks (read -> solve -> write): it is bounded
by Ray Data's object-store budget and the actors, not by the size of the file. CPU seconds: {_cpu_share(big)}.
{streaming["note"]}
"""


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scaling-rows", type=int, default=1536)
    parser.add_argument("--scaling-strategy", default="fixed")
    parser.add_argument("--repeats", type=int, default=2, help="scaling runs per worker count (interleaved)")
    parser.add_argument("--streaming-rows", type=int, default=1_000_000)
    parser.add_argument("--streaming-model", choices=["light", "headroom"], default="light")
    parser.add_argument("--batch-size", type=int, default=128, help="scaling runs (streaming: 1024)")
    parser.add_argument("--quick", action="store_true", help="light models, a few hundred rows, no docs update")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--no-doc", action="store_true")
    parser.add_argument("--only", choices=["scaling", "streaming"], help="rerun one part, keep the other's results")
    parser.add_argument("--plain-child", nargs=4, metavar=("MODEL", "CSV", "STRATEGY", "ROWS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.plain_child:
        model, csv_file, strategy, rows = args.plain_child
        emit({"puzzles_per_s": plain_rate(Path(model), Path(csv_file), strategy, int(rows))})
        return {}
    if args.quick:
        args.scaling_rows, args.streaming_rows, args.scaling_strategy, args.repeats = 200, 3000, "fixed:steps=1", 1
    args.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="batch-solve-", dir=args.out))
    session = connect(num_cpus=os.cpu_count())
    previous = args.out / "results.json"
    result = json.loads(previous.read_text()) if args.only and previous.is_file() else {}
    try:
        result.update(machine=machine_note(), cpu=cpu_model(), idle_pss_gb=round(TreeMeter().sample() / 1e9, 2))
        for part, measure in (("scaling", scaling), ("streaming", streaming)):
            if args.only in (None, part):
                result[part] = {**measure(args, work), "machine": machine_note()}
                emit({part: result[part]})
    finally:
        session.close()
        shutil.rmtree(work, ignore_errors=True)
    (args.out / "results.json").write_text(json.dumps(result, indent=1) + "\n")
    if not (args.quick or args.no_doc):
        replace_section(SECTION, section(result))
    return result


def scaling(args: argparse.Namespace, work: Path) -> dict:
    real = HEADROOM.is_dir() and not args.quick
    folder = args.out / ("light-model" if args.quick else "headroom-shape")
    model = HEADROOM if real else untrained_model(folder, light=args.quick)
    csv_file = puzzles_csv(args.out / f"sudoku-{args.scaling_rows}.csv", args.scaling_rows)
    plain_rows = min(args.scaling_rows, 384)
    (single,) = plain_processes(model, csv_file, args.scaling_strategy, plain_rows, 1)
    pair = plain_processes(model, csv_file, args.scaling_strategy, plain_rows, 2)
    options = {"batch_size": args.batch_size, "read_block_bytes": 32 << 10}
    runs = []
    for _ in range(args.repeats):
        for workers in (1, 2):
            runs.append(timed_run(model, csv_file, args.scaling_strategy, workers, work, **options))
            emit({"scaling_run": runs[-1]})
    rate = {w: sum(r["puzzles_per_s"] for r in runs if r["workers"] == w) / args.repeats for w in (1, 2)}
    return {
        "model": "the headroom model (runs/bench/headroom/full-seed0/export, trained)" if real else "untrained",
        "strategy": args.scaling_strategy,
        "rows": args.scaling_rows,
        "batch_size": args.batch_size,
        "plain_rows": plain_rows,
        "plain_puzzles_per_s": round(single, 2),
        "plain_pair_puzzles_per_s": round(sum(pair), 2),
        "runs": runs,
        "ratio": round(rate[2] / rate[1], 3),
    }


def streaming(args: argparse.Namespace, work: Path) -> dict:
    headroom = args.streaming_model == "headroom" and HEADROOM.is_dir() and not args.quick
    model = HEADROOM if headroom else untrained_model(args.out / "light-model", light=True)
    csv_file = puzzles_csv(args.out / f"sudoku-{args.streaming_rows}.csv", args.streaming_rows)
    run = timed_run(model, csv_file, STREAMING_STRATEGY, 2, work, batch_size=1024)
    note = (
        "With the light untrained model the rate measures the pipeline itself (CSV parsing, encoding, answers, "
        "Parquet), not the model: the scaling table gives the model's own rate."
        if not headroom
        else "Model: the headroom model."
    )
    return {
        "model": "the headroom model" if headroom else "a light untrained 9x9 model (width 16, 1 layer, T=n=1)",
        "strategy": STREAMING_STRATEGY,
        "rows": args.streaming_rows,
        "batch_size": 1024,
        "csv_mb": round(csv_file.stat().st_size / 1e6, 1),
        "run": run,
        "note": note,
    }


if __name__ == "__main__":
    main()
