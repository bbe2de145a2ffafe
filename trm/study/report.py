"""The study's report: the markdown of docs/fidelity.md (also the Prefect artifact) and its figure."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, Field

from trm.atomic import atomic_path, atomic_write_text
from trm.distributed.space import SearchSpace
from trm.machine import cpu_model
from trm.markdown import table
from trm.store.card import RENDER_LOCK
from trm.study.measure import TrialResult
from trm.study.summary import StudySummary, TrialNumbers, VariantRow, summarize_study
from trm.study.time_to_accuracy import Curve, TimeToAccuracy, compare_time_to_accuracy, read_curve


class StudyContext(BaseModel):
    """Where and how the study ran: what a reader needs to reproduce or rescale its numbers."""

    command: str
    preset: str
    space: str
    started: str
    seconds: float = Field(description="wall time of the training (the Tune run), all trials")
    steps: int | None = None
    eval_interval: int | None = None
    global_batch_size: int | None = None
    concurrent_trials: int = 1
    threads_per_trial: int | None = None
    test_steps: int | None = Field(None, description="supervision steps of the test evaluation (halt_max_steps)")
    cpu: str = Field(default_factory=cpu_model)
    cores: int = 0
    load_before: float | None = None
    load_after: float | None = None
    torch: str = ""
    commit: str = ""


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def _delta(row: VariantRow) -> str:
    if row.delta is None:
        return "-"
    return f"{row.delta:+.1f}" if row.delta_error is None else f"{row.delta:+.1f} ± {row.delta_error:.1f}"


def summary_table(summary: StudySummary) -> str:
    header = [
        "row",
        "what it changes",
        "paper row",
        "paper %",
        "paper Δ",
        "seeds",
        "test exact %",
        "Δ vs baseline",
        "test cell %",
        "val exact %",
        "train min",
        "verdict",
    ]
    rows = [
        [
            f"**{r.variant}**",
            r.about,
            r.paper_row or "-",
            "-" if r.paper is None else f"{r.paper:.1f}",
            "-" if r.paper_delta is None else f"{r.paper_delta:+.1f}",
            ", ".join(str(s) for s in r.seeds),
            r.test_exact.text(),
            _delta(r),
            r.test_accuracy.text(),
            r.val_exact.text(),
            r.train_minutes.text(),
            r.verdict,
        ]
        for r in summary.rows
    ]
    return table(header, rows)


def trials_table(tested: list[TrialResult]) -> str:
    header = [
        "row",
        "seed",
        "trial",
        "selected step",
        "val exact %",
        "test exact %",
        "test cell %",
        "train min",
        "model",
    ]
    rows = [
        [
            t.trial.variant,
            t.trial.seed,
            t.trial.trial,
            t.trial.selected_step,
            _pct(t.trial.val_exact),
            _pct(t.test_exact),
            _pct(t.test_accuracy),
            "-" if t.train_seconds is None else f"{t.train_seconds / 60:.1f}",
            t.model or "-",
        ]
        for t in sorted(tested, key=lambda t: (t.trial.variant, t.trial.seed))
    ]
    return table(header, rows)


def time_to_accuracy_markdown(result: TimeToAccuracy) -> str:
    def minutes(value: float | None) -> str:
        return "never" if value is None else f"{value / 60:.1f}"

    rows = [
        [
            s.seed,
            _pct(s.baseline_final),
            _pct(s.variant_final),
            minutes(s.baseline_seconds),
            minutes(s.variant_seconds),
            _pct(s.baseline_at_variant_end),
            minutes(s.baseline_to_target),
            minutes(s.variant_to_target),
        ]
        for s in result.seeds
    ]
    header = [
        "seed",
        f"{result.baseline} val exact % (end)",
        f"{result.variant} val exact % (end)",
        f"{result.baseline} min",
        f"{result.variant} min",
        f"{result.baseline} val % at {result.variant}'s end",
        f"{result.baseline} min to target",
        f"{result.variant} min to target",
    ]
    wall = result.wall_time_ratio
    target = result.time_to_target_ratio
    lines = [
        table(header, rows),
        "",
        f"- Equal steps: val exact {_pct(result.mean('baseline_final'))}% ({result.baseline}) against "
        f"{_pct(result.mean('variant_final'))}% ({result.variant}); {result.variant} trains "
        + ("-" if wall is None else f"{wall:.2f}x faster")
        + " in wall time.",
        f"- Equal wall time: when {result.variant} had finished, {result.baseline} stood at "
        f"{_pct(result.mean('baseline_at_variant_end'))}% val exact (linear between its evaluations).",
        f"- Time to a common target ({_pct(result.target)}% val exact, the lower mean final): "
        + ("not reached by both on any seed" if target is None else f"{result.variant} is {target:.2f}x faster")
        + ".",
    ]
    return "\n".join(lines)


def render_figure(
    summary: StudySummary, curves: dict[str, dict[int, Curve]], highlighted: list[str], out_png: Path
) -> Path:
    """Left: each row's test exact accuracy (mean, bar = std over seeds) with the paper's number; right: the val
    curves against wall time of the ``highlighted`` variants (one line per seed)."""
    import matplotlib  # lazy: matplotlib takes ~0.4 s to import; only a report draws

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # lazy: as above

    with RENDER_LOCK:
        fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
        names = [r.variant for r in summary.rows][::-1]
        rows = summary.rows[::-1]
        ys = range(len(rows))
        left.barh(
            list(ys),
            [r.test_exact.mean for r in rows],
            xerr=[r.test_exact.std for r in rows],
            color="#4c78a8",
            label="measured (mean ± std over seeds)",
        )
        paper = [(y, r.paper) for y, r in zip(ys, rows, strict=True) if r.paper is not None]
        if paper:
            left.scatter(
                [p for _, p in paper],
                [y for y, _ in paper],
                color="#e45756",
                marker="x",
                zorder=3,
                label="paper (Sudoku-Extreme)",
            )
        left.set_yticks(list(ys), names)
        left.set_xlabel("test exact accuracy (%)")
        left.set_xlim(0, 100)
        left.legend(loc="lower right", fontsize=8)
        left.set_title(summary.name)
        colors = ["#4c78a8", "#f58518", "#54a24b", "#b279a2"]
        for color, variant in zip(colors, highlighted, strict=False):
            for i, (_, curve) in enumerate(sorted(curves.get(variant, {}).items())):
                right.plot(
                    [s / 60 for s in curve.seconds],
                    [100 * v for v in curve.val_exact],
                    color=color,
                    marker="o",
                    markersize=3,
                    alpha=0.8,
                    label=variant if i == 0 else None,
                )
        right.set_xlabel("training wall time (min)")
        right.set_ylabel("val exact accuracy (%)")
        right.set_title("time to accuracy")
        right.legend(fontsize=8)
        fig.tight_layout()
        with atomic_path(out_png) as tmp:
            fig.savefig(tmp, format="png", dpi=100)
        plt.close(fig)
    return out_png


def _header(summary: StudySummary, tested: list[TrialResult], ctx: StudyContext) -> list[str]:
    """Title, where and how the study ran, and how to read the table."""
    return [
        f"# Fidelity: the paper's ablations at CPU scale ({summary.name})",
        "",
        "<!-- generated by trm.study.report from a study run; re-run the study to regenerate, do not edit -->",
        "",
        f"Run {ctx.started} with `{ctx.command}` (preset `{ctx.preset}`, space `{ctx.space}`, commit "
        f"`{ctx.commit[:12] or '-'}`). {len(tested)} trials trained in **{ctx.seconds / 60:.0f} min** of wall time "
        f"on {ctx.cores} CPU cores ({ctx.cpu or 'unknown CPU'}), {ctx.concurrent_trials} trials side by side with "
        f"{ctx.threads_per_trial or 'default'} torch thread(s) each; 1-minute load average {ctx.load_before} when "
        f"the study started and {ctx.load_after} when it was reported (the study's own processes); torch "
        f"{ctx.torch}.",
        "",
        f"Budget per trial: {ctx.steps} optimizer steps of {ctx.global_batch_size} puzzles, evaluation on the "
        f"validation split every {ctx.eval_interval} steps. Selection on validation (each trial's best evaluated "
        f"step), then the test split measured once per trial (fixed {ctx.test_steps} supervision steps, exact "
        "accuracy: every "
        "cell right). Spread is the standard deviation over seeds; Δ is the difference of means with its standard "
        "error; a row reproduces the paper when it is lower than the baseline by more than twice that error. The "
        "paper's numbers are Sudoku-Extreme at the full budget (its baseline is T=3, n=6): compare directions and "
        "order, not levels.",
        "",
    ]


def _ordering(summary: StudySummary) -> list[str]:
    swapped = ", ".join(f"{a} / {b}" for a, b in summary.swapped)
    tied = ", ".join(f"{a} / {b}" for a, b in summary.tied)
    rows = [f"- **{r.variant}**: {_row_sentence(r)}" for r in summary.rows if r.variant != summary.baseline]
    return [
        "## Is the paper's ordering reproduced?",
        "",
        f"Over the rows with a paper number, comparing means: {summary.ordering_verdict}."
        + (f" Swapped pairs (the paper orders them the other way): {swapped}." if swapped else "")
        + (f" Tied pairs (equal means): {tied}." if tied else ""),
        "",
        *rows,
        "",
    ]


def study_markdown(
    summary: StudySummary,
    tested: list[TrialResult],
    context: StudyContext,
    time_to_accuracy: list[TimeToAccuracy],
    figure: str | None,
) -> str:
    """The whole report (docs/fidelity.md): how it ran, the table, the ordering, the curriculum, every trial."""
    parts = [*_header(summary, tested, context), "## The table", "", summary_table(summary), "", *_ordering(summary)]
    if figure:
        parts += [f"![study figure]({figure})", ""]
    for result in time_to_accuracy:
        title = f"## {result.variant}: time to accuracy against {result.baseline}"
        parts += [title, "", time_to_accuracy_markdown(result), ""]
    parts += [
        "## Every trial",
        "",
        trials_table(tested),
        "",
        "## Re-running and scaling",
        "",
        _scaling(tested, context),
    ]
    return "\n".join([*parts, ""])


def _scaling(tested: list[TrialResult], ctx: StudyContext) -> str:
    """How to run the study again, and what it costs here and on a bigger cluster."""
    longest = max((t.train_seconds or 0.0 for t in tested), default=0.0) / 60
    return (
        f"`{ctx.command}` runs the study again (or `prefect deployment run 'study/ablations'`, which also publishes "
        "every trial; `--resume` / `resume=<run>` continues a killed run: finished trials are not trained again, "
        "interrupted ones go on from their last checkpoint, and the stop is not counted as training time). "
        f"Here {len(tested)} trial{'' if len(tested) == 1 else 's'} ran {min(ctx.concurrent_trials, len(tested))} at a "
        f"time in {ctx.seconds / 60:.0f} min of training. Tune "
        "places as many trials at once as the cluster has room for (one Ray Train worker of "
        "`search.cpus_per_worker` CPUs each), so on a cluster with a CPU per trial the training takes about as "
        f"long as the slowest trial, {longest:.0f} min here, plus testing; point the run at it with `--address` "
        "(`trm tune`) or `infrastructure.ray_address` (the flow). More steps or seeds: copy the space file and edit "
        "its `fixed` and `space` sections."
    )


def _row_sentence(row: VariantRow) -> str:
    measured = f"{row.test_exact.text()}% test exact ({_delta(row)} points against the baseline)"
    if row.paper is None:
        return f"{measured}; {row.verdict}."
    against = "" if row.paper_delta is None else f" ({row.paper_delta:+.1f})"
    return f"{measured}; the paper: {row.paper:.1f}%{against}. Verdict: {row.verdict}."


class StudyReport(BaseModel):
    summary: StudySummary
    time_to_accuracy: list[TimeToAccuracy]
    markdown: str
    markdown_path: str
    figure_path: str


def figure_beside(report_md: Path) -> Path:
    """Where a report written into a docs folder keeps its figure: ``img/<report name>.png`` beside it."""
    return report_md.parent / "img" / f"{report_md.stem}.png"


def curriculum_variants(space: SearchSpace) -> list[str]:
    """The variants that train with a depth curriculum: each is timed against the baseline."""
    return [name for name, overrides in space.variants.items() if "train.depth_curriculum" in overrides]


def write_study_report(
    space: SearchSpace, tested: list[TrialResult], context: StudyContext, out_md: Path, out_png: Path
) -> StudyReport:
    """Summarize ``tested`` (every trial of the study), time each curriculum variant against the baseline, draw
    the figure to ``out_png`` and write the markdown to ``out_md`` (the figure linked relative to it)."""
    study = space.study
    if study is None:
        raise ValueError("not a study: the search space has no 'study' block")
    numbers = [
        TrialNumbers(
            variant=t.trial.variant,
            seed=t.trial.seed,
            test_exact=t.test_exact,
            test_accuracy=t.test_accuracy,
            val_exact=t.trial.val_exact,
            train_seconds=t.train_seconds,
        )
        for t in tested
    ]
    summary = summarize_study(numbers, study, list(space.variants))
    curves: dict[str, dict[int, Curve]] = {}
    for t in tested:
        if t.trial.metrics_log.is_file():
            curves.setdefault(t.trial.variant, {})[t.trial.seed] = read_curve(t.trial.metrics_log)
    timed = [
        compare_time_to_accuracy(v, study.baseline, curves[v], curves[study.baseline])
        for v in curriculum_variants(space)
        if v in curves and study.baseline in curves
    ]
    render_figure(summary, curves, [study.baseline, *(t.variant for t in timed)], out_png)
    figure = os.path.relpath(out_png.resolve(), out_md.resolve().parent)
    markdown = study_markdown(summary, tested, context, timed, figure)
    atomic_write_text(out_md, markdown)
    return StudyReport(
        summary=summary, time_to_accuracy=timed, markdown=markdown, markdown_path=str(out_md), figure_path=str(out_png)
    )
