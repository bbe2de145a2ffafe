"""The ARC evaluator (docs/reference.md §4.2) on constructed predictions: crop, inversion, voting, ties, pass@K,
submission."""

from __future__ import annotations

import json

import numpy as np
import pytest

from trm.data.augment import crop_arc_canvas, dihedral, invert_arc_prediction
from trm.evaluate.arc import (
    ArcEvalError,
    ArcEvaluator,
    ArcTestRows,
    check_submission,
    crop_colour_grids,
    grid_hash,
    invert_augmentation,
    score_predictions,
    write_submission,
)

A = np.array([[1, 2, 3], [4, 5, 6]], dtype=np.uint8)  # 2x3, asymmetric, 6 colours
B = np.array([[7, 7], [0, 8]], dtype=np.uint8)
WRONG = np.array([[9]], dtype=np.uint8)


def _task(inputs_outputs: list[tuple[np.ndarray, np.ndarray]]) -> dict:
    return {"train": [], "test": [{"input": i.tolist(), "output": o.tolist()} for i, o in inputs_outputs]}


# ------------------------------------------------------------------------------------------------ crop
def test_crop_recovers_the_grid_inside_eos_border(arc_kit) -> None:
    for grid in (A, B, WRONG, np.full((30, 30), 3, dtype=np.uint8), np.zeros((30, 4), dtype=np.uint8)):
        (cropped,) = crop_colour_grids(arc_kit.canvas(grid)[None])
        np.testing.assert_array_equal(cropped, grid)


def test_crop_takes_the_largest_top_left_rectangle() -> None:
    canvas = np.zeros((30, 30), dtype=np.uint8)
    canvas[0, :5] = 2  # row widths 5, 3, 3, then nothing: areas 5, 6, 9 -> 3 rows x 3 cols
    canvas[1:3, :3] = 5
    canvas[1, 3] = 1  # EOS stops row 1 at width 3
    canvas[0, 7] = 4  # colour after a gap is not part of the rectangle
    (cropped,) = crop_colour_grids(canvas[None])
    assert cropped.shape == (3, 3)
    np.testing.assert_array_equal(cropped[0], [0, 0, 0])
    np.testing.assert_array_equal(cropped[1:], np.full((2, 3), 3))


def test_crop_of_a_prediction_without_colour_at_origin_is_empty() -> None:
    canvas = np.zeros((2, 30, 30), dtype=np.uint8)
    canvas[1, 0, 0] = 1  # EOS first
    canvas[1, 1:, :] = 5
    assert [g.shape for g in crop_colour_grids(canvas)] == [(0, 0), (0, 0)]


# ------------------------------------------------------------------------------------------------ inversion
def test_every_dihedral_and_colour_map_inverts_exactly(arc_kit) -> None:
    rng = np.random.default_rng(0)
    grid = rng.integers(0, 10, size=(3, 5)).astype(np.uint8)
    for tid in range(8):
        vmap = arc_kit.random_value_map(rng)
        augmented = arc_kit.augment(grid, tid, vmap)
        np.testing.assert_array_equal(invert_augmentation(augmented, tid, vmap), grid)
    # the 8 transforms are distinct on an asymmetric grid (a wrong inverse table would not round-trip above)
    assert len({grid_hash(dihedral(grid, t)) for t in range(8)}) == 8


def test_inversion_rejects_a_value_map_that_is_not_a_permutation() -> None:
    with pytest.raises(ArcEvalError, match="not a permutation"):
        invert_augmentation(A, 0, [0, 1, 1, 3, 4, 5, 6, 7, 8, 9])


def test_grid_hash_depends_on_shape() -> None:
    assert grid_hash(np.zeros((1, 4), np.uint8)) != grid_hash(np.zeros((2, 2), np.uint8))


