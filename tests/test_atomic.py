"""atomic_folder: a failed write leaves the old folder untouched and nothing else behind; a good one replaces it."""

from __future__ import annotations

import pytest

from trm.atomic import atomic_folder


def test_failed_write_keeps_the_old_folder_and_leaves_nothing(tmp_path):
    target = tmp_path / "ckpt"
    with atomic_folder(target) as tmp:
        (tmp / "a.txt").write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_folder(target) as tmp:
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
