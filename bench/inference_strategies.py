"""Inference strategies on the CPU benchmark with headroom (`sudoku-9x9-hard`, the seed-0 full model of
`bench/headroom.py`): test exact accuracy against forward passes per puzzle for every strategy of
trm/evaluate/strategies.py, every choice made on the validation split, the test split measured once per config.

    .venv/bin/python bench/inference_strategies.py            # ~1.5 h on 2 cores; table + plot into the docs
    .venv/bin/python bench/inference_strategies.py --quick    # tiny untrained model, 8 puzzles, temp folder (CI)
    .venv/bin/python bench/inference_strategies.py --retest   # stored val choices, test phase again (~25 min)
    .venv/bin/python bench/inference_strategies.py --val-cache runs/bench/inference_strategies/measurements.jsonl
                        # val measurements already in that file (this script's stdout) are reused, not rerun

Protocol (all on val, then test once): fixed N for N in 16 (the baseline), 32, ..., 256; adaptive halting with the
rule calibrated on val (`choose_threshold`, i.e. `calibrate_adaptive` on the recorded val pass: the cheapest q_halt
threshold and stable-answer run within 0.5 points of fixed 16); trajectories with the noise std chosen at K=8, then
K in {4, 8, 16} and (K, steps) combinations past 16 steps; first_to_halt per K with the halting rule (threshold 0, or
the calibrated threshold and stable run) chosen on val; vote with V in {4, 8, 16} and (V, steps) combinations. Per
family the val-best config within the 16x compute budget (256 forward passes per puzzle, ties to the cheaper one) is
"picked on val"; the best pick over all families is goal 1's strategy. Fixed 16 and the calibrated adaptive config
are timed side by side (best puzzles/s of ``timing_repeats`` interleaved passes; evaluation is deterministic, so
their accuracy is the same every pass).
Without the headroom export it is trained first (`headroom.run_one("full", 0)`, ~17 min). Results go to
runs/bench/inference_strategies/results.jsonl (replaced each run), docs/img/inference_strategies.png and the
`inference_strategies` section of docs/benchmarks.md. ``--retest`` reruns only the test phase from the stored val
choices, for timings on a quieter machine: evaluation is deterministic, so it asserts that every test accuracy comes
out exactly as stored (the test split still decides nothing).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from _bench_report import BENCHMARKS_DOC, IMG_DIR, emit, machine_note, replace_section

from trm.atomic import atomic_path
from trm.config import InferenceConfig, load_config, parse_strategy
from trm.data.build import build_dataset, ensure_built
from trm.data.loader import PuzzleDataset
from trm.evaluate.calibration import Calibration, StepRecord, choose_threshold, record_steps
from trm.evaluate.strategies import evaluate_strategy
from trm.markdown import table
from trm.model import TRM
from trm.train.export import fill_from_dataset, load_exported

SECTION = "inference_strategies"
PRESET = "sudoku-9x9-hard"
EXPORT = Path("runs/bench/headroom/full-seed0/export")
OUT = Path("runs/bench/inference_strategies")
PLOT = IMG_DIR / "inference_strategies.png"
BASE = 16  # fixed 16 steps: the official evaluation and the baseline
BUDGET = 16 * BASE  # goal 1's compute budget: 16x fixed 16 = 256 forward passes per puzzle
MAX_DROP = 0.005  # adaptive calibration: at most 0.5 points below fixed 16 on val
FAMILIES = {"fixed": "tab:gray", "adaptive": "tab:green", "trajectories": "tab:blue"}
FAMILIES |= {"first_to_halt": "tab:orange", "vote": "tab:red"}  # colours of the plot, order of the table


@dataclass(frozen=True)
class Grid:
    fixed: tuple[int, ...] = (16, 32, 64, 128, 256)
    copies: tuple[int, ...] = (4, 8, 16)  # K trajectories, V votes
    noises: tuple[float, ...] = (0.05, 0.1, 0.2, 0.5, 1.0)
    noise_copies: int = 8
    longer: tuple[tuple[int, int], ...] = ((4, 64), (8, 32))  # (K or V, steps) past 16 steps, within the budget
    timing_repeats: int = 3


QUICK = Grid(fixed=(16, 32), copies=(2, 4), noises=(0.1, 1.0), noise_copies=2, longer=((2, 32),), timing_repeats=1)


@dataclass
class Config:
    """One row of the table: a strategy, its val summary, its test summary (measured once)."""

    family: str
    strategy: InferenceConfig
    val: dict
    test: dict = field(default_factory=dict)
    picked: bool = False


@dataclass
class Selection:
    configs: list[Config]
    calibration: Calibration
    noise_grid: list[dict]  # trajectories at K = noise_copies, one val summary per noise std
    threshold_grid: list[dict]  # first_to_halt val summaries, every threshold tried
    noise: float
    diagnostics: dict  # halting_diagnostics of the recorded val pass
    grid: Grid


def val_fixed(record: StepRecord, steps: int) -> dict:
    """Fixed N on val read off the recorded pass (the answer after step N, as `fixed:steps=N` computes it)."""
    return {"exact_accuracy": float(record.exact[:, steps - 1].double().mean()), "forward_passes": float(steps)}


def pick(configs: list[Config]) -> Config:
    """The val-best config within the budget; ties go to fewer forward passes."""
    allowed = [c for c in configs if c.val["forward_passes"] <= BUDGET + 1e-9] or configs
    return max(allowed, key=lambda c: (round(c.val["exact_accuracy"], 9), -c.val["forward_passes"]))


def select_on_val(
    model: TRM, val: PuzzleDataset, grid: Grid, batch: int, cache: dict[str, dict] | None = None
) -> Selection:
    """Every choice of the protocol, on the validation split only (see the module doc). ``cache``: val summaries
    by strategy label measured before (evaluation is deterministic, so they are what a rerun would give)."""
    cache = dict(cache or {})

    def measure(strategy: InferenceConfig) -> dict:
        if strategy.label() not in cache:
            cache[strategy.label()] = evaluate_strategy(model, val, strategy, batch).summary()
            emit({"bench": SECTION, "split": "val", **cache[strategy.label()]})
        return cache[strategy.label()]

    record = record_steps(model, val, batch, max(grid.fixed))
    configs = [Config("fixed", InferenceConfig(steps=n), val_fixed(record, n)) for n in grid.fixed]
    calibration = choose_threshold(record.first(BASE), MAX_DROP, steps=BASE)
    configs.append(Config("adaptive", calibration.strategy, measure(calibration.strategy)))

    def runs(name: str, k: int, steps: int = BASE, **extra: float) -> InferenceConfig:
        key = "votes" if name == "vote" else "trajectories"
        return InferenceConfig(strategy=name, steps=None if steps == BASE else steps, **{key: k}, **extra)

    noise_grid = [measure(runs("trajectories", grid.noise_copies, noise=x)) for x in grid.noises]
    noise = grid.noises[max(range(len(grid.noises)), key=lambda i: (noise_grid[i]["exact_accuracy"], -i))]
    shapes = [(k, BASE) for k in grid.copies] + list(grid.longer)
    for name in ("trajectories", "vote"):
        extra = {"noise": noise} if name == "trajectories" else {}
        configs += [Config(name, s, measure(s)) for s in (runs(name, k, n, **extra) for k, n in shapes)]
    calibrated = calibration.strategy
    rules = [{"halt_threshold": 0.0}]  # the paper's halting rule, and the calibrated one when it halts at all
    if math.isfinite(calibrated.halt_threshold) or calibrated.stable:
        rules.append({"halt_threshold": calibrated.halt_threshold, "stable": calibrated.stable})
    threshold_grid = []
    for k in grid.copies:
        tried = [
            Config("first_to_halt", s, measure(s))
            for s in (runs("first_to_halt", k, noise=noise, **rule) for rule in rules)
        ]
        threshold_grid += [c.val for c in tried]
        configs.append(pick(tried))
    configs.sort(key=lambda c: list(FAMILIES).index(c.family))  # stable: the table's order
    for family in FAMILIES:
        pick([c for c in configs if c.family == family]).picked = True
    return Selection(configs, calibration, noise_grid, threshold_grid, noise, halting_diagnostics(record), grid)


def measure_test(model: TRM, test: PuzzleDataset, configs: list[Config], batch: int, repeats: int) -> None:
    """Each config once on test; fixed 16 and adaptive side by side ``repeats`` times for their puzzles/s."""
    timed = [c for c in configs if c.family == "adaptive" or c.strategy == InferenceConfig(steps=BASE)]
    for _ in range(repeats):
        for config in timed:
            summary = evaluate_strategy(model, test, config.strategy, batch).summary()
            assert not config.test or summary["exact_accuracy"] == config.test["exact_accuracy"]
            if summary["puzzles_per_second"] > config.test.get("puzzles_per_second", 0.0):
                config.test = summary
    for config in configs:
        if not config.test:
            config.test = evaluate_strategy(model, test, config.strategy, batch).summary()
        config.test["load_1min"] = os.getloadavg()[0]  # other jobs on the machine slow a pass down
        emit(
            {"bench": SECTION, "split": "test", "family": config.family, "picked_on_val": config.picked, **config.test}
        )


def halting_diagnostics(record: StepRecord) -> dict:
    """Of the recorded val pass's first 16 steps: how early puzzles are solved (an oracle that halts each puzzle at
    the first step from which its answer stays exact needs ``oracle_steps`` on average) and how often q_halt > 0."""
    exact, q_halt = record.exact[:, :BASE], record.q_halt[:, :BASE]
    stays = exact.flip(1).int().cumprod(1).flip(1).bool()  # exact from this step through step 16
    first = torch.where(stays.any(1), stays.int().argmax(1) + 1, torch.full((len(exact),), BASE))
    return {
        "count": len(exact),
        "oracle_steps": float(first.double().mean()),
        "solved_by_step_8": float(stays[:, 7].double().mean()) if BASE >= 8 else float("nan"),
        "q_halt_positive": float((q_halt > 0).any(1).double().mean()),
        "q_halt_max": float(q_halt.max()),
    }


def plot(configs: list[Config], base: Config, path: Path) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # lazy, no pyplot (as trm/store/card.py)
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, 5), dpi=110)
    FigureCanvasAgg(figure)
    axis = figure.subplots()
    for family, colour in FAMILIES.items():
        rows = [c for c in configs if c.family == family]
        x, y = [c.test["forward_passes"] for c in rows], [100 * c.test["exact_accuracy"] for c in rows]
        axis.scatter(x, y, color=colour, label=family, s=36, zorder=3)
        for c in rows:
            if c.picked:
                axis.scatter(
                    c.test["forward_passes"],
                    100 * c.test["exact_accuracy"],
                    s=150,
                    facecolor="none",
                    edgecolor="black",
                    zorder=4,
                )
    goal = 100 * base.test["exact_accuracy"] + 10
    axis.axhline(goal, color="black", ls="--", lw=0.8, label="goal 1: fixed 16 + 10 points")
    axis.axvline(BUDGET, color="black", ls=":", lw=0.8, label=f"16x compute ({BUDGET} passes)")
    axis.scatter([], [], s=150, facecolor="none", edgecolor="black", label="picked on val (per family)")
    axis.set_xscale("log", base=2)
    axis.set_xlabel("forward passes (supervision steps) per puzzle, test mean")
    axis.set_ylabel("test exact accuracy (%)")
    axis.set_title(f"{PRESET}: inference strategies (one model, test measured once per config)")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8, loc="lower right")
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png")
    return path


def pct(value: float) -> str:
    return f"{100 * value:.1f}%"


def baseline(configs: list[Config]) -> Config:
    return next(c for c in configs if c.family == "fixed" and c.strategy.steps == BASE)


def table_rows(configs: list[Config]) -> list[list[str]]:
    base = baseline(configs).test
    return [
        [
            c.family,
            f"`{c.strategy.label()}`",
            "**yes**" if c.picked else "",
            pct(c.val["exact_accuracy"]),
            pct(c.test["exact_accuracy"]),
            f"{c.test['forward_passes']:.1f}",
            f"{c.test['forward_passes'] / BASE:.2f}x",
            f"{c.test['puzzles_per_second'] / base['puzzles_per_second']:.2f}x",
        ]
        for c in configs
    ]


def goal_lines(selection: Selection) -> list[str]:
    """Goal 1 (the val-picked best strategy: >= +10 points at <= 16x compute) and goal 2 (calibrated adaptive: >= 2x
    the puzzles/s of fixed 16 at <= 0.5 points lower), with the numbers that decide them."""
    configs, base = selection.configs, baseline(selection.configs)
    best = pick([c for c in configs if c.picked])
    gain = best.test["exact_accuracy"] - base.test["exact_accuracy"]
    ok1 = gain >= 0.10 - 1e-9 and best.test["forward_passes"] <= BUDGET
    top = max(configs, key=lambda c: c.test["exact_accuracy"])
    adaptive = next(c for c in configs if c.family == "adaptive")
    speed = adaptive.test["puzzles_per_second"] / base.test["puzzles_per_second"]
    drop = base.test["exact_accuracy"] - adaptive.test["exact_accuracy"]
    ok2 = speed >= 2 and drop <= MAX_DROP + 1e-9
    return [
        f"- **Goal 1 (>= +10 points at <= 16x compute): {'met' if ok1 else 'missed'}.** The best config on val is "
        f"`{best.strategy.label()}` ({pct(best.val['exact_accuracy'])} val): {pct(best.test['exact_accuracy'])} "
        f"test vs {pct(base.test['exact_accuracy'])} for fixed 16, {100 * gain:+.1f} points at "
        f"{best.test['forward_passes'] / BASE:.1f}x compute. (The highest test number of any config, "
        f"`{top.strategy.label()}` at {pct(top.test['exact_accuracy'])}, is shown for reference, not chosen.)",
        f"- **Goal 2 (calibrated adaptive >= 2x faster at <= 0.5 points lower): {'met' if ok2 else 'missed'}.** "
        f"`{adaptive.strategy.label()}`: {speed:.2f}x the puzzles/s of fixed 16 (best of the interleaved timing "
        f"passes), {adaptive.test['forward_passes']:.1f} forward passes per puzzle, "
        f"{pct(adaptive.test['exact_accuracy'])} test exact ({-100 * drop:+.1f} points).",
    ]


def evidence_lines(selection: Selection) -> list[str]:
    """What the val choices saw, and the halting facts that bound goal 2."""
    configs, d, cal = selection.configs, selection.diagnostics, selection.calibration
    rule = cal.strategy
    chosen = next(r for r in cal.table if (r["threshold"], r.get("stable", 0)) == (rule.halt_threshold, rule.stable))
    base = baseline(configs).test["exact_accuracy"]
    longer = ", ".join(
        f"{c.strategy.steps}: {100 * (c.test['exact_accuracy'] - base):+.1f}"
        for c in configs
        if c.family == "fixed" and c.strategy.steps != BASE
    )
    noises = ", ".join(
        f"{n:g}: {pct(r['exact_accuracy'])}" for n, r in zip(selection.grid.noises, selection.noise_grid, strict=True)
    )
    tried = ", ".join(f"`{r['strategy']}` {pct(r['exact_accuracy'])}" for r in selection.threshold_grid)
    return [
        f"- Noise std of the trajectories, val exact at K={selection.grid.noise_copies}: {noises}; "
        f"chosen {selection.noise:g}.",
        f"- first_to_halt halting rules on val (threshold 0, and the calibrated rule; per K the better is in the "
        f"table): {tried}.",
        f"- More recursion alone (fixed N vs fixed 16 on test, points): {longer}.",
        f"- Halting on val ({d['count']} puzzles): the calibrated rule (q_halt threshold {rule.halt_threshold:.3g}, "
        f"stable {rule.stable}: {stable_words(rule.stable)}) stops a puzzle after {chosen['mean_steps']:.2f} steps "
        f"on average ({BASE / chosen['mean_steps']:.2f}x fewer than 16) at {pct(chosen['exact_accuracy'])} val "
        f"exact vs {pct(cal.fixed_exact_accuracy)} for fixed 16. "
        f"An oracle halting each puzzle at the first step from which its answer stays exact would need "
        f"{d['oracle_steps']:.2f} steps ({BASE / d['oracle_steps']:.2f}x); {pct(d['solved_by_step_8'])} of val puzzles "
        f"are solved for good by step 8. q_halt > 0 at some step for {pct(d['q_halt_positive'])} of val puzzles "
        f"(largest logit {d['q_halt_max']:.2f}).",
    ]


def stable_words(stable: int) -> str:
    if not stable:
        return "the halting head alone"
    return f"or the answer unchanged for {stable} step{'s' if stable > 1 else ''} in a row"


def read_val_cache(path: Path) -> dict[str, dict]:
    """Val summaries by strategy label from a file of this script's stdout (lines with split "val")."""
    cache = {}
    for line in path.read_text().splitlines():
        record = json.loads(line) if line.startswith("{") else {}
        if record.get("bench", SECTION) == SECTION and record.get("split") == "val" and "strategy" in record:
            cache[record["strategy"]] = {k: v for k, v in record.items() if k not in ("bench", "split", "note")}
    return cache


