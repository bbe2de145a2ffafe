"""Time-to-accuracy of the 9x9 Sudoku CPU preset on its generated, disjoint test set, against the same network
without recursion (T=1, n=1: two net calls per supervision step instead of T(n+1)) as the baseline.

    .venv/bin/python bench/time_to_accuracy.py [--steps N] [--baseline-steps M] [--evals 20]
                                               [--preset sudoku-9x9-cpu] [--set key=value ...] [--export DIR]
                                               [--quick] [--no-docs]

Both variants train with the real `Trainer`, the recursive one for `--steps` (default: the preset's
train.max_steps), the baseline for `--baseline-steps` (default: the same; a step without recursion is ~3x cheaper,
so about 3x the steps gives it the same training time). With the preset's constant learning rate after warm-up the
first N steps of a longer run are the N-step run, so one baseline run shows both the equal-steps and the
equal-time comparison. Each is evaluated `--evals` times (plus at step 0) with the EMA weights in the official fixed
16-step mode on the whole test split. The clock counts training steps only (evaluation paused), so the curve is
exact accuracy vs training wall time and vs steps. Writes docs/img/time_to_accuracy.png, a table in its section
of docs/benchmarks.md, one JSON line per evaluation, and (with --export) the recursive model's export folder, which
`bench/eval_modes.py` can evaluate. `--quick` trains on a tiny build in a temp folder for a few dozen steps.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from _bench_report import IMG_DIR, emit, machine_note, replace_section

from trm.atomic import atomic_path
from trm.config import TRMConfig, load_config
from trm.data.build import build_dataset, ensure_built
from trm.data.dataset_folder import read_metadata
from trm.data.loader import PuzzleDataset
from trm.evaluate.inference import evaluate
from trm.markdown import table as markdown_table
from trm.model import count_trainable_parameters
from trm.model.flops import supervision_step_flops
from trm.train.export import export_model
from trm.train.trainer import Trainer, torch_threads

SECTION = "time_to_accuracy"
NO_RECURSION = ["model.H_cycles=1", "model.L_cycles=1"]
THRESHOLDS = (0.5, 0.9, 0.95)
QUICK_BUILD = {"train_count": 100, "test_count": 8, "num_aug": 4}  # on top of the dataset's params.yaml section
QUICK_OVERRIDES = ["train.global_batch_size=16"]


def eval_points(steps: int, evals: int) -> list[int]:
    """Steps after which to evaluate: 0, then `evals` roughly even points ending at `steps`."""
    points = {round(steps * i / evals) for i in range(1, evals + 1)}
    return sorted({0} | {p for p in points if p > 0})


def run_variant(config: TRMConfig, label: str, evals: int) -> tuple[list[dict], Trainer]:
    """Train `config` to its budget, evaluating at `eval_points`; returns one record per evaluation."""
    data_path = ensure_built(config.data.resolve_path(), config.data.name)
    train_ds = PuzzleDataset.open(data_path, "train")
    test_ds = PuzzleDataset.open(data_path, "test")  # a curve over training, no selection: the held-out split
    trainer = Trainer(config, train_ds, device="cpu")
    eval_model = trainer.ema_model()
    params = count_trainable_parameters(trainer.model)
    step_gflop = supervision_step_flops(trainer.config.model).training * config.train.global_batch_size / 1e9
    points = eval_points(trainer.total_steps, evals)
    eval_batch = config.eval.batch_size  # evaluate() caps it at the split's size
    records: list[dict] = []
    train_seconds = 0.0
    started = time.perf_counter()
    for point in points:
        while trainer.step_count < point:
            step_start = time.perf_counter()
            trainer.step()
            train_seconds += time.perf_counter() - step_start
        result = evaluate(trainer.ema_model(into=eval_model), test_ds, eval_batch, "fixed", "cpu")
        record = {
            "bench": SECTION,
            "variant": label,
            "step": trainer.step_count,
            "train_seconds": train_seconds,
            "wall_seconds": time.perf_counter() - started,
            "exact_accuracy": result.metrics["exact_accuracy"],
            "token_accuracy": result.metrics["accuracy"],
            "test_puzzles": int(result.metrics["count"]),
            "params": params,
            "gflop_per_step": step_gflop,
            "H_cycles": config.model.H_cycles,
            "L_cycles": config.model.L_cycles,
        }
        emit(record)
        records.append(record)
    return records, trainer


def at_step(records: list[dict], step: int) -> dict | None:
    """The last evaluation at or before ``step``."""
    return max((r for r in records if r["step"] <= step), key=lambda r: r["step"], default=None)


def first_reaching(records: list[dict], threshold: float) -> dict | None:
    return next((r for r in records if r["exact_accuracy"] >= threshold), None)


def plot(curves: dict[str, list[dict]], path: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (by_time, by_step) = plt.subplots(1, 2, figsize=(11, 4))
    for label, records in curves.items():
        acc = [100 * r["exact_accuracy"] for r in records]
        by_time.plot([r["train_seconds"] / 60 for r in records], acc, marker="o", ms=3, label=label)
        by_step.plot([r["step"] for r in records], acc, marker="o", ms=3, label=label)
    by_time.set_xlabel("training wall time (min, evaluation excluded)")
    by_step.set_xlabel("optimizer steps")
    for ax in (by_time, by_step):
        ax.set_ylabel("test exact accuracy (%)")
        ax.set_ylim(-2, 102)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path


def _puzzle_kind(config: TRMConfig) -> str:
    """How the preset's puzzles were generated, from the dataset build parameters actually used."""
    blanks = read_metadata(config.data.resolve_path()).params.get("blanks")
    return "generated minimal puzzles" if blanks is None else f"generated puzzles with {blanks} blank cells"


