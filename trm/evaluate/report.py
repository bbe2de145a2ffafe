"""One evaluation of a model on a dataset split in the requested modes, plus ARC scoring, as a JSON-ready report.

Shared by `trm evaluate` and anything else that wants the same numbers (the training loop, the store, benchmarks),
so the eval.json written by each is the same document.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from trm.atomic import atomic_write_json
from trm.config import InferenceConfig, TRMConfig
from trm.data.loader import PuzzleDataset
from trm.evaluate.arc import (
    ArcEvaluator,
    ArcResult,
    ArcTestRows,
    score_predictions,
    write_submission,
)
from trm.evaluate.calibration import calibrate_adaptive
from trm.evaluate.inference import MODES, EvalResult, Mode, evaluate, warm_up
from trm.evaluate.strategies import evaluate_strategy
from trm.model import TRM
from trm.train.export import load_exported


def open_for_evaluation(
    checkpoint: Path, data: str | Path | None, split: str, device: str = "cpu"
) -> tuple[TRM, TRMConfig, PuzzleDataset]:
    """An export or checkpoint folder, its config, and the dataset split to evaluate it on (default: the dataset it
    was trained on), checked to fit each other; errors name the folder and what does not fit."""
    model, config = load_exported(checkpoint, device=device)
    dataset = bounded(PuzzleDataset.open(data if data is not None else config.data.resolve_path(), split), config)
    if (dataset.seq_len, dataset.metadata.vocab_size) != (config.model.seq_len, config.model.vocab_size):
        raise ValueError(
            f"{dataset.path}: seq_len/vocab {dataset.seq_len}/{dataset.metadata.vocab_size} does not fit the model "
            f"in {checkpoint} ({config.model.seq_len}/{config.model.vocab_size})"
        )
    return model, config, dataset


def is_arc(dataset: PuzzleDataset) -> bool:
    return dataset.metadata.task == "arc"


def bounded(dataset: PuzzleDataset, config: TRMConfig) -> PuzzleDataset:
    """The part of a split that ``eval.max_groups`` / ``eval.max_variants`` allow (all of it by default)."""
    return dataset.head(config.eval.max_groups, config.eval.max_variants)


def arc_evaluator(dataset: PuzzleDataset, **options: Any) -> ArcEvaluator | None:
    """The ARC scorer of an ARC split (None otherwise), over only the tasks a bounded view holds."""
    if not is_arc(dataset):
        return None
    evaluator = ArcEvaluator.for_dataset(dataset.path, dataset.split, **options)
    if dataset.rows is None:
        return evaluator
    return evaluator.restricted_to(ArcTestRows.task_ids_at(dataset.path, dataset.split, dataset.rows.numpy()))


def bounds_of(dataset: PuzzleDataset, config: TRMConfig) -> dict[str, Any] | None:
    """What a bounded evaluation covered, for its report (None when it covered the whole split)."""
    if dataset.rows is None:
        return None
    return {
        "max_groups": config.eval.max_groups,
        "max_variants": config.eval.max_variants,
        "groups": dataset.num_groups,
        "puzzles": dataset.num_puzzles,
        "rows": len(dataset),
    }


def evaluate_modes(
    model: TRM,
    dataset: PuzzleDataset,
    batch_size: int,
    modes: Sequence[str] = ("fixed",),
    device: torch.device | str = "cpu",
    arc: ArcEvaluator | None = None,
    rank: int = 0,
    world_size: int = 1,
    process_group: dist.ProcessGroup | None = None,
    on_rows_done: Callable[[str, int], None] | None = None,
) -> tuple[dict[str, EvalResult], ArcResult | None]:
    """Run every mode; with an ARC evaluator, vote with the predictions of the first mode run ('fixed' when
    requested: the official protocol). ARC scoring happens on rank 0 only (predictions are reduced to all ranks).
    `on_rows_done(mode, n)` reports progress."""
    unknown = [m for m in modes if m not in MODES]
    if unknown or not modes:
        raise ValueError(f"modes {list(modes)}: expected a non-empty subset of {MODES}")
    ordered: list[Mode] = sorted(dict.fromkeys(modes), key=MODES.index)  # type: ignore[arg-type]  # checked above
    results: dict[str, EvalResult] = {}
    warm_up(model, dataset, batch_size, device, rank, world_size)
    for mode in ordered:
        collect = arc is not None and mode == ordered[0]
        results[mode] = evaluate(
            model,
            dataset,
            batch_size,
            mode=mode,
            device=device,
            rank=rank,
            world_size=world_size,
            collect_predictions=collect,
            process_group=process_group,
            on_rows_done=None if on_rows_done is None else partial(on_rows_done, mode),
        )
    arc_result = None
    if arc is not None and rank == 0:
        voted = results[ordered[0]]
        assert voted.predictions is not None and voted.q_halt_logits is not None and voted.predicted is not None
        rows = ArcTestRows.read(dataset.path, dataset.split)
        if dataset.rows is not None:
            rows = rows.take(dataset.rows.numpy())
        arc_result = score_predictions(
            arc, rows, voted.predictions.numpy(), voted.q_halt_logits.numpy(), voted.predicted.numpy()
        )
    return results, arc_result


def build_report(results: dict[str, EvalResult], arc_result: ArcResult | None, **context: Any) -> dict[str, Any]:
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
    path = atomic_write_json(Path(out_dir) / "eval.json", report, sort_keys=False)
    if arc_result is not None:
        write_submission(arc_result, out_dir / "submission.json")
    return path


def measure_strategies(
    model: TRM,
    config: TRMConfig,
    dataset: PuzzleDataset,
    batch_size: int,
    strategies: Sequence[InferenceConfig],
    device: torch.device | str = "cpu",
    on_rows_done: Callable[[str, int], None] | None = None,
) -> dict[str, Any]:
    """``{label: summary}`` of each inference strategy on ``dataset`` (the eval.json ``strategies`` section). An
    adaptive strategy with ``calibrate`` first picks its threshold on the validation split of the same dataset; its
    summary (under the label ``adaptive:calibrate=true``) names the chosen strategy and carries the calibration
    table."""
    summaries: dict[str, Any] = {}
    for requested in strategies:
        strategy, extra = requested, {}
        if requested.calibrate:
            val = bounded(PuzzleDataset.open(dataset.path, "val"), config)
            calibration = calibrate_adaptive(model, val, batch_size, steps=requested.steps, device=device)
            strategy, extra = calibration.strategy, {"calibration": calibration.summary()}
        progress = None if on_rows_done is None else partial(on_rows_done, requested.label())
        result = evaluate_strategy(model, dataset, strategy, batch_size, device, on_rows_done=progress)
        # keyed by what was asked for, so a calibrated strategy's metrics keep their name from one retrain to the next
        summaries[requested.label()] = {**result.summary(), **extra}
    return summaries