def section(selection: Selection, source: str, note: str, plot_path: Path) -> str:
    headers = ["family", "strategy", "picked on val", "val exact", "test exact", "forward passes / puzzle"]
    headers += ["x compute vs fixed 16", "puzzles/s vs fixed 16"]
    count, p = selection.configs[0].test["count"], baseline(selection.configs).test["exact_accuracy"]
    loads = [c.test.get("load_1min", math.nan) for c in selection.configs]
    return "\n".join(
        [
            f"## Inference strategies on `{PRESET}` — `bench/inference_strategies.py`",
            "",
            f"Measured {note}; one process with {torch.get_num_threads()} torch threads; 1-minute load average "
            f"after each test measurement {min(loads):.1f} to {max(loads):.1f} (above {os.cpu_count()}, other jobs "
            "shared the cores and slowed that pass, so its puzzles/s ratio is low; forward passes do not depend on "
            f"load). Model: {source}. Every choice (noise std, thresholds, the picked config of each family) on the "
            f"val split; each config measured once on the {count} test puzzles. Compute is forward passes "
            "(supervision steps) per puzzle over all runs or copies, test mean; x compute and the puzzles/s ratio are "
            "relative to fixed 16 measured in the same run (fixed 16 and adaptive: best of "
            f'{selection.grid.timing_repeats} interleaved passes; every other config: one pass). "Picked on val" = '
            f"the val-best config of its family within {BUDGET} passes (16x), ties to the cheaper. With {count} test "
            "puzzles an exact accuracy near fixed 16's has a binomial standard error of about "
            f"{100 * math.sqrt(p * (1 - p) / max(count, 1)):.1f} points (differences on the same puzzles vary less).",
            "",
            table(headers, table_rows(selection.configs)),
            "",
            f"![test exact accuracy vs forward passes]({os.path.relpath(plot_path, BENCHMARKS_DOC.parent)})",
            "",
            *goal_lines(selection),
            "",
            *evidence_lines(selection),
        ]
    )


