"""atomic_folder: a failed write leaves the old folder untouched and nothing else behind; a good one replaces it."""

from __future__ import annotations

import pytest

from trm.atomic import atomic_folder, atomic_path, atomic_write_json


def test_failed_write_keeps_the_old_folder_and_leaves_nothing(tmp_path):
    target = tmp_path / "ckpt"
    with atomic_folder(target) as tmp:
        (tmp / "a.txt").write_text("old")
    with pytest.raises(RuntimeError), atomic_folder(target) as tmp:
        (tmp / "a.txt").write_text("half")
        raise RuntimeError("killed midway")
    assert (target / "a.txt").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]


def test_successful_write_replaces_the_folder(tmp_path):
    target = tmp_path / "ckpt"
    for text in ("one", "two"):
        with atomic_folder(target) as tmp:
            (tmp / "a.txt").write_text(text)
    assert (target / "a.txt").read_text() == "two"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]


def test_keep_existing_lets_the_first_complete_folder_win(tmp_path):
    """A cache entry a concurrent writer finished first is kept (readers may have it memory-mapped)."""
    target = tmp_path / "entry"
    with atomic_folder(target, replace=False) as tmp:
        (tmp / "a.txt").write_text("first")
        with atomic_folder(target, replace=False) as other:  # the concurrent writer finishes first
            (other / "a.txt").write_text("other")
    assert (target / "a.txt").read_text() == "other"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["entry"]


def test_atomic_write_leaves_the_old_file_when_interrupted(tmp_path):
    target = tmp_path / "report.json"
    atomic_write_json(target, {"v": 1})
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed midway")
    assert target.read_text() == '{\n "v": 1\n}\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json"]
