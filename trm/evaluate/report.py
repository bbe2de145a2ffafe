"""One evaluation of a model on a dataset split in the requested modes, plus ARC scoring, as a JSON-ready report.

Shared by `trm evaluate` and anything else that wants the same numbers (the training loop, the store, benchmarks),
so the eval.json written by each is the same document.
"""

from __future__ import annotations

import json
from functools import partial
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from trm.data.loader import PuzzleDataset
from trm.evaluate.arc import ArcEvaluator, ArcResult, ArcTestRows, score_predictions, write_submission
from trm.evaluate.inference import MODES, EvalResult, evaluate, warm_up


def is_arc(dataset: PuzzleDataset) -> bool:
    return dataset.metadata.task == "arc"


def evaluate_modes(
    model: torch.nn.Module,
    dataset: PuzzleDataset,
    batch_size: int,
    modes: Sequence[str] = ("fixed",),
    device: torch.device | str = "cpu",
    arc: ArcEvaluator | None = None,
    rank: int = 0,
    world_size: int = 1,
    process_group=None,
    on_rows_done: Callable[[str, int], None] | None = None,
) -> tuple[dict[str, EvalResult], ArcResult | None]:
    """Run every mode; with an ARC evaluator, vote with the predictions of the first mode run ('fixed' when
    requested: the official protocol). ARC scoring happens on rank 0 only (predictions are reduced to all ranks).
    `on_rows_done(mode, n)` reports progress."""
    unknown = [m for m in modes if m not in MODES]
    if unknown or not modes:
        raise ValueError(f"modes {list(modes)}: expected a non-empty subset of {MODES}")
    ordered = sorted(dict.fromkeys(modes), key=MODES.index)
    results: dict[str, EvalResult] = {}
    warm_up(model, dataset, batch_size, device, rank, world_size)
    for mode in ordered:
        collect = arc is not None and mode == ordered[0]
        results[mode] = evaluate(model, dataset, batch_size, mode=mode, device=device, rank=rank,
                                 world_size=world_size, collect_predictions=collect, process_group=process_group,
                                 on_rows_done=None if on_rows_done is None else partial(on_rows_done, mode))
    arc_result = None
    if arc is not None and rank == 0:
        voted = results[ordered[0]]
        rows = ArcTestRows.read(dataset.path, dataset.split)
        arc_result = score_predictions(arc, rows, voted.predictions.numpy(), voted.q_halt_logits.numpy(),
                                       voted.predicted.numpy())
    return results, arc_result


def build_report(
    results: dict[str, EvalResult], arc_result: ArcResult | None, **context: Any
) -> dict[str, Any]:
    """The eval.json document: context (checkpoint, dataset, ...), per-mode numbers, ARC pass@K when scored."""
    report: dict[str, Any] = dict(context)
    report["modes"] = {mode: result.summary() for mode, result in results.items()}
    if arc_result is not None:
        report["arc"] = {
            "voted_mode": next(iter(results)),
            **{f"pass@{k}": v for k, v in arc_result.pass_at.items()},
            "num_tasks": arc_result.num_tasks,
            "num_votes": arc_result.num_votes,
            "task_scores_pass@2": arc_result.task_scores.get(2, {}),
        }
    return report


def write_report(report: dict[str, Any], out_dir: Path, arc_result: ArcResult | None = None) -> Path:
    """Write eval.json (and submission.json for ARC) into `out_dir`, each atomically."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "eval.json"
    tmp = out_dir / ".eval.json.tmp"
    tmp.write_text(json.dumps(report, indent=1))
    tmp.replace(path)
    if arc_result is not None:
        write_submission(arc_result, out_dir / "submission.json")
    return path