def open_benchmark(quick: bool, workdir: Path) -> tuple[TRM, PuzzleDataset, PuzzleDataset, int, str]:
    """(model, val, test, batch, description): the headroom export (trained first when missing), or with
    ``quick`` an untrained model of the preset's shape on an 8-puzzle build in ``workdir``."""
    if quick:
        sizes = {"train_count": 4, "val_count": 8, "test_count": 8, "num_aug": 1}
        path = build_dataset(PRESET, sizes, out_root=workdir)
        torch.manual_seed(0)
        config = load_config(PRESET, ["model.H_cycles=1", "model.L_cycles=1"])  # 3x cheaper steps
        model = TRM(fill_from_dataset(config.model, path, required=True)).eval()
        source = "untrained (quick check)"
        batch = 64
    else:
        if not (EXPORT / "model.safetensors").is_file():
            import headroom  # bench/headroom.py: trains the seed-0 full model into EXPORT (~17 min)

            headroom.run_one("full", 0)
        model, config = load_exported(EXPORT, "cpu")
        path = ensure_built(config.data.resolve_path(), config.data.name)
        source = f"`{EXPORT}` (bench/headroom.py, full network, seed 0; one model)"
        batch = config.eval.batch_size
    return model, PuzzleDataset.open(path, "val"), PuzzleDataset.open(path, "test"), batch, source


