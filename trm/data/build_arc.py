"""ARC dataset builder: groups = tasks in recipe order; puzzles = a task's distinct augmented variants, each with its
own global identifier (shared by every split the task's pairs are in); examples = the variant's pairs in that split.
Held-out tasks are written raw beside the splits (``test_puzzles.json``, ``val_puzzles.json``) for voting."""

from __future__ import annotations

from typing import Any

import numpy as np

from trm.data import arc as arc_source
from trm.data.augment import ArcRows, ArcVariant, arc_canvas_rows, arc_variants, group_rng
from trm.data.build_context import BuildContext, source_path
from trm.data.params import ArcParams
from trm.data.schema import SourceFile
from trm.data.validation import validation_rng
from trm.data.writer import DatasetWriter, ExampleBatch

SPLITS = ("train", "val", "test")


def _arc_batch(
    rows: ArcRows,
    split: arc_source.SplitPairs,
    ids: np.ndarray,
    variant_offset: int,
    group: int,
    task_id: str,
    variants: list[ArcVariant],
) -> ExampleBatch:
    n = rows.inputs.shape[0]
    kinds = np.array([0 if k == "train" else 1 for k in split.kinds], np.int8)
    return ExampleBatch(
        inputs=rows.inputs,
        labels=rows.labels,
        puzzle_identifier=ids[rows.variant],
        puzzle_index=(variant_offset + rows.variant).astype(np.int32),
        group_index=np.full(n, group, np.int32),
        source_names=[task_id],
        source_codes=np.zeros(n, np.int32),
        pair_index=np.asarray(split.indices, np.int16)[rows.pair],
        pair_kind_codes=kinds[rows.pair],
        aug_dihedral=np.array([v.dihedral for v in variants], np.int8)[rows.variant],
        aug_value_map=np.stack([v.colour_map for v in variants])[rows.variant],
        aug_offset=rows.offsets,
    )


def _write_task(
    dw: DatasetWriter,
    task: arc_source.ArcTask,
    g: int,
    params: ArcParams,
    next_puzzle: dict[str, int],
    next_group: dict[str, int],
    validation: bool,
) -> None:
    """Task ``g``'s variants into its splits; ``next_puzzle``/``next_group`` are each split's running counters. The
    pairs are listed in the official order (demonstrations, then test pairs), so variants do not depend on the
    split a task's test pairs land in."""
    splits = arc_source.split_pairs(task, params.test_set, validation)
    rng = group_rng(params.seed, g)
    variants = arc_variants([pair for name in SPLITS for pair in splits[name].pairs], params.num_aug, rng)
    first_id = len(dw.identifiers)
    dw.identifiers.extend(v.name(task.task_id) for v in variants)
    ids = np.arange(first_id, first_id + len(variants), dtype=np.int32)
    for split_name in SPLITS:
        split = splits[split_name]
        if not split.pairs:
            continue
        train = split_name == "train"  # only train examples are translated on the canvas
        rows = arc_canvas_rows(split.pairs, variants, translate=train, rng=rng if train else None)
        dw.split(split_name).write(
            _arc_batch(rows, split, ids, next_puzzle[split_name], next_group[split_name], task.task_id, variants)
        )
        next_puzzle[split_name] += len(variants)
        next_group[split_name] += 1


def validation_tasks(tasks: list[arc_source.ArcTask], params: ArcParams) -> set[int]:
    """Positions of the ``val_tasks`` tasks (a seeded draw among those outside the test set) whose test pairs form
    the validation split."""
    candidates = [g for g, task in enumerate(tasks) if task.subset != params.test_set and task.test]
    if params.val_tasks >= len(candidates):
        raise ValueError(
            f"val_tasks={params.val_tasks} must be below the {len(candidates)} tasks outside test set "
            f"{params.test_set!r} that have test pairs"
        )
    chosen = validation_rng(params.seed).choice(len(candidates), size=params.val_tasks, replace=False)
    return {candidates[int(k)] for k in chosen}


def build_arc(params: ArcParams, ctx: BuildContext) -> None:
    progress = ctx.progress
    kaggle_dir = source_path(params.kaggle_dir)
    folders = {k: source_path(v) for k, v in params.json_folders.items()}
    progress.stage("reading ARC tasks", None)
    tasks = arc_source.load_recipe(params.subsets, params.test_set, params.source, kaggle_dir, folders)
    sources = [
        SourceFile(path=label, name=path.name, sha256=digest)
        for label, path, digest in arc_source.source_files(params.source, params.subsets, kaggle_dir, folders)
    ]
    validation = validation_tasks(tasks, params)
    held_out: dict[str, dict[str, Any]] = {"val": {}, "test": {}}
    with DatasetWriter(ctx.out, arc_source.MAX_GRID**2) as dw:
        progress.stage(f"augmenting {len(tasks)} tasks", len(tasks))
        next_puzzle = dict.fromkeys(SPLITS, 0)
        next_group = dict.fromkeys(SPLITS, 0)
        for g, task in enumerate(tasks):
            _write_task(dw, task, g, params, next_puzzle, next_group, g in validation)
            if task.subset == params.test_set:
                held_out["test"][task.task_id] = task.raw
            elif g in validation:
                held_out["val"][task.task_id] = task.raw
            progress.advance()
        for split, puzzles in held_out.items():
            dw.split(split)  # exists even when no task has held-out pairs
            dw.write_json(f"{split}_puzzles.json", puzzles)
        dw.commit(
            ctx.metadata(
                task="arc",
                seq_len=arc_source.MAX_GRID**2,
                vocab_size=len(arc_source.ARC_VOCAB),
                vocab=arc_source.ARC_VOCAB,
                grid_shape=(arc_source.MAX_GRID, arc_source.MAX_GRID),
                pad_id=0,
                ignore_label_id=0,
                sources=sources,
            )
        )