def test_batched_crop_and_inversion_agree_with_the_data_side_helper(arc_kit) -> None:
    """trm.data.augment.invert_arc_prediction is the per-row reference; the evaluator's batched path must match it,
    including on noisy predictions (colour tokens past the EOS border, ragged rows)."""
    rng = np.random.default_rng(1)
    canvases, records = [], []
    for _ in range(64):
        h, w = rng.integers(1, 31, size=2)
        tid = int(rng.integers(0, 8))
        vmap = arc_kit.random_value_map(rng)
        tokens = arc_kit.canvas(arc_kit.augment(rng.integers(0, 10, size=(h, w)), tid, vmap)).reshape(30, 30)
        noise = rng.random((30, 30)) < 0.02
        tokens = np.where(noise, rng.integers(0, 12, size=(30, 30)), tokens).astype(np.uint8)
        canvases.append(tokens)
        records.append({"aug_dihedral": tid, "aug_value_map": vmap.tolist(), "aug_offset": [0, 0]})
    ours = crop_colour_grids(np.stack(canvases))
    for tokens, record, cropped in zip(canvases, records, ours, strict=True):
        np.testing.assert_array_equal(cropped, crop_arc_canvas(tokens))
        mine = invert_augmentation(cropped, record["aug_dihedral"], record["aug_value_map"])
        np.testing.assert_array_equal(mine, invert_arc_prediction(tokens, record))


# ------------------------------------------------------------------------------------------------ voting
def _evaluator(**options) -> ArcEvaluator:
    return ArcEvaluator({"t1": _task([(B, A)]), "t2": _task([(A, B), (B, WRONG)])}, **options)


def test_majority_vote_decides_pass_at_1_and_pass_at_2() -> None:
    ev = _evaluator()
    for _ in range(3):
        ev.add_vote("t1", 0, B, 0.0)  # wrong answer, 3 votes
    for _ in range(2):
        ev.add_vote("t1", 0, A, 0.0)  # right answer, 2 votes
    result = ev.result()
    assert result.task_scores[1]["t1"] == 0.0
    assert result.task_scores[2]["t1"] == 1.0
    assert [c.votes for c in ev.ranked("t1", 0)] == [3, 2]  # duplicates pooled into one candidate each


def test_vote_ties_are_broken_by_mean_sigmoid_q_halt() -> None:
    for right_q, expect in ((3.0, 1.0), (-3.0, 0.0)):
        ev = _evaluator()
        ev.add_vote("t1", 0, B, 0.0)
        ev.add_vote("t1", 0, B, 0.0)
        ev.add_vote("t1", 0, A, right_q)
        ev.add_vote("t1", 0, A, 0.0)
        assert ev.result().task_scores[1]["t1"] == expect
    # a mean, not a sum: one confident vote does not beat two votes
    ev = _evaluator()
    ev.add_vote("t1", 0, A, 10.0)
    ev.add_vote("t1", 0, B, -10.0)
    ev.add_vote("t1", 0, B, -10.0)
    assert ev.result().task_scores[1]["t1"] == 0.0


def test_pass_at_k_is_the_mean_over_tasks_of_fractions_of_test_pairs() -> None:
    ev = _evaluator()
    ev.add_vote("t1", 0, A, 0.0)  # t1 solved
    ev.add_vote("t2", 0, B, 0.0)  # t2 pair 0 solved, pair 1 wrong
    ev.add_vote("t2", 1, B, 0.0)
    result = ev.result()
    assert result.task_scores[1] == {"t1": 1.0, "t2": 0.5}
    assert result.pass_at[1] == pytest.approx(0.75)
    assert set(result.pass_at) == {1, 2, 5, 10, 100, 1000}
    assert result.metrics()["ARC/pass@2"] == pytest.approx(0.75)


def test_tasks_without_predictions_score_zero() -> None:
    ev = _evaluator()
    ev.add_vote("t1", 0, A, 0.0)
    assert ev.result().pass_at[1000] == pytest.approx(0.5)