def read_selection(path: Path, grid: Grid) -> Selection:
    """The val-phase choices stored in a results.jsonl (for ``--retest``)."""
    records = [json.loads(line) for line in path.read_text().splitlines()]
    configs = [
        Config(r["family"], parse_strategy(r["test"]["strategy"]), r["val"], r["test"], r["picked_on_val"])
        for r in records
        if "family" in r
    ]
    stored = next(r for r in records if "calibration" in r)
    cal = stored["calibration"]
    rows = [{**row, "threshold": float(row["threshold"])} for row in cal["table"]]
    calibration = Calibration(parse_strategy(cal["strategy"]), cal["fixed_exact_accuracy"], cal["max_drop"], rows)
    noise = next(c.strategy.noise for c in configs if c.family == "trajectories")
    noise_grid = [r for r in records if r.get("grid") == "noise"]
    threshold_grid = [r for r in records if r.get("grid") == "first_to_halt threshold"]
    return Selection(configs, calibration, noise_grid, threshold_grid, noise, stored["diagnostics"], grid)


def write_results(folder: Path, selection: Selection, meta: dict) -> None:
    records = [{"split": "val", "grid": "noise", **r} for r in selection.noise_grid]
    records += [{"split": "val", "grid": "first_to_halt threshold", **r} for r in selection.threshold_grid]
    records += [
        {"family": c.family, "picked_on_val": c.picked, "val": c.val, "test": c.test} for c in selection.configs
    ]
    records.append({"calibration": selection.calibration.summary(), "diagnostics": selection.diagnostics})
    records.append(meta)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))


