"""The trials of a study, read from a Tune result: variant, seed, the val-selected checkpoint and the run folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from trm.distributed.space import VARIANT

SEED_PARAM = "train.seed"


class StudyTrial(BaseModel):
    """One trained trial: which row and seed it is, and what validation chose (its best checkpointed step)."""

    trial: str
    variant: str
    seed: int
    checkpoint: str | None = Field(None, description="the val-selected checkpoint (None: the trial never scored)")
    selected_step: int | None = None
    val_exact: float | None = None
    val_accuracy: float | None = None
    run_dir: str = Field(description="the trial's run folder: metrics.jsonl, config.json")
    error: str = ""
    report: dict[str, Any] = Field(default_factory=dict, description="the selected step's Ray report")

    @property
    def metrics_log(self) -> Path:
        return Path(self.run_dir) / "metrics.jsonl"


def study_trials(rows: list[dict[str, Any]], trials_dir: Path) -> list[StudyTrial]:
    """Trials from Tune result rows (trm.distributed.tune.summarize); a row without a variant or a seed parameter is
    an error naming the trial: the space was not a study."""
    trials = []
    for row in rows:
        variant, seed = row.get(f"param:{VARIANT}"), row.get(f"param:{SEED_PARAM}")
        if variant is None or seed is None:
            raise ValueError(f"trial {row.get('trial')}: no '{VARIANT}' or '{SEED_PARAM}' parameter (not a study)")
        trials.append(
            StudyTrial(
                trial=str(row["trial"]),
                variant=str(variant),
                seed=int(seed),
                checkpoint=row.get("checkpoint"),
                selected_step=row.get("best_step"),
                val_exact=row.get("eval_exact_accuracy"),
                val_accuracy=row.get("eval_accuracy"),
                run_dir=str(trials_dir / str(row["trial"])),
                error=str(row.get("error") or ""),
                report=dict(row.get("report") or {}),
            )
        )
    return sorted(trials, key=lambda t: (t.variant, t.seed))