def test_unknown_task_is_an_error() -> None:
    with pytest.raises(ArcEvalError, match="nope"):
        _evaluator().add_vote("nope", 0, A, 0.0)


def test_votes_are_cleared_per_evaluation_unless_pooling() -> None:
    for pool, expect in ((False, 1.0), (True, 0.0)):
        ev = _evaluator(pool_across_evaluations=pool)
        ev.begin()
        for _ in range(3):
            ev.add_vote("t1", 0, B, 0.0)  # first checkpoint: wrong, 3 votes
        ev.begin()
        ev.add_vote("t1", 0, A, 0.0)  # second checkpoint: right, 1 vote
        assert ev.result().task_scores[1]["t1"] == expect


# ------------------------------------------------------------------------------------------------ submission
def test_submission_layout(tmp_path) -> None:
    ev = _evaluator()
    ev.add_vote("t1", 0, A, 0.0)  # single candidate: duplicated into attempt_2
    ev.add_vote("t2", 0, B, 0.0)
    ev.add_vote("t2", 0, B, 0.0)
    ev.add_vote("t2", 0, WRONG, 0.0)
    path = write_submission(ev.result(), tmp_path / "out" / "submission.json")
    submission = json.loads(path.read_text())
    assert sorted(submission) == ["t1", "t2"]
    assert len(submission["t1"]) == 1 and len(submission["t2"]) == 2  # one entry per test input, in order
    assert submission["t1"][0] == {"attempt_1": A.tolist(), "attempt_2": A.tolist()}
    assert submission["t2"][0] == {"attempt_1": B.tolist(), "attempt_2": WRONG.tolist()}
    assert submission["t2"][1] == {"attempt_1": [[0]], "attempt_2": [[0]]}  # no prediction at all
    assert not list((tmp_path / "out").glob(".*tmp"))


def test_an_empty_crop_votes_but_never_reaches_the_submission(tmp_path) -> None:
    ev = _evaluator()
    empty = np.zeros((0, 0), dtype=np.uint8)  # the model put no colour in the top-left cell
    for _ in range(3):
        ev.add_vote("t1", 0, empty, 0.0)
    ev.add_vote("t1", 0, B, 0.0)
    result = ev.result()
    assert [c.votes for c in ev.ranked("t1", 0)] == [3, 1]  # still a candidate, as officially
    assert result.submission["t1"][0] == {"attempt_1": B.tolist(), "attempt_2": B.tolist()}
    path = write_submission(result, tmp_path / "submission.json")
    check_submission(path, ev.test_puzzles)


def test_check_submission_names_what_is_wrong(tmp_path) -> None:
    ev = _evaluator()
    good = json.loads(write_submission(ev.result(), tmp_path / "good.json").read_text())
    check_submission(tmp_path / "good.json", ev.test_puzzles)
    broken = {
        "a task is missing": {"t1": good["t1"]},
        "test-pair entries": {**good, "t2": good["t2"][:1]},
        "expected keys": {**good, "t1": [{"attempt_1": [[1]]}]},
        "not a non-empty grid": {**good, "t1": [{"attempt_1": [], "attempt_2": [[1]]}]},
        "larger than 30x30": {**good, "t1": [{"attempt_1": [[1] * 31], "attempt_2": [[1]]}]},
    }
    for what, submission in broken.items():
        path = tmp_path / "bad.json"
        path.write_text(json.dumps(submission))
        with pytest.raises(ArcEvalError, match="differ" if what == "a task is missing" else what):
            check_submission(path, ev.test_puzzles)


def test_restricted_evaluator_scores_only_its_tasks() -> None:
    ev = _evaluator().restricted_to(["t2"])
    ev.add_vote("t2", 0, B, 0.0)
    assert ev.result().num_tasks == 1 and ev.result().pass_at[1] == pytest.approx(0.5)
    with pytest.raises(ArcEvalError, match="not among the held-out tasks"):
        _evaluator().restricted_to(["t3"])