def main(argv: list[str] | None = None) -> Selection:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny untrained model on 8 puzzles (CI), no docs")
    parser.add_argument("--out", type=Path, default=OUT, help=f"results folder (default {OUT})")
    parser.add_argument(
        "--retest", action="store_true", help="keep the stored val choices, rerun the test phase for its timings"
    )
    parser.add_argument(
        "--val-cache", type=Path, help="this script's earlier stdout: its val measurements are reused, not rerun"
    )
    args = parser.parse_args(argv)
    grid, started, note = QUICK if args.quick else Grid(), time.perf_counter(), machine_note()
    with tempfile.TemporaryDirectory(prefix="trm-strategies-") as tmp:
        model, val, test, batch, source = open_benchmark(args.quick, Path(tmp))
        if args.retest:
            selection = read_selection(args.out / "results.jsonl", grid)
            stored = [c.test for c in selection.configs]
            for config in selection.configs:
                config.test = {}
        else:
            cache = read_val_cache(args.val_cache) if args.val_cache else {}
            selection = select_on_val(model, val, grid, batch, cache)
        measure_test(model, test, selection.configs, batch, grid.timing_repeats)
    if args.retest:  # evaluation is deterministic: the test numbers must come out exactly as before
        for config, old in zip(selection.configs, stored, strict=True):
            for key in ("exact_accuracy", "accuracy", "forward_passes"):
                assert config.test[key] == old[key], (config.strategy.label(), key, config.test[key], old[key])
    seconds = round(time.perf_counter() - started, 1)
    meta = {"seconds": seconds, "note": note, "quick": args.quick, "retest": args.retest}
    write_results(args.out, selection, {**meta, "val_cache": str(args.val_cache) if args.val_cache else None})
    plot_path = plot(selection.configs, baseline(selection.configs), args.out / PLOT.name if args.quick else PLOT)
    if args.val_cache:  # the docs say which val numbers were not measured in this run
        note += (
            f" (val measurements of the configurations already in `{args.val_cache}` taken from it, not rerun: "
            "evaluation is deterministic, so a rerun gives the same numbers)"
        )
    body = section(selection, source, note, plot_path)
    if not args.quick:
        replace_section(SECTION, body)
    print(body)
    return selection


if __name__ == "__main__":
    main()
