"""Adaptive-halting vs fixed 16-step evaluation: puzzles/s and accuracy of one trained model on one test split.

    .venv/bin/python bench/eval_modes.py [RUN] [--data DATASET] [--batch N] [--repeats 3]
                                         [--preset smoke] [--set key=value ...] [--quick] [--no-docs]

RUN is an export folder (model.safetensors + config.json, e.g. `runs/<name>/export` or the `--export` folder of
`bench/time_to_accuracy.py`) or a checkpoint folder. Without RUN, `--preset` (default `smoke` with
`model.halt_max_steps=16`, so the fixed mode really is 16 steps) is trained first with `trm.train.loop.train`
into a temp folder. `fixed` = the official protocol (a fresh carry per batch, exactly halt_max_steps calls);
`adaptive` = a row stops at its first q_halt > 0 and its slot is refilled at once (continuous batching), see
`trm/evaluate/inference.py`. Both run after one untimed warm-up call, best puzzles/s of `--repeats` passes.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch
from _bench_report import emit, machine_note, replace_section

from trm.config import load_config
from trm.data.build import build_dataset, ensure_built
from trm.data.loader import PuzzleDataset
from trm.evaluate.inference import evaluate, warm_up
from trm.markdown import table as markdown_table
from trm.train.export import load_exported
from trm.train.loop import train

SECTION = "eval_modes"
DEFAULT_TRAIN_OVERRIDES = ["model.halt_max_steps=16", "train.device=cpu"]
QUICK_OVERRIDES = ["train.max_steps=400"]
QUICK_BUILD = {"train_count": 2000, "test_count": 64}  # on top of the dataset's params.yaml section


def trained_model(preset: str, overrides: list[str], workdir: Path, quick: bool) -> tuple[Path, str]:
    """Train `preset` into `workdir` and return (export folder, description)."""
    extra = [f"run.output_dir={workdir}", "run.name=eval-modes", "eval.modes=[fixed]"]
    if quick:
        extra += [f"data.root={workdir / 'data'}", *QUICK_OVERRIDES]
    config = load_config(preset, DEFAULT_TRAIN_OVERRIDES + overrides + extra)
    if quick:
        build_dataset(config.data.name, QUICK_BUILD, out_root=workdir / "data")
    result = train(config, progress=False)  # no evaluation hook: the model is measured below
    return result.export_dir, f"preset `{preset}` trained here for {result.steps} steps ({result.seconds:.0f} s)"


def measure(model: torch.nn.Module, dataset: PuzzleDataset, batch: int, repeats: int) -> dict[str, dict]:
    """Best-of-`repeats` result per mode (accuracy is identical across repeats: evaluation is deterministic)."""
    warm_up(model, dataset, batch)
    best: dict[str, dict] = {}
    for _ in range(repeats):
        for mode in ("fixed", "adaptive"):
            summary = evaluate(model, dataset, batch, mode, "cpu").summary()
            if mode not in best or summary["puzzles_per_second"] > best[mode]["puzzles_per_second"]:
                best[mode] = summary
    return best


def docs_section(
    results: dict[str, dict], source: str, dataset: PuzzleDataset, batch: int, max_steps: int, quick: bool, note: str
) -> str:
    fixed_rate = results["fixed"]["puzzles_per_second"]
    rows = [
        [
            mode,
            f"{r['exact_accuracy']:.1%}",
            f"{r['accuracy']:.1%}",
            f"{r['q_halt_accuracy']:.1%}",
            f"{r['steps']:.2f}",
            f"{r['puzzles_per_second']:.1f}",
            f"{r['puzzles_per_second'] / fixed_rate:.2f}x",
        ]
        for mode, r in results.items()
    ]
    table = markdown_table(
        ["mode", "exact", "token", "q-halt acc", "mean steps / puzzle", "puzzles/s", "vs fixed"], rows
    )
    halts = results["adaptive"].get("halted_at_step", [])
    quick_note = (
        "\n**Quick check only (`--quick`: a barely trained model) — pending full run on a quiet machine "
        "with a trained model; do not quote these numbers.**\n"
        if quick
        else ""
    )
    return f"""## Evaluation: adaptive halting vs fixed {max_steps} steps — `bench/eval_modes.py`
{quick_note}
Measured {note}. Model: {source}. Test split `{dataset.path.name}/{dataset.split}` ({len(dataset)} puzzles),
batch {batch}, fp32 CPU, inference mode, EMA weights; best puzzles/s of several passes after a warm-up call.
Fixed = official protocol ({max_steps} supervision steps for every puzzle); adaptive = stop a puzzle at its first
q_halt > 0 and refill its batch slot immediately, so saved steps become throughput. Full run: on a trained
16-step model, e.g. `.venv/bin/python bench/eval_modes.py runs/bench/sudoku-9x9-cpu-export` (written by
`bench/time_to_accuracy.py --export`), or without RUN to train the smoke preset with 16 steps first.

{table}

Adaptive halts per step (puzzles that stopped after k = 1..{max_steps} steps): {halts}
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", nargs="?", type=Path, help="export or checkpoint folder; omit to train --preset")
    parser.add_argument("--data", default=None, help="dataset folder or name (default: the model's config)")
    parser.add_argument("--split", default="test")
    parser.add_argument("--batch", type=int, default=None, help="default: min(eval.batch_size, split size)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--preset", default="smoke")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--quick", action="store_true", help="train briefly on a small build in a temp folder")
    parser.add_argument("--no-docs", action="store_true")
    args = parser.parse_args()

    note = machine_note()
    with tempfile.TemporaryDirectory(prefix="trm-evalmodes-") as tmp:
        if args.run is None:
            folder, source = trained_model(args.preset, args.overrides, Path(tmp), args.quick)
        else:
            folder, source = args.run, f"`{args.run}`"
        model, config = load_exported(folder, "cpu")
        if args.data is not None:
            data_path = Path(args.data)
        elif args.run is None:
            data_path = config.data.resolve_path()
        else:
            data_path = ensure_built(config.data.resolve_path(), config.data.name)
        dataset = PuzzleDataset.open(data_path, args.split)
        batch = args.batch or min(config.eval.batch_size, len(dataset))
        results = measure(model, dataset, batch, 1 if args.quick else args.repeats)
    max_steps = config.model.halt_max_steps
    for summary in results.values():
        emit(
            {
                "bench": SECTION,
                "model": str(folder) if args.run else args.preset,
                "batch": batch,
                **{k: v for k, v in summary.items() if k != "per_step"},
            }
        )
    if not args.no_docs:
        path = replace_section(SECTION, docs_section(results, source, dataset, batch, max_steps, args.quick, note))
        print(f"updated {path}")


if __name__ == "__main__":
    main()