# ------------------------------------------------------------------------------------------------ end to end on rows
def _variant_rows(arc_kit, rng, tasks: dict, per_task: int):
    entries, right_outputs = [], []
    for task_id, task in tasks.items():
        for i, pair in enumerate(task["test"]):
            for v in range(per_task):
                tid = v % 8
                vmap = arc_kit.random_value_map(rng)
                entries.append((task_id, i, tid, vmap, arc_kit.augment(np.array(pair["input"]), tid, vmap)))
                right_outputs.append(arc_kit.augment(np.array(pair["output"]), tid, vmap))
    return arc_kit.rows_for(entries), right_outputs


def test_augmented_variants_vote_together_after_inversion(arc_kit) -> None:
    rng = np.random.default_rng(2)
    tasks = {"t1": _task([(B, A)]), "t2": _task([(A, B), (B, WRONG)])}
    rows, right = _variant_rows(arc_kit, rng, tasks, per_task=8)
    predictions = np.stack([arc_kit.canvas(g) for g in right])
    # corrupt 3 of t1's 8 variants with the same wrong grid (in each variant's own frame): still a 5-3 majority
    t1_rows = [r for r in range(len(rows)) if rows.task_ids[r] == "t1"]
    for r in t1_rows[:3]:
        predictions[r] = arc_kit.canvas(arc_kit.augment(B, int(rows.dihedral[r]), rows.value_map[r]))
    ev = ArcEvaluator(tasks)
    result = score_predictions(ev, rows, predictions, np.zeros(len(rows)))
    assert result.pass_at[1] == 1.0
    assert [c.votes for c in ev.ranked("t1", 0)] == [5, 3]  # each wrong variant inverted to the same original B
    assert result.num_votes == len(rows)
    # only the rows marked as predicted vote
    predicted = np.zeros(len(rows), dtype=bool)
    predicted[t1_rows[:3]] = True
    result = score_predictions(ev, rows, predictions, np.zeros(len(rows)), predicted)
    assert result.num_votes == 3 and result.task_scores[1]["t1"] == 0.0


def test_inconsistent_augmentation_record_fails_loudly(arc_kit) -> None:
    rng = np.random.default_rng(3)
    tasks = {"t1": _task([(A, B)])}
    rows, right = _variant_rows(arc_kit, rng, tasks, per_task=2)
    rows.dihedral[1] = (rows.dihedral[1] + 1) % 8  # record no longer matches the stored input
    with pytest.raises(ArcEvalError, match=r"row 1 .*does not invert"):
        score_predictions(ArcEvaluator(tasks), rows, np.stack([arc_kit.canvas(g) for g in right]), np.zeros(2))


def test_rows_read_from_a_built_dataset(arc_kit, tmp_path) -> None:
    tasks = {"t1": _task([(B, A)]), "t2": _task([(A, B), (B, WRONG)])}
    folder, records = arc_kit.write_arc_dataset(tmp_path / "arc-mini", tasks, variants_per_task=3)
    rows = ArcTestRows.read(folder)
    assert len(rows) == len(records) == 9
    assert rows.task_ids == [r[0] for r in records]
    np.testing.assert_array_equal(rows.dihedral, [r[2] for r in records])
    np.testing.assert_array_equal(rows.value_map, np.stack([r[3] for r in records]))
    # the stored labels are right answers: scoring them solves everything
    import pyarrow.parquet as pq

    labels = pq.read_table(folder / "test.parquet", columns=["labels"]).column("labels").to_pylist()
    result = score_predictions(ArcEvaluator.for_dataset(folder), rows, np.array(labels, dtype=np.uint8), np.zeros(9))
    assert result.pass_at[1] == 1.0


def test_missing_test_puzzles_names_the_file(tmp_path) -> None:
    with pytest.raises(ArcEvalError, match=r"test_puzzles\.json"):
        ArcEvaluator.for_dataset(tmp_path)
