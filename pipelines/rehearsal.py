"""Dress rehearsals: a paper preset's real data and full-size model through every stage of the retrain flow on a
CPU-sized budget, plus what the full run would cost on GPUs.

A rehearsal changes only the budget, never the shapes: the real DVC build, the preset's model as configured (its
puzzle-embedding table over every identifier), a few optimizer steps on Ray with the flow's workers, evaluation on a
bounded part of each split (whole puzzles; ARC keeps several variants of each task so that voting, pass@K and
`submission.json` all run) and a publish flagged as a rehearsal. What it catches is what a first GPU run would
otherwise find at the highest price: shape, memory and format errors between the stages.

The projection follows docs/scaling.md: matmul FLOPs of one supervision step (``trm.model.flops``) x the global
batch x the preset's step budget on the built dataset, plus its evaluations, divided by an H100's dense bf16 peak
at two utilisation anchors.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel, Field

from pipelines.stages import StageUsage
from trm.config import TRMConfig
from trm.data.sampler import epoch_steps
from trm.data.schema import DatasetMetadata
from trm.markdown import table
from trm.model.flops import supervision_step_flops
from trm.train.cadence import interval_steps, step_budget
from trm.train.trainer import resolve_model_config

H100_BF16_DENSE_TFLOPS = 989.0
UTILISATION_ANCHORS = (0.30, 0.17)  # optimistic for D=512 matrices; what the official ARC-AGI-1 run implies
MULTI_GPU_EFFICIENCY = 0.90
GPU_COUNTS = (1, 4, 8)
STAGE_ORDER = ("preflight", "data", "train", "evaluate", "publish")  # the flow's order (stored reports sort keys)


class RehearsalBudget(BaseModel):
    """How much of the real run a rehearsal does (the shapes stay the preset's)."""

    steps: int = Field(3, gt=0, description="optimizer steps")
    rows_per_worker: int = Field(2, gt=0, description="training rows per worker per step")
    eval_gflop: float = Field(12_000.0, gt=0, description="forward matmul GFLOP per evaluated split")
    arc_tasks: int = Field(2, gt=0, description="ARC tasks evaluated per split")
    arc_min_variants: int = Field(2, gt=0, description="augmented variants per ARC task at least (so it votes)")


def evaluation_bounds(model_flops_forward: int, halt_max_steps: int, arc: bool, budget: RehearsalBudget) -> dict:
    """eval.max_groups / eval.max_variants that keep one split's evaluation within ``budget.eval_gflop``."""
    per_example = model_flops_forward * halt_max_steps
    examples = max(1, int(budget.eval_gflop * 1e9 // per_example))
    if arc:
        variants = max(budget.arc_min_variants, examples // budget.arc_tasks)
        return {"max_groups": budget.arc_tasks, "max_variants": variants}
    return {"max_groups": examples, "max_variants": 1}


def rehearsal_overrides(
    config: TRMConfig, metadata: DatasetMetadata, workers: int, budget: RehearsalBudget
) -> list[str]:
    """Overrides that turn ``config`` (a paper preset) into its rehearsal; the user's own overrides go after these."""
    model = resolve_model_config(config.model, metadata, torch.device("cpu"))
    flops = supervision_step_flops(model)
    bounds = evaluation_bounds(flops.forward, model.halt_max_steps, metadata.task == "arc", budget)
    return [
        f"train.max_steps={budget.steps}",
        f"train.global_batch_size={budget.rows_per_worker * workers}",
        "train.interval_unit=steps",
        f"train.eval_interval={budget.steps}",
        f"train.checkpoint_interval={budget.steps}",
        "train.log_interval=1",
        "eval.modes=[fixed]",
        f"eval.batch_size={8 * workers}",
        f"eval.max_groups={bounds['max_groups']}",
        f"eval.max_variants={bounds['max_variants']}",
    ]


def full_run_flops(config: TRMConfig, metadata: DatasetMetadata) -> dict[str, float]:
    """Matmul FLOPs of the full run of ``config`` on the built dataset: training, periodic validation, one test."""
    model = resolve_model_config(config.model, metadata, torch.device("cpu"))
    flops = supervision_step_flops(model)
    train, t = metadata.splits["train"], config.train
    steps = step_budget(t, train.groups, train.mean_puzzle_examples)
    per_epoch = epoch_steps(1.0, train.groups, train.mean_puzzle_examples, t.global_batch_size)
    every = interval_steps(t.eval_interval, t.interval_unit, per_epoch)
    evaluations = (steps // every if every else 0) + 1
    per_example = flops.forward * model.halt_max_steps
    val = metadata.splits.get(config.eval.split)
    test = metadata.splits.get("test")
    return {
        "gflop_per_sample_step": flops.training / 1e9,
        "steps": float(steps),
        "global_batch_size": float(t.global_batch_size),
        "train_flop": float(flops.training) * t.global_batch_size * steps,
        "eval_flop": per_example * ((val.examples if val else 0) * evaluations + (test.examples if test else 0)),
        "evaluations": float(evaluations),
    }


def gpu_projection(run_flops: dict[str, float]) -> dict[str, Any]:
    """Hours on 1/4/8 H100 at each utilisation anchor (docs/scaling.md)."""
    total = run_flops["train_flop"] + run_flops["eval_flop"]
    hours: dict[str, list[float]] = {}
    for gpus in GPU_COUNTS:
        efficiency = 1.0 if gpus == 1 else MULTI_GPU_EFFICIENCY
        hours[f"{gpus}xH100"] = [
            float(f"{total / (gpus * efficiency * H100_BF16_DENSE_TFLOPS * 1e12 * u) / 3600:.3g}")
            for u in UTILISATION_ANCHORS
        ]
    return {
        "total_eflop": float(f"{total / 1e18:.3g}"),
        "utilisation": list(UTILISATION_ANCHORS),
        "hours": hours,
    }


class RehearsalReport(BaseModel):
    """What a rehearsal measured and projects; written to ``runs/<run>/rehearsal.json``."""

    preset: str
    workers: int
    overrides: list[str]
    stages: dict[str, StageUsage]
    train_steps_per_second: float | None
    cpu_gflops_achieved: float | None
    full_run: dict[str, float]
    projection: dict[str, Any]
    metrics: dict[str, float]
    model: str

    def markdown(self) -> str:
        """The table docs/benchmarks.md and the Prefect artifact show."""
        order = {name: i for i, name in enumerate(STAGE_ORDER)}
        stages = sorted(self.stages.items(), key=lambda item: order.get(item[0], len(order)))
        rows = [[name, f"{u.seconds:.0f}", f"{u.peak_memory_gb:.2f}"] for name, u in stages]
        hours = self.projection["hours"]
        low, high = self.projection["utilisation"]
        gpu = [[key, f"{value[0]:g} - {value[1]:g} h"] for key, value in hours.items()]
        lines = [
            f"Rehearsal of `{self.preset}` on {self.workers} Ray worker(s): published `{self.model}`.",
            "",
            table(["stage", "wall s", "peak memory GB (PSS, process tree)"], rows),
            "",
            f"Full run: {self.full_run['steps']:.0f} steps x {self.full_run['global_batch_size']:.0f} rows x "
            f"{self.full_run['gflop_per_sample_step']:.1f} GFLOP = {self.projection['total_eflop']} EFLOP with "
            f"evaluation; projected at {low:.0%} - {high:.0%} of the H100 bf16 peak:",
            "",
            table(["GPUs", "projected time"], gpu),
        ]
        if self.cpu_gflops_achieved:
            lines += ["", f"Rehearsal training on CPU achieved {self.cpu_gflops_achieved:.0f} GFLOP/s (matmul)."]
        return "\n".join(lines)


def training_rate(metrics_log: str | None) -> float | None:
    """Median steps/s of the rehearsal's logged training steps (the first step, which warms up, left out)."""
    if not metrics_log or not Path(metrics_log).is_file():
        return None
    rates = []
    for line in Path(metrics_log).read_text().splitlines():
        record = json.loads(line)
        if record.get("kind") == "train" and record.get("step", 0) > 1 and record.get("steps_per_second"):
            rates.append(float(record["steps_per_second"]))
    return sorted(rates)[len(rates) // 2] if rates else None