def docs_section(
    curves: dict[str, list[dict]], configs: dict[str, TRMConfig], image: Path, quick: bool, note: str
) -> str:
    summary_rows = []
    equal_steps = min(records[-1]["step"] for records in curves.values())
    for label, records in curves.items():
        cfg = configs[label]
        final, best = records[-1], max(records, key=lambda r: r["exact_accuracy"])
        same_steps = at_step(records, equal_steps)
        reach = []
        for threshold in THRESHOLDS:
            hit = first_reaching(records, threshold)
            reach.append(f"{hit['train_seconds'] / 60:.1f} min / {hit['step']}" if hit else "not reached")
        summary_rows.append(
            [
                label,
                f"T={cfg.model.H_cycles}, n={cfg.model.L_cycles}",
                f"{final['params']:,}",
                f"{final['gflop_per_step']:.0f}",
                f"{same_steps['exact_accuracy']:.1%}" if same_steps else "-",
                final["step"],
                f"{final['train_seconds'] / 60:.1f}",
                f"**{final['exact_accuracy']:.1%}**",
                f"{best['exact_accuracy']:.1%}",
                *reach,
            ]
        )
    header = [
        "variant",
        "recursion",
        "params",
        "matmul GFLOP / step",
        f"exact at step {equal_steps}",
        "steps",
        "train min",
        "final exact",
        "best exact",
        *[f"time/steps to {t:.0%}" for t in THRESHOLDS],
    ]
    curve_rows = []
    for label, records in curves.items():
        for r in records:
            curve_rows.append(
                [
                    label,
                    r["step"],
                    f"{r['train_seconds']:.0f}",
                    f"{r['exact_accuracy']:.1%}",
                    f"{r['token_accuracy']:.1%}",
                ]
            )
    first = next(iter(configs.values()))
    quick_note = (
        "\n**Quick check only (`--quick`: tiny build, a few dozen steps) — pending full run on a quiet "
        "machine; do not quote these numbers.**\n"
        if quick
        else ""
    )
    rel_image = image.relative_to(image.parents[1])
    return f"""## Time to accuracy: 9x9 Sudoku CPU preset, recursion vs none — `bench/time_to_accuracy.py`
{quick_note}
Measured {note}. Preset `{first.run.name}` (dataset `{first.data.name}`: {_puzzle_kind(first)}, test grids not
equivalent to any train grid under the Sudoku symmetries), batch {first.train.global_batch_size}, fp32 on CPU.
Baseline = the same network with `--set model.H_cycles=1 model.L_cycles=1` (same parameters, 2 net calls per
supervision step instead of {first.model.H_cycles * (first.model.L_cycles + 1)}), trained for the step budget in the
table (constant learning rate after warm-up). Evaluation: EMA
weights, official fixed 16-step mode, whole test split ({curves[next(iter(curves))][-1]["test_puzzles"]} puzzles);
the clock counts training steps only. Full run: `.venv/bin/python bench/time_to_accuracy.py --evals 12
--baseline-steps 4500 --export runs/bench/sudoku-9x9-cpu-export` (~20 min; then `bench/eval_modes.py
runs/bench/sudoku-9x9-cpu-export`); the recursive budget is the preset's train.max_steps.

![exact accuracy vs time and steps]({rel_image})

{markdown_table(header, summary_rows)}

<details><summary>every evaluation</summary>

{markdown_table(["variant", "step", "train s", "exact", "token"], curve_rows)}

</details>
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="sudoku-9x9-cpu")
    parser.add_argument("--steps", type=int, default=None, help="step budget of each variant (default: preset's)")
    parser.add_argument(
        "--baseline-steps",
        type=int,
        default=None,
        help="step budget of the no-recursion baseline (default: same as --steps)",
    )
    parser.add_argument("--evals", type=int, default=20, help="evaluations per variant (besides step 0)")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra config overrides for both variants",
    )
    parser.add_argument("--export", type=Path, default=None, help="write the recursive model's export here")
    parser.add_argument("--quick", action="store_true", help="tiny build in a temp folder, few steps, < 60 s")
    parser.add_argument("--no-docs", action="store_true", help="print JSON only, leave docs/benchmarks.md alone")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="trm-tta-") as tmp:
        overrides = ["train.device=cpu", "eval.modes=[fixed]", *args.overrides]
        steps, evals = args.steps, args.evals
        if args.quick:
            overrides += [f"data.root={tmp}", *QUICK_OVERRIDES]
            steps, evals = steps or 10, 1
        if steps is not None:
            overrides.append(f"train.max_steps={steps}")
        note = machine_note()
        configs = {"recursive": load_config(args.preset, overrides)}
        if args.quick:
            build_dataset(configs["recursive"].data.name, QUICK_BUILD, out_root=Path(tmp))
        baseline = overrides + NO_RECURSION
        if args.baseline_steps is not None:
            baseline.append(f"train.max_steps={args.baseline_steps}")
        configs["no recursion (T=1, n=1)"] = load_config(args.preset, baseline)
        curves: dict[str, list[dict]] = {}
        for label, config in configs.items():
            with torch_threads(config.train.threads):
                curves[label], trainer = run_variant(config, label, evals)
            if label == "recursive" and args.export is not None:
                export_model(trainer.ema_model(), trainer.config, args.export)
                print(f"exported the recursive model to {args.export}")
    if not args.no_docs:
        image = plot(
            curves,
            IMG_DIR / "time_to_accuracy.png",
            f"{args.preset}: test exact accuracy, recursion vs none" + (" (quick check)" if args.quick else ""),
        )
        path = replace_section(SECTION, docs_section(curves, configs, image, args.quick, note))
        print(f"updated {path} and {image}")


if __name__ == "__main__":
    torch.manual_seed(0)
    main()
