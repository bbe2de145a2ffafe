"""Dress rehearsals of the paper workloads, measured: each preset's real DVC build and full-size model through every
stage of the retrain flow (`python -m pipelines.retrain --preset P --rehearse`), one at a time, each in its own
process so that its peak RAM is its own. The report (per-stage wall time and peak RSS, the bounded evaluation, the
projected GPU time of the full run) goes into docs/benchmarks.md.

    .venv/bin/python bench/rehearsals.py                              # sudoku-extreme-mlp, maze-hard, arc-agi-1
    .venv/bin/python bench/rehearsals.py --presets maze-hard          # one of them (the others' rows are kept)
    .venv/bin/python bench/rehearsals.py --report                     # rewrite the section from stored results

Rehearsals publish to their own store (runs/bench/rehearsals/store) so the user's ./artifacts stays clean, and use a
decoded-token cache (runs/bench/rehearsals/decoded, or $TRM_DECODED_CACHE) so that the two Ray workers share one
decode of the ARC training split instead of each holding its own (about 6.5 GB each).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from _bench_report import REPO_ROOT, emit, machine_note, replace_section

from pipelines.rehearsal import RehearsalReport
from trm.data.dataset_folder import read_metadata

SECTION = "rehearsals"
PRESETS = ("sudoku-extreme-mlp", "maze-hard", "arc-agi-1")
OUT = REPO_ROOT / "runs" / "bench" / "rehearsals"
RESULTS = OUT / "results.jsonl"


def rehearse(preset: str) -> dict:
    """Run one rehearsal as a user would; its record: the report, the built splits' sizes, the command's wall time."""
    env = dict(os.environ)
    env.setdefault("TRM_DECODED_CACHE", str(OUT / "decoded"))
    command = [sys.executable, "-m", "pipelines.retrain", "--preset", preset, "--rehearse"]
    command += ["--store", str(OUT / "store")]
    started = time.perf_counter()
    done = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    log = OUT / f"{preset}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        raise SystemExit(f"rehearsal of {preset} failed (exit {done.returncode}); its output: {log}")
    found = re.search(r"^Report:\s+(\S+)$", done.stdout, re.MULTILINE)
    if found is None:
        raise SystemExit(f"rehearsal of {preset}: no 'Report:' line in its output ({log})")
    report = RehearsalReport.model_validate_json(Path(found.group(1)).read_text())
    retrain = json.loads((Path(found.group(1)).parent / "retrain.json").read_text())
    metadata = read_metadata(Path(retrain["data"]["data_dir"]))
    splits = {name: {"examples": s.examples, "groups": s.groups} for name, s in metadata.splits.items()}
    record = {
        "preset": preset,
        "command_seconds": round(seconds, 1),
        "splits": splits,
        "report": report.model_dump(mode="json"),
        "machine": machine_note(),
    }
    emit({"preset": preset, "command_seconds": record["command_seconds"], "model": report.model})
    kept = [r for r in read_results() if r["preset"] != preset]
    RESULTS.write_text("".join(json.dumps(r) + "\n" for r in [*kept, record]))
    return record


def read_results() -> list[dict]:
    return [json.loads(line) for line in RESULTS.read_text().splitlines()] if RESULTS.is_file() else []


def section() -> str:
    records = sorted(read_results(), key=lambda r: PRESETS.index(r["preset"]) if r["preset"] in PRESETS else 99)
    lines = [
        "## Dress rehearsals of the paper workloads — `bench/rehearsals.py`",
        "",
        "Each is `python -m pipelines.retrain --preset P --rehearse` with 2 Ray workers on this CPU machine: the "
        "real DVC build, the preset's full-size model for a few optimizer steps, a bounded evaluation of the "
        "validation and test splits, and a publish flagged as a rehearsal. Wall time and peak memory are per stage; "
        "memory is the PSS of the flow process and all its children, Ray workers included (a shared page, such as "
        "the memory-mapped decoded data both workers read, is split among the processes that map it). The data "
        "stage includes the DVC build when the data was not built yet. The GPU projection is the full run's matmul "
        "FLOPs (docs/scaling.md) at 30% and 17% of an H100's dense bf16 peak. The budget and the bounds are in "
        "pipelines/rehearsal.py (`RehearsalBudget`); the flow's evaluate stage runs on 1 thread (fixed reductions).",
    ]
    for record in records:
        report = RehearsalReport.model_validate(record["report"])
        # the page is read in other checkouts: name the model relative to this one, not by this machine's path
        report = report.model_copy(update={"model": report.model.replace(f"{REPO_ROOT}/", "")})
        splits = ", ".join(
            f"{name} {s['examples']:,} rows / {s['groups']:,} groups" for name, s in record["splits"].items()
        )
        metrics = ", ".join(f"{k} {v:.3g}" for k, v in sorted(report.metrics.items()) if "exact" in k or "pass@" in k)
        lines += [
            "",
            f"### `{record['preset']}`",
            "",
            f"Measured {record['machine']}. Command wall time {record['command_seconds']:.0f} s.",
            f"Built splits: {splits}.",
            "",
            report.markdown(),
        ]
        if metrics:
            lines += ["", f"Bounded-evaluation metrics of the rehearsed model (a few steps: near chance): {metrics}."]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=list(PRESETS))
    parser.add_argument("--report", action="store_true", help="only rewrite the docs section from stored results")
    args = parser.parse_args()
    if not args.report:
        for preset in args.presets:
            rehearse(preset)
    body = section()
    replace_section(SECTION, body)
    print(body)


if __name__ == "__main__":
    main()
