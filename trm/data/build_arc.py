"""ARC dataset builder: groups = tasks in recipe order; puzzles = a task's distinct augmented variants, each with its
own global identifier (shared by the train and test split); examples = the variant's pairs in that split."""

from __future__ import annotations

from typing import Any

import numpy as np

from trm.data import arc as arc_source
from trm.data.augment import ArcRows, ArcVariant, arc_canvas_rows, arc_variants, group_rng
from trm.data.build_context import BuildContext, source_path
from trm.data.params import ArcParams
from trm.data.schema import SourceFile
from trm.data.writer import DatasetWriter, ExampleBatch

SPLITS = ("train", "test")


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
) -> None:
    """Task ``g``'s variants into both splits; ``next_puzzle``/``next_group`` are each split's running counters."""
    splits = arc_source.split_pairs(task, params.test_set)
    rng = group_rng(params.seed, g)
    variants = arc_variants(splits["train"].pairs + splits["test"].pairs, params.num_aug, rng)
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
    test_puzzles: dict[str, Any] = {}
    with DatasetWriter(ctx.out, arc_source.MAX_GRID**2) as dw:
        progress.stage(f"augmenting {len(tasks)} tasks", len(tasks))
        next_puzzle = dict.fromkeys(SPLITS, 0)
        next_group = dict.fromkeys(SPLITS, 0)
        for g, task in enumerate(tasks):
            _write_task(dw, task, g, params, next_puzzle, next_group)
            if task.subset == params.test_set:
                test_puzzles[task.task_id] = task.raw
            progress.advance()
        dw.split("test")  # exists even when the test set has no test pairs
        dw.write_json("test_puzzles.json", test_puzzles)
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
