"""The study report from hand-made trials: the table, the verdicts, the curriculum's time to accuracy read from the
trials' own metrics logs, and a figure linked relative to the markdown."""

from __future__ import annotations

import json
from pathlib import Path

from trm.distributed.space import SearchSpace
from trm.study.measure import TrialResult, trial_result
from trm.study.report import StudyContext, curriculum_variants, write_study_report
from trm.study.trials import StudyTrial

SPACE = SearchSpace.model_validate(
    {
        "space": {"train.seed": {"grid": [0, 1]}},
        "variants": {
            "baseline": {},
            "no-ema": {"train.ema": False},
            "curriculum": {"train.depth_curriculum": [{"until": 0.5, "H_cycles": 1, "L_cycles": 1}]},
        },
        "study": {
            "name": "toy",
            "baseline": "baseline",
            "rows": {"baseline": {"paper": 87.4}, "no-ema": {"paper": 79.9}},
        },
    }
)
CURVES = {  # (seconds, val exact) at steps 100, 200: the curriculum trains faster
    "baseline": [(100.0, 0.2), (200.0, 0.6)],
    "no-ema": [(100.0, 0.1), (200.0, 0.3)],
    "curriculum": [(50.0, 0.1), (120.0, 0.5)],
}
TEST = {"baseline": 0.6, "no-ema": 0.3, "curriculum": 0.5}


def made_trials(tmp_path: Path) -> list[TrialResult]:
    trials: list[TrialResult] = []
    for variant, curve in CURVES.items():
        for seed in (0, 1):
            run = tmp_path / "trials" / f"{variant}-{seed}"
            run.mkdir(parents=True)
            records = [{"kind": "info", "step": 0, "time": 1000.0}]
            records += [
                {"kind": "eval", "step": 100 * (i + 1), "time": 1000.0 + t, "exact_accuracy": v + seed / 100}
                for i, (t, v) in enumerate(curve)
            ]
            (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
            trial = StudyTrial(
                trial=f"{variant}-{seed}",
                variant=variant,
                seed=seed,
                checkpoint="x",
                selected_step=200,
                val_exact=curve[-1][1],
                run_dir=str(run),
            )
            metrics = {"fixed/exact_accuracy": TEST[variant] + seed / 100, "fixed/accuracy": 0.9}
            trials.append(trial_result(trial, metrics, str(run / "export"), f"toy:{len(trials) + 1}"))
    return trials


def test_the_report_has_every_row_its_verdict_the_curriculum_and_a_figure(tmp_path: Path) -> None:
    context = StudyContext(command="trm tune --space toy", preset="p", space="toy", started="now", seconds=400.0)
    out_md = tmp_path / "docs" / "fidelity.md"
    report = write_study_report(SPACE, made_trials(tmp_path), context, out_md, tmp_path / "docs" / "img" / "fid.png")
    text = out_md.read_text()
    assert text == report.markdown
    assert "| **baseline** |" in text and "| **no-ema** |" in text and "| **curriculum** |" in text
    rows = {r.variant: r for r in report.summary.rows}
    assert rows["no-ema"].delta is not None and round(rows["no-ema"].delta, 6) == -30.0
    assert rows["no-ema"].verdict.startswith("reproduced")  # 30 points lower, seeds 1 point apart
    assert "![study figure](img/fid.png)" in text
    assert (tmp_path / "docs" / "img" / "fid.png").read_bytes()[:4] == b"\x89PNG"
    assert curriculum_variants(SPACE) == ["curriculum"]
    (timed,) = report.time_to_accuracy
    assert timed.variant == "curriculum" and timed.baseline == "baseline"
    assert round(timed.wall_time_ratio or 0, 6) == round(200.0 / 120.0, 6)
    assert "## curriculum: time to accuracy against baseline" in text
    assert "toy:1" in text and "## Re-running and scaling" in text
    one_seed = [t for t in made_trials(tmp_path / "one") if t.trial.seed == 0]
    single = write_study_report(SPACE, one_seed, context, tmp_path / "one.md", tmp_path / "one.png")
    assert "| -30.0 |" in single.markdown and "one seed: no noise estimate" in single.markdown
