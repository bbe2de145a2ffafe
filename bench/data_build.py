"""Dataset build benchmarks: our seeded, vectorised Parquet builder against the official way of doing the
same work, and the peak RAM of the largest build.

    .venv/bin/python bench/data_build.py sudoku [--num-aug 1000]       # ours vs official-style loop, one run
    .venv/bin/python bench/data_build.py arc [--name arc-agi-1] [--num-aug 1000]   # time + peak RSS

`sudoku`: 1000 real puzzles (`sudoku-extreme-1k/train1k.csv`) x (1 + num_aug) = 1,001,000 train rows.
 - ours: `build_dataset("sudoku-extreme-1k", {"num_aug": N, "test_count": 0})` (the rest from params.yaml; the
   generated test split is a separate cost), i.e. read + validate + augment + write zstd Parquet + sha256 +
   metadata, timed in this process after a warm-up build (imports done), fastest of `--repeats` runs;
 - official way: the algorithm of the official `build_sudoku_dataset.py` re-expressed here: per original puzzle,
   per augmentation, draw one digit permutation / transpose flag / band+row / stack+column permutation with the
   global numpy RNG, build the 81-cell index map with a Python comprehension, transform puzzle and solution,
   append to Python lists; then stack and `np.save` the five arrays. Same rows, same work, no validation.
`arc`: `trm data build arc-agi-1 --set num_aug=N` in a child process; the parent samples the RSS of the child and
all of its children every 50 ms (psutil) and reports the peak of their sum.
Each result is printed as one JSON line.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from trm.data.build import build_dataset  # noqa: E402
from trm.paths import datasets_root  # noqa: E402


# ----- the official way, re-expressed -------------------------------------------------------------------------------
def _official_shuffle(board: np.ndarray, solution: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One augmentation drawn and applied the way the official builder does: scalar draws, a Python-built map."""
    digits = np.concatenate([[0], np.random.permutation(np.arange(1, 10))])
    transpose = np.random.rand() < 0.5
    row_order = np.concatenate([band * 3 + np.random.permutation(3) for band in np.random.permutation(3)])
    col_order = np.concatenate([stack * 3 + np.random.permutation(3) for stack in np.random.permutation(3)])
    cell_map = np.array([row_order[k // 9] * 9 + col_order[k % 9] for k in range(81)])

    def transform(grid: np.ndarray) -> np.ndarray:
        if transpose:
            grid = grid.T
        return digits[grid.flatten()[cell_map].reshape(9, 9).copy()]

    return transform(board), transform(solution)


def official_style_build(csv_file: Path, num_aug: int, out_dir: Path) -> int:
    """Build the train split the official way (per-puzzle, per-augmentation Python loop) into npy files."""
    boards, solutions = [], []
    with open(csv_file, newline="") as handle:
        reader = csv.reader(handle)
        next(reader)
        for _source, question, answer, _rating in reader:
            boards.append(np.frombuffer(question.replace(".", "0").encode(), np.uint8).reshape(9, 9) - ord("0"))
            solutions.append(np.frombuffer(answer.encode(), np.uint8).reshape(9, 9) - ord("0"))
    inputs, labels, puzzle_offsets, group_offsets, identifiers = [], [], [0], [0], []
    examples = puzzles = 0
    for board, solution in zip(boards, solutions, strict=True):
        for aug in range(1 + num_aug):
            pair = (board, solution) if aug == 0 else _official_shuffle(board, solution)
            inputs.append(pair[0])
            labels.append(pair[1])
            examples += 1
            puzzles += 1
            puzzle_offsets.append(examples)
            identifiers.append(0)
        group_offsets.append(puzzles)
    arrays = {
        "inputs": np.concatenate(inputs).reshape(len(inputs), -1) + 1,
        "labels": np.concatenate(labels).reshape(len(labels), -1) + 1,
        "group_indices": np.array(group_offsets, np.int32),
        "puzzle_indices": np.array(puzzle_offsets, np.int32),
        "puzzle_identifiers": np.array(identifiers, np.int32),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    for key, value in arrays.items():
        np.save(out_dir / f"all__{key}.npy", value)
    return examples


# ----- measuring a child process ------------------------------------------------------------------------------------
def run_measured(command: list[str], env: dict[str, str] | None = None) -> dict[str, float]:
    """Run `command`, sampling the summed RSS of it and its descendants; return wall seconds and peak GB."""
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    root = psutil.Process(process.pid)
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            try:
                tree = [root, *root.children(recursive=True)]
                peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
            except psutil.Error:
                pass
            done.wait(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    output, _ = process.communicate()
    done.set()
    sampler.join()
    seconds = time.perf_counter() - started
    if process.returncode:
        raise SystemExit(f"command failed ({process.returncode}): {' '.join(command)}\n{output}")
    return {"seconds": round(seconds, 2), "peak_rss_gb": round(peak / 1e9, 3)}


def _build_command(name: str, out_root: Path, overrides: dict[str, object]) -> list[str]:
    command = [sys.executable, "-m", "trm.cli", "data", "build", name, "--out", str(out_root)]
    for key, value in overrides.items():
        command += ["--set", f"{key}={value}"]
    return command


def bench_sudoku(num_aug: int, repeats: int) -> None:
    """Both builders in this process, after imports, on the same 1000 puzzles; ours without its (separately
    generated) test split so that both do exactly the train-split work."""
    csv_file = datasets_root() / "sudoku-extreme-1k" / "train1k.csv"
    with tempfile.TemporaryDirectory(prefix="trm-bench-") as tmp:
        tmp_path = Path(tmp)
        build_dataset("sudoku-extreme-1k", {"num_aug": 1, "test_count": 0}, out_root=tmp_path / "warm-up")
        ours_runs = []
        for _ in range(repeats):
            started = time.perf_counter()
            folder = build_dataset(
                "sudoku-extreme-1k", {"num_aug": num_aug, "test_count": 0}, out_root=tmp_path / "ours"
            )
            ours_runs.append(time.perf_counter() - started)
        rows = json.loads((folder / "metadata.json").read_text())["splits"]["train"]["examples"]
        parquet_mb = (folder / "train.parquet").stat().st_size / 1e6
        np.random.seed(0)
        started = time.perf_counter()
        official_rows = official_style_build(csv_file, num_aug, tmp_path / "official")
        official_seconds = time.perf_counter() - started
        npy_mb = sum(f.stat().st_size for f in (tmp_path / "official").iterdir()) / 1e6
    ours = min(ours_runs)
    print(
        json.dumps(
            {
                "bench": "sudoku-extreme-1k train split build",
                "num_aug": num_aug,
                "rows": rows,
                "official_rows": official_rows,
                "ours_seconds": round(ours, 2),
                "ours_runs": [round(t, 2) for t in ours_runs],
                "official_style_seconds": round(official_seconds, 2),
                "speedup": round(official_seconds / ours, 1),
                "ours_parquet_mb": round(parquet_mb, 1),
                "official_npy_mb": round(npy_mb, 1),
                "peak_rss_gb_this_process": round(psutil.Process().memory_info().rss / 1e9, 3),
            }
        )
    )


def bench_arc(name: str, num_aug: int, keep: Path | None) -> None:
    with tempfile.TemporaryDirectory(prefix="trm-bench-") as tmp:
        out_root = keep if keep is not None else Path(tmp)
        result = run_measured(_build_command(name, out_root, {"num_aug": num_aug}))
        folder = out_root / name
        meta = json.loads((folder / "metadata.json").read_text())
        size = sum(f.stat().st_size for f in folder.iterdir())
        print(
            json.dumps(
                {
                    "bench": f"{name} build",
                    "num_aug": num_aug,
                    **result,
                    "train_examples": meta["splits"]["train"]["examples"],
                    "test_examples": meta["splits"]["test"]["examples"],
                    "puzzle_identifiers": meta["num_puzzle_identifiers"],
                    "folder_gb": round(size / 1e9, 3),
                }
            )
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    sudoku = sub.add_parser("sudoku")
    sudoku.add_argument("--num-aug", type=int, default=1000)
    sudoku.add_argument("--repeats", type=int, default=2, help="runs of our builder (the fastest is reported)")
    arc = sub.add_parser("arc")
    arc.add_argument("--name", default="arc-agi-1")
    arc.add_argument("--num-aug", type=int, default=1000)
    arc.add_argument("--keep", type=Path, default=None, help="build into this folder and keep it (for data_loader.py)")
    args = parser.parse_args()
    os.environ.setdefault("PYTHONHASHSEED", "0")
    if args.what == "sudoku":
        bench_sudoku(args.num_aug, args.repeats)
    else:
        bench_arc(args.name, args.num_aug, args.keep)


if __name__ == "__main__":
    main()
