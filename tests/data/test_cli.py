"""`trm data build/show/list` through typer's runner, on real (small) builds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from trm.cli.data import data_app, render_grid
from trm.paths import params_file

runner = CliRunner()
pytestmark = pytest.mark.cli
SMALL_SUDOKU = ["--set", "train_count=40", "--set", "val_count=5", "--set", "test_count=10", "--set", "num_aug=2"]


def _invoke(*args: str):
    return runner.invoke(data_app, list(args), catch_exceptions=False)


@pytest.fixture(scope="module")
def built_sudoku(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cli")
    result = _invoke("build", "sudoku-4x4", "--out", str(out), *SMALL_SUDOKU)
    assert result.exit_code == 0, result.output
    assert "built sudoku-4x4" in result.output
    return out / "sudoku-4x4"


def test_build_applies_set_overrides(built_sudoku: Path) -> None:
    meta = json.loads((built_sudoku / "metadata.json").read_text())
    assert meta["params"]["train_count"] == 40 and meta["params"]["num_aug"] == 2
    section = yaml.safe_load(params_file().read_text())["sudoku-4x4"]  # the rest comes from params.yaml
    assert {k: meta["params"][k] for k in ("min_rating", "blanks", "seed")} == {
        k: section[k] for k in ("min_rating", "blanks", "seed")
    }
    # 40 groups of (original + 2 copies), less any copy that would recreate a held-out 4x4 grid (build.py's guard)
    assert meta["splits"]["train"]["groups"] == 40
    assert 40 < meta["splits"]["train"]["examples"] <= 40 * 3
    assert meta["splits"]["test"]["examples"] == 10


MAZE_SECTION = {
    "rows": 8,
    "cols": 8,
    "train_count": 30,
    "val_count": 3,
    "test_count": 5,
    "min_path_len": 6,
    "density_min": 0.2,
    "density_max": 0.3,
    "aug": False,
    "seed": 3,
}


def test_params_file_section_then_set_wins(tmp_path: Path) -> None:
    params = tmp_path / "other-params.yaml"
    params.write_text(yaml.safe_dump({"maze-small": MAZE_SECTION, "other": {"seed": 9}}))
    result = _invoke("build", "maze-small", "--out", str(tmp_path), "--params", str(params), "--set", "seed=4")
    assert result.exit_code == 0, result.output
    meta = json.loads((tmp_path / "maze-small" / "metadata.json").read_text())
    assert meta["params"] == {**MAZE_SECTION, "seed": 4}  # every value from --params, then --set on top


def test_set_values_are_yaml(tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    section = {
        "train_count": 30,
        "val_count": 3,
        "test_count": 5,
        "num_aug": 0,
        "min_rating": 0,
        "blanks": 6,
        "seed": 0,
    }
    params.write_text(yaml.safe_dump({"sudoku-4x4": section}))
    result = _invoke("build", "sudoku-4x4", "--out", str(tmp_path), "--params", str(params), "--set", "blanks=null")
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "sudoku-4x4" / "metadata.json").read_text())["params"]["blanks"] is None


def test_a_key_missing_from_the_params_file_is_one_plain_error_line(tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"maze-small": {k: v for k, v in MAZE_SECTION.items() if k != "aug"}}))
    result = _invoke("build", "maze-small", "--out", str(tmp_path), "--params", str(params))
    assert result.exit_code == 2
    assert f"error: {params}: section 'maze-small': missing key 'aug'" in result.output
    assert not (tmp_path / "maze-small").exists()


def test_params_file_without_the_section_is_an_error(tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text("sudoku-6x6: {seed: 1}\n")
    result = _invoke("build", "sudoku-4x4", "--out", str(tmp_path), "--params", str(params))
    assert result.exit_code != 0 and "no section 'sudoku-4x4'" in result.output
    assert not (tmp_path / "sudoku-4x4").exists()


def test_bad_requests_fail_cleanly(tmp_path: Path) -> None:
    unknown = _invoke("build", "sudoku-99x99", "--out", str(tmp_path))
    assert unknown.exit_code != 0 and "unknown dataset 'sudoku-99x99'" in unknown.output
    malformed = _invoke("build", "sudoku-4x4", "--out", str(tmp_path), "--set", "num_aug")
    assert malformed.exit_code != 0 and "expected key=value" in malformed.output
    bad_key = _invoke("build", "sudoku-4x4", "--out", str(tmp_path), "--set", "colour=red")
    assert bad_key.exit_code == 2 and "unknown parameter 'colour'" in bad_key.output  # a usage error: nothing ran
    bad_value = _invoke("build", "sudoku-4x4", "--out", str(tmp_path), "--set", "num_aug=many")
    assert bad_value.exit_code == 2 and "num_aug" in bad_value.output
    bad_input = _invoke("build", "maze-hard-1k", "--out", str(tmp_path), "--set", f"train_csv={tmp_path}/none.csv")
    assert bad_input.exit_code == 1 and "building maze-hard-1k failed" in bad_input.output  # failed on the way
    assert "none.csv" in bad_input.output
    assert list(tmp_path.iterdir()) == []  # nothing left behind


def test_list_names_the_dvc_datasets() -> None:
    result = _invoke("list")
    assert result.exit_code == 0
    for name in ("sudoku-extreme-1k", "maze-hard-1k", "arc-agi-1", "arc-agi-2", "sudoku-4x4", "maze-small"):
        assert name in result.output.split()


def test_show_prints_counts_and_grids(built_sudoku: Path) -> None:
    result = _invoke("show", str(built_sudoku), "--split", "test", "-n", "2")
    assert result.exit_code == 0, result.output
    assert "test row 0" in result.output and "test row 1" in result.output and "test row 2" not in result.output
    train_examples = json.loads((built_sudoku / "metadata.json").read_text())["splits"]["train"]["examples"]
    assert str(train_examples) in result.output  # train examples in the counts table
    grid_lines = [line for line in result.output.splitlines() if "->" in line]
    assert len(grid_lines) == 2  # the first line of each rendered input -> label pair
    left, right = grid_lines[0].split("->")
    assert len(left.strip()) == 4 and set(right.strip()) <= set("1234")


def test_show_by_name_under_the_data_root(built_sudoku: Path, monkeypatch) -> None:
    monkeypatch.setenv("TRM_DATA", str(built_sudoku.parent))
    assert _invoke("show", "sudoku-4x4", "-n", "1").exit_code == 0
    missing = _invoke("show", "maze-hard-1k")
    assert missing.exit_code == 1 and "dataset folder not found" in missing.output
    bad_split = _invoke("show", "sudoku-4x4", "--split", "valid")
    assert bad_split.exit_code == 1 and "no split 'valid'" in bad_split.output


def test_render_sudoku_maze_and_arc() -> None:
    assert render_grid([1, 2, 3, 4, 5, 1, 1, 1, 2, 1, 1, 1, 3, 4, 5, 1], "sudoku", (4, 4)) == [
        ".123",
        "4...",
        "1...",
        "234.",
    ]
    assert render_grid([1, 2, 3, 2, 4, 5], "maze", (2, 3)) == ["#.S", ".Go"]
    canvas = [0] * 900
    # a 2x2 grid of colours 0,3 / 7,9 at offset (1, 2), with its EOS row and column
    for (r, c), token in {
        (1, 2): 2,
        (1, 3): 5,
        (2, 2): 9,
        (2, 3): 11,
        (1, 4): 1,
        (2, 4): 1,
        (3, 2): 1,
        (3, 3): 1,
    }.items():
        canvas[r * 30 + c] = token
    assert render_grid(canvas, "arc", (30, 30)) == ["03#", "79#", "## "]


def test_the_trm_command_mounts_the_data_group() -> None:
    from trm.cli import app

    result = runner.invoke(app, ["data", "list"], catch_exceptions=False)
    assert result.exit_code == 0 and "arc-agi-1" in result.output.split()
