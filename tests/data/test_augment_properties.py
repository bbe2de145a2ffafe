"""Property tests (hypothesis) of the augmentation maths on random grids: rendering + inversion round-trips, and
the crop ignores anything a model writes outside the grid and its EOS border."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from trm.data.augment import (
    ArcVariant,
    apply_sudoku_transform,
    arc_canvas_rows,
    group_rng,
    invert_arc_prediction,
    invert_sudoku,
)

SETTINGS = settings(max_examples=60, deadline=None)


@st.composite
def arc_grids(draw: st.DrawFn) -> np.ndarray:
    h, w = draw(st.integers(1, 30)), draw(st.integers(1, 30))
    return draw(arrays(np.uint8, (h, w), elements=st.integers(0, 9)))


@SETTINGS
@given(
    grid=arc_grids(),
    tid=st.integers(0, 7),
    perm=st.permutations(range(1, 10)),
    seed=st.integers(0, 2**32 - 1),
    junk_seed=st.integers(0, 2**32 - 1),
)
def test_rendered_arc_grid_inverts_back_even_with_junk_around(
    grid: np.ndarray, tid: int, perm: list[int], seed: int, junk_seed: int
) -> None:
    variant = ArcVariant(tid, np.array([0, *perm], np.uint8))
    rows = arc_canvas_rows(
        [(grid, grid)], [ArcVariant(0, np.arange(10, dtype=np.uint8)), variant], translate=True, rng=group_rng(seed)
    )
    for k in range(2):
        record = {
            "aug_dihedral": (0, tid)[k],
            "aug_value_map": ((0, 1, 2, 3, 4, 5, 6, 7, 8, 9), (0, *perm))[k],
            "aug_offset": rows.offsets[k].tolist(),
        }
        canvas = rows.labels[k].reshape(30, 30).copy()
        assert np.array_equal(invert_arc_prediction(canvas, record), grid)
        # a prediction may contain anything outside the grid + EOS border (PAD cells): the crop must not care
        junk = np.random.default_rng(junk_seed).integers(0, 12, size=(30, 30)).astype(np.uint8)
        outside = canvas == 0
        canvas[outside] = junk[outside]
        r0, c0 = record["aug_offset"]
        h, w = grid.shape if k == 0 or tid in (0, 2, 4, 5) else grid.shape[::-1]  # rotations/transposes swap
        if r0 + h < 30 and c0 + w < 30:  # the border is complete: junk cannot extend the crop
            assert np.array_equal(invert_arc_prediction(canvas, record), grid)


@SETTINGS
@given(size=st.sampled_from([4, 6, 9]), data=st.data())
def test_sudoku_transform_inverts_for_any_recorded_permutation(size: int, data: st.DataObject) -> None:
    box_r, box_c = {4: (2, 2), 6: (2, 3), 9: (3, 3)}[size]
    grid = data.draw(arrays(np.uint8, size * size, elements=st.integers(0, size)))
    bands = data.draw(st.permutations(range(size // box_r)))
    rows = [b * box_r + i for b in bands for i in data.draw(st.permutations(range(box_r)))]
    stacks = data.draw(st.permutations(range(size // box_c)))
    cols = [s * box_c + i for s in stacks for i in data.draw(st.permutations(range(box_c)))]
    value_map = np.array([0, *data.draw(st.permutations(range(1, size + 1))), *range(size + 1, 10)], np.uint8)
    dihedral_id = data.draw(st.sampled_from([0, 6] if box_r == box_c else [0]))
    out = apply_sudoku_transform(
        grid[None],
        size,
        np.array([dihedral_id]),
        np.array([rows], np.uint8),
        np.array([cols], np.uint8),
        value_map[None],
    )[0]
    assert sorted(out.tolist()) == sorted(value_map[grid].tolist())  # a rearrangement of relabelled cells
    assert np.array_equal(invert_sudoku(out, size, dihedral_id, rows, cols, value_map), grid)
