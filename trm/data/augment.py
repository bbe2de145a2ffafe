"""Seeded, vectorised augmentations for Sudoku, Maze and ARC, plus the inverse maps for ARC predictions. Each group
draws from its own generator, so its variants do not depend on build chunking or on other groups. The conventions of
the ``aug_*`` record and the reasons: docs/architecture.md ("Design: the data")."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numba import njit

DIHEDRAL_INVERSE = (0, 3, 2, 1, 4, 5, 6, 7)
TRANSPOSE = 6
ARC_CANVAS = 30
ARC_PAD, ARC_EOS, ARC_COLOUR_OFFSET = 0, 1, 2
ARC_TRIES_FACTOR = 5
SUDOKU_BOX_SHAPES = {4: (2, 2), 6: (2, 3), 9: (3, 3)}  # (rows, cols) of one box


def group_rng(seed: int, *key: int) -> np.random.Generator:
    """The generator of one group: independent of build chunking and of every other group."""
    return np.random.default_rng([int(seed), *(int(k) for k in key)])


# ---------------------------------------------------------------------------------------------------- dihedral
def dihedral(grid: np.ndarray, tid: int) -> np.ndarray:
    """Apply dihedral transform ``tid`` to the last two axes (works on one grid or a stack)."""
    axes = (-2, -1)
    if tid == 0:
        return grid
    if tid in (1, 2, 3):
        return np.rot90(grid, k=tid, axes=axes)
    if tid == 4:
        return np.flip(grid, axis=-1)
    if tid == 5:
        return np.flip(grid, axis=-2)
    if tid == 6:
        return np.swapaxes(grid, -1, -2)
    if tid == 7:
        return np.flip(np.rot90(grid, k=1, axes=axes), axis=-1)
    raise ValueError(f"dihedral transform id must be 0..7, got {tid}")


def inverse_dihedral(grid: np.ndarray, tid: int) -> np.ndarray:
    return dihedral(grid, DIHEDRAL_INVERSE[tid])


# ------------------------------------------------------------------------------------------------------ sudoku
@dataclass
class SudokuVariants:
    """``copies`` variants of each input puzzle, puzzle-major. Digits are raw (0 blank, 1..N)."""

    questions: np.ndarray  # uint8 [m, N*N]
    answers: np.ndarray  # uint8 [m, N*N]
    dihedral: np.ndarray  # int8 [m] (0 or 6)
    value_map: np.ndarray  # uint8 [m, 10]
    row_perm: np.ndarray  # uint8 [m, N]
    col_perm: np.ndarray  # uint8 [m, N]


def _block_permutations(rng: np.random.Generator, m: int, blocks: int, block: int) -> np.ndarray:
    """Permute the blocks and the lines inside each block: ``[m, blocks*block]`` line permutations."""
    outer = rng.permuted(np.tile(np.arange(blocks), (m, 1)), axis=1)
    inner = rng.permuted(np.tile(np.arange(block), (m, blocks, 1)), axis=2)
    return (outer[:, :, None] * block + inner).reshape(m, blocks * block).astype(np.uint8)


@njit(cache=True)
def _sudoku_kernel(grids, source, dihedral_ids, row_perm, col_perm, value_map, size):  # pragma: no cover - numba
    m = source.shape[0]
    out = np.empty((m, size * size), np.uint8)
    for k in range(m):
        g = grids[source[k]]
        transposed = dihedral_ids[k] == 6
        for r in range(size):
            src_r = row_perm[k, r]
            for c in range(size):
                src_c = col_perm[k, c]
                cell = src_c * size + src_r if transposed else src_r * size + src_c
                out[k, r * size + c] = value_map[k, g[cell]]
    return out


def apply_sudoku_transform(
    grids: np.ndarray,
    size: int,
    dihedral_ids: np.ndarray,
    row_perm: np.ndarray,
    col_perm: np.ndarray,
    value_map: np.ndarray,
    source: np.ndarray | None = None,
) -> np.ndarray:
    """Transform flat grids (raw digits) by the recorded augmentation: row k of the result is ``grids[source[k]]``
    (``source`` defaults to ``arange``) under augmentation k. A small numba loop: one pass, no index temporaries."""
    m = len(dihedral_ids)
    src = np.arange(m, dtype=np.int64) if source is None else np.asarray(source, np.int64)
    return _sudoku_kernel(
        np.ascontiguousarray(grids, dtype=np.uint8),
        src,
        np.asarray(dihedral_ids, np.int8),
        np.ascontiguousarray(row_perm, dtype=np.uint8),
        np.ascontiguousarray(col_perm, dtype=np.uint8),
        np.ascontiguousarray(value_map, dtype=np.uint8),
        size,
    )


def augment_sudoku(
    questions: np.ndarray, answers: np.ndarray, size: int, copies: int, rng: np.random.Generator
) -> SudokuVariants:
    """Random Sudoku symmetries (digit relabel with blank fixed, transpose p=0.5 when boxes are square,
    band / row-in-band and stack / column-in-stack permutations), the same one to a puzzle and its solution."""
    if size not in SUDOKU_BOX_SHAPES:
        raise ValueError(f"Sudoku size must be one of {sorted(SUDOKU_BOX_SHAPES)}, got {size}")
    box_r, box_c = SUDOKU_BOX_SHAPES[size]
    n = questions.shape[0]
    m = n * copies
    source = np.repeat(np.arange(n), copies)
    digits = rng.permuted(np.tile(np.arange(1, size + 1, dtype=np.uint8), (m, 1)), axis=1)
    value_map = np.tile(np.arange(10, dtype=np.uint8), (m, 1))
    value_map[:, 1 : size + 1] = digits
    if box_r == box_c:
        dihedral_ids = np.where(rng.random(m) < 0.5, TRANSPOSE, 0).astype(np.int8)
    else:
        dihedral_ids = np.zeros(m, np.int8)
    row_perm = _block_permutations(rng, m, size // box_r, box_r)
    col_perm = _block_permutations(rng, m, size // box_c, box_c)
    transform = (dihedral_ids, row_perm, col_perm, value_map)
    return SudokuVariants(
        questions=apply_sudoku_transform(questions, size, *transform, source=source),
        answers=apply_sudoku_transform(answers, size, *transform, source=source),
        dihedral=dihedral_ids,
        value_map=value_map,
        row_perm=row_perm,
        col_perm=col_perm,
    )


def invert_sudoku(
    grid: np.ndarray, size: int, dihedral_id: int, row_perm: np.ndarray, col_perm: np.ndarray, value_map: np.ndarray
) -> np.ndarray:
    """Map one augmented flat Sudoku grid back to the original frame (inverse of ``apply_sudoku_transform``)."""
    inv_map = np.argsort(np.asarray(value_map)).astype(np.uint8)
    x = inv_map[np.asarray(grid).reshape(size, size)]
    original = np.empty_like(x)
    original[np.ix_(np.asarray(row_perm, np.intp), np.asarray(col_perm, np.intp))] = x
    if dihedral_id == TRANSPOSE:
        original = original.T
    return original.reshape(-1)


# -------------------------------------------------------------------------------------------------------- maze
def maze_dihedral_variants(grids: np.ndarray, rows: int, cols: int) -> tuple[np.ndarray, np.ndarray]:
    """The 8 dihedral variants of each flat maze ``[n, rows*cols]`` in transform-id order (puzzle-major):
    returns ``([n*8, rows*cols], dihedral ids [n*8])``. Only square mazes keep their shape under all 8."""
    if rows != cols:
        raise ValueError(f"dihedral maze augmentation needs square mazes, got {rows}x{cols}")
    n = grids.shape[0]
    x = grids.reshape(n, rows, cols)
    stacked = np.stack([np.ascontiguousarray(dihedral(x, t)) for t in range(8)], axis=1)
    return stacked.reshape(n * 8, rows * cols), np.tile(np.arange(8, dtype=np.int8), n)


# --------------------------------------------------------------------------------------------------------- arc
@dataclass(frozen=True)
class ArcVariant:
    dihedral: int
    colour_map: np.ndarray  # uint8 [10], map[0] == 0

    def name(self, task_id: str) -> str:
        """Per-variant identifier, as the official builder names it (the original keeps the bare task id)."""
        if self.dihedral == 0 and np.array_equal(self.colour_map, np.arange(10)):
            return task_id
        digits = (np.asarray(self.colour_map, np.uint8) + ord("0")).tobytes().decode()
        return f"{task_id}|||t{self.dihedral}|||{digits}"


def _encoded_grids(grids: Sequence[np.ndarray], tid: int) -> tuple[np.ndarray, list[int]]:
    """Concatenate D_tid of every grid, each preceded by its shape encoded as values >= 10 (untouched by colour
    maps), so equal byte strings mean equal (shape, content)."""
    parts, bounds = [], [0]
    for grid in grids:
        g = dihedral(grid, tid)
        parts.append(np.array([10 + g.shape[0], 10 + g.shape[1]], np.uint8))
        parts.append(np.ascontiguousarray(g, dtype=np.uint8).reshape(-1))
        bounds.append(bounds[-1] + 2 + g.size)
    return np.concatenate(parts), bounds


_PAIR_HASH_SEED = 2510_04871  # fixed: the weights only need to be the same for every variant of a task


def _pair_digests(mapped: np.ndarray, bounds: list[int], npairs: int, weights: np.ndarray) -> list[bytes]:
    """Per row of ``mapped`` (one variant's encoded grids), a key of the multiset of its (input, output) pairs: each
    pair reduced to a 128-bit linear hash (two uint64 dot products with fixed random weights, wrapping), the pair
    hashes sorted, then the bytes. Equal multisets give equal keys; unequal ones collide with probability ~2^-118
    (the official builder also compares hashes: sha256 per grid)."""
    digests = np.empty((mapped.shape[0], npairs, 2), np.uint64)
    for i in range(npairs):
        a, b = bounds[2 * i], bounds[2 * i + 2]
        digests[:, i] = mapped[:, a:b].astype(np.uint64) @ weights[: b - a]
    order = np.lexsort((digests[:, :, 1], digests[:, :, 0]), axis=1)
    ordered = np.ascontiguousarray(np.take_along_axis(digests, order[:, :, None], axis=1))
    return [row.tobytes() for row in ordered]


def arc_variants(
    pairs: Sequence[tuple[np.ndarray, np.ndarray]], num_aug: int, rng: np.random.Generator
) -> list[ArcVariant]:
    """The original plus up to ``num_aug`` distinct (dihedral x colour permutation of 1-9) variants, found in at
    most ``ARC_TRIES_FACTOR * num_aug`` random tries. Two variants are the same when the multisets of their
    transformed (input, output) pairs are equal (the official dedup rule)."""
    identity = ArcVariant(0, np.arange(10, dtype=np.uint8))
    variants = [identity]
    if num_aug <= 0:
        return variants
    grids = [g for pair in pairs for g in pair]
    encoded = [_encoded_grids(grids, t) for t in range(8)]
    bounds = encoded[0][1]  # the same for every t: a dihedral keeps each grid's size
    longest = max(bounds[2 * i + 2] - bounds[2 * i] for i in range(len(pairs)))
    weights = np.random.default_rng(_PAIR_HASH_SEED).integers(
        0, 2**64, size=(longest, 2), dtype=np.uint64, endpoint=False
    )
    lut_tail = np.arange(10, 256, dtype=np.uint8)
    seen = set(_pair_digests(encoded[0][0][None, :], bounds, len(pairs), weights))
    budget = ARC_TRIES_FACTOR * num_aug
    tried = 0
    while len(variants) < num_aug + 1 and tried < budget:
        batch = min(budget - tried, max(16, num_aug + 1 - len(variants)))
        tids = rng.integers(0, 8, size=batch)
        perms = rng.permuted(np.tile(np.arange(1, 10, dtype=np.uint8), (batch, 1)), axis=1)
        tried += batch
        maps = np.concatenate([np.zeros((batch, 1), np.uint8), perms], axis=1)
        luts = np.concatenate([maps, np.broadcast_to(lut_tail, (batch, lut_tail.size))], axis=1)
        keys: list[bytes] = [b""] * batch
        for t in np.unique(tids):
            sel = np.flatnonzero(tids == t)
            mapped = luts[sel[:, None], encoded[t][0][None, :]]
            for i, key in zip(sel.tolist(), _pair_digests(mapped, bounds, len(pairs), weights), strict=True):
                keys[i] = key
        for i in range(batch):
            if keys[i] in seen:
                continue
            seen.add(keys[i])
            variants.append(ArcVariant(int(tids[i]), maps[i].copy()))
            if len(variants) >= num_aug + 1:
                break
    return variants


@dataclass
class ArcRows:
    """Canvas rows of one split of one ARC group, variant-major then pair order."""

    inputs: np.ndarray  # uint8 [n, 900]
    labels: np.ndarray  # uint8 [n, 900]
    variant: np.ndarray  # int32 [n] index into the group's variant list
    pair: np.ndarray  # int32 [n] index into the split's pair list
    offsets: np.ndarray  # uint8 [n, 2]


SWAPS_SHAPE = np.array([t in (1, 3, 6, 7) for t in range(8)])  # dihedral ids that turn (h, w) into (w, h)


@njit(cache=True)
def _dihedral_source(t, i, k, h, w):  # pragma: no cover - numba
    """(row, col) of the original h x w grid that lands at (i, k) of its dihedral transform ``t`` (see ``dihedral``)."""
    if t == 0:
        return i, k
    if t == 1:
        return k, w - 1 - i
    if t == 2:
        return h - 1 - i, w - 1 - k
    if t == 3:
        return h - 1 - k, i
    if t == 4:
        return i, w - 1 - k
    if t == 5:
        return h - 1 - i, k
    if t == 6:
        return k, i
    return h - 1 - k, w - 1 - i


@njit(cache=True)
def _render_arc(cells, starts, heights, widths, tids, maps, offsets, npairs, side, out):  # pragma: no cover - numba
    """Draw grid ``2*pair+side`` of every (variant, pair) row: colour map, dihedral, +2, at the row's offset, then
    EOS on the row below and the column right of it (inside its width / height). ``out`` is zeroed [n, 900]."""
    for row in range(out.shape[0]):
        v, j = row // npairs, row % npairs
        g = 2 * j + side
        h, w, t = heights[g], widths[g], tids[v]
        rows, cols = (w, h) if t == 1 or t == 3 or t == 6 or t == 7 else (h, w)
        r0, c0 = offsets[row, 0], offsets[row, 1]
        for i in range(rows):
            for k in range(cols):
                sr, sc = _dihedral_source(t, i, k, h, w)
                out[row, (r0 + i) * 30 + c0 + k] = maps[v, cells[starts[g] + sr * w + sc]] + 2
        if r0 + rows < 30:
            for k in range(cols):
                out[row, (r0 + rows) * 30 + c0 + k] = 1
        if c0 + cols < 30:
            for i in range(rows):
                out[row, (r0 + i) * 30 + c0 + cols] = 1


def arc_canvas_rows(
    pairs: Sequence[tuple[np.ndarray, np.ndarray]],
    variants: Sequence[ArcVariant],
    translate: bool,
    rng: np.random.Generator | None,
) -> ArcRows:
    """Render every (variant, pair) on the 30x30 canvas. With ``translate`` (train split) each example gets a random
    offset that fits both grids, except one randomly chosen example per variant that stays at (0, 0)."""
    nv, npairs = len(variants), len(pairs)
    n = nv * npairs
    inputs = np.zeros((n, ARC_CANVAS * ARC_CANVAS), np.uint8)
    labels = np.zeros((n, ARC_CANVAS * ARC_CANVAS), np.uint8)
    offsets = np.zeros((n, 2), np.int64)
    variant = np.repeat(np.arange(nv, dtype=np.int32), npairs)
    pair = np.tile(np.arange(npairs, dtype=np.int32), nv)
    if n == 0:
        return ArcRows(inputs, labels, variant, pair, offsets.astype(np.uint8))
    tids = np.array([v.dihedral for v in variants], np.int64)
    maps = np.stack([v.colour_map for v in variants]).astype(np.uint8)
    grids = [g for p in pairs for g in p]
    heights = np.array([g.shape[0] for g in grids], np.int64)
    widths = np.array([g.shape[1] for g in grids], np.int64)
    starts = np.concatenate([[0], np.cumsum(heights * widths)[:-1]]).astype(np.int64)
    cells = np.concatenate([np.ascontiguousarray(g, dtype=np.uint8).reshape(-1) for g in grids])
    if translate:
        assert rng is not None
        keep_origin = rng.integers(0, npairs, size=nv)
        uniform = rng.random((nv, npairs, 2))
        swap = SWAPS_SHAPE[tids][:, None]  # [nv, 1]
        h_in, h_out, w_in, w_out = heights[0::2], heights[1::2], widths[0::2], widths[1::2]
        tall = np.maximum(np.where(swap, w_in, h_in), np.where(swap, w_out, h_out))  # [nv, npairs]
        wide = np.maximum(np.where(swap, h_in, w_in), np.where(swap, h_out, w_out))
        off = np.floor(uniform * (ARC_CANVAS - np.stack([tall, wide], axis=-1) + 1)).astype(np.int64)
        off[np.arange(nv), keep_origin] = 0
        offsets = off.reshape(n, 2)
    _render_arc(cells, starts, heights, widths, tids, maps, offsets, npairs, 0, inputs)
    _render_arc(cells, starts, heights, widths, tids, maps, offsets, npairs, 1, labels)
    return ArcRows(inputs=inputs, labels=labels, variant=variant, pair=pair, offsets=offsets.astype(np.uint8))


def crop_arc_canvas(tokens: np.ndarray, offset: tuple[int, int] = (0, 0)) -> np.ndarray:
    """The largest rectangle anchored at ``offset`` that holds only colour tokens (the official evaluator's crop),
    returned as colours 0-9. The first row/column that is not a colour ends it."""
    canvas = np.asarray(tokens).reshape(ARC_CANVAS, ARC_CANVAS)[int(offset[0]) :, int(offset[1]) :]
    is_colour = (canvas >= ARC_COLOUR_OFFSET) & (canvas < ARC_COLOUR_OFFSET + 10)
    run = np.where(is_colour.all(axis=1), is_colour.shape[1], np.argmin(is_colour, axis=1))  # leading colour run
    widths = np.minimum.accumulate(run)
    areas = widths * np.arange(1, len(widths) + 1)
    if areas.size == 0 or areas.max() == 0:
        return np.zeros((0, 0), np.uint8)
    best = int(np.argmax(areas))
    return (canvas[: best + 1, : widths[best]] - ARC_COLOUR_OFFSET).astype(np.uint8)


def invert_arc_prediction(grid_tokens: np.ndarray, record: Mapping[str, Any]) -> np.ndarray:
    """Map a predicted 30x30 token canvas of an augmented ARC example back to the original task's frame.

    ``record`` holds the row's augmentation fields (``aug_dihedral``, ``aug_value_map``, ``aug_offset``), e.g. a
    row of the Parquet file as a dict. Steps: crop at the offset, undo the dihedral, undo the colour map.
    """
    grid = crop_arc_canvas(grid_tokens, tuple(record.get("aug_offset", (0, 0))))
    inverse_map = np.argsort(np.asarray(record["aug_value_map"], dtype=np.int64)).astype(np.uint8)
    return inverse_map[inverse_dihedral(grid, int(record["aug_dihedral"]))]
