"""The human side of a published version: ``README.md`` (model card) and ``training_curve.png``.

The curve is drawn from the training run's ``metrics.jsonl`` (one JSON object per line). The format is read
generically so the store does not depend on the trainer's exact keys: the x axis is the first of ``step``,
``global_step``, ``iteration``, ``epoch`` present (else the line number); string fields ``kind``/``split``/
``phase``/``mode`` prefix series names (``eval/fixed/exact_accuracy``); numeric values (nested dicts flattened
with ``/``) become series. The figure shows losses (left, log scale) and accuracies (right); other series (counts,
timings, throughput) are not plotted, and accuracies of records with ``count`` 0 (nothing measured) are skipped.
"""

from __future__ import annotations

import json
import math
import threading
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from trm.atomic import atomic_path
from trm.markdown import table
from trm.store.manifest import Manifest

Series = dict[str, list[tuple[float, float]]]

X_KEYS = ("step", "global_step", "iteration", "epoch")
GROUP_KEYS = ("kind", "split", "phase", "mode")
IGNORED_KEYS = {"time", "timestamp", "elapsed", "elapsed_s", "wall_time", "rank", "world_size", "lr", "learning_rate"}
MAX_SERIES_PER_PANEL = 8
SKIPPED_GROUPS = ("info/",)
RENDER_LOCK = threading.Lock()


def read_metrics_log(path: Path) -> Series:
    """Series name -> [(x, y)] from a JSON-lines file; a bad line is an error naming the file and line."""
    series: dict[str, list[tuple[float, float]]] = defaultdict(list)
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{path}:{number}: not a JSON object: {error}") from error
            if not isinstance(record, dict):
                raise ValueError(f"{path}:{number}: expected a JSON object, got {type(record).__name__}")
            x_key = next((k for k in X_KEYS if _is_number(record.get(k))), None)
            x = float(record[x_key]) if x_key else float(number)
            group = "/".join(record[k] for k in GROUP_KEYS if isinstance(record.get(k), str)) or None
            measured_nothing = _is_number(record.get("count")) and record["count"] == 0  # e.g. no row halted yet
            for key, value in _numeric_items(record):
                if key in X_KEYS or key in IGNORED_KEYS or (measured_nothing and "acc" in key.lower()):
                    continue
                series[f"{group}/{key}" if group else key].append((x, float(value)))
    return dict(series)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _numeric_items(record: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, float]]:
    for key, value in record.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            yield from _numeric_items(value, f"{name}/")
        elif _is_number(value):
            yield name, value


def curve_panels(series: Series) -> tuple[Series, Series]:
    """(losses, accuracies) to plot. Counts, throughput, timings and ``info`` records are left out: on one axis
    with accuracies they would flatten every curve."""
    kept = {k: v for k, v in series.items() if not k.startswith(SKIPPED_GROUPS)}
    losses = {k: v for k, v in kept.items() if "loss" in k.rsplit("/", 1)[-1].lower()}
    accuracies = {k: v for k, v in kept.items() if "acc" in k.rsplit("/", 1)[-1].lower() and k not in losses}
    return losses, accuracies


def render_training_curve(metrics_log: Path | None, out_png: Path, title: str = "training curve") -> None:
    """Write ``out_png``; with no log (or no numeric series) the figure says so instead of being left out, so
    every version has the same file layout."""
    series = read_metrics_log(metrics_log) if metrics_log is not None else {}
    with RENDER_LOCK:  # matplotlib's text/mathtext machinery is shared state: one figure at a time
        _draw(series, out_png, title)


def _draw(series: Series, out_png: Path, title: str) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # lazy: matplotlib takes ~0.4 s to import
    from matplotlib.figure import Figure  # lazy: only a publish draws a figure

    losses, others = curve_panels(series)
    figure = Figure(figsize=(11, 4), dpi=100)
    FigureCanvasAgg(figure)  # no pyplot: no global figure registry, no GUI backend
    axes = figure.subplots(1, 2)
    for axis, panel, label in ((axes[0], losses, "loss"), (axes[1], others, "accuracy")):
        for name in sorted(panel)[:MAX_SERIES_PER_PANEL]:
            points = sorted(panel[name])
            axis.plot(
                [p[0] for p in points], [p[1] for p in points], label=name, marker="." if len(points) < 30 else None
            )
        if panel:
            axis.legend(fontsize=7)
            if label == "loss" and all(y > 0 for pts in panel.values() for _, y in pts):
                axis.set_yscale("log")
        else:
            axis.text(0.5, 0.5, f"no {label} recorded", ha="center", va="center", transform=axis.transAxes)
        axis.set_xlabel("step")
        axis.set_title(label)
        axis.grid(alpha=0.3)
    figure.suptitle(title)
    figure.tight_layout()
    with atomic_path(out_png) as tmp:
        figure.savefig(tmp, format="png")


def _flat(metrics: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    rows: list[tuple[str, Any]] = []
    for key, value in metrics.items():
        if isinstance(value, dict):
            rows += _flat(value, f"{prefix}{key}/")
        else:
            rows.append((f"{prefix}{key}", value))
    return rows


def describe_selection(selection: dict[str, Any] | None) -> str:
    """One line: which training step these weights are, chosen how, on which split."""
    if not selection:
        return "not recorded"
    step = selection.get("step")
    if selection.get("rule") == "last":
        text = f"step {step}: the last step (eval.select: last)"
    else:
        value = selection.get("value")
        shown = f" = {value:.4f}" if isinstance(value, (int, float)) else ""
        text = (
            f"step {step}: best {selection.get('metric')}{shown} on the {selection.get('split')} split among "
            f"{selection.get('evaluations')} evaluation(s)"
        )
    return text + (" (stopped early)" if selection.get("stopped_early") else "")


def _metrics_lines(manifest: Manifest) -> list[str]:
    """Validation (at the selected step) beside test (measured once, on that step's weights)."""
    test = dict(_flat(manifest.metrics))
    selection = manifest.selection or {}
    val = dict(_flat(selection.get("metrics") or {}))
    if not test and not val:
        return ["No metrics were recorded."]
    if not val:  # published without a selection record (e.g. `trm models publish` of a bare export)
        return [table(["metric", "value"], list(test.items()))]
    keys = list(test) + [key for key in val if key not in test]
    split = selection.get("split", "validation")
    rows = [(key, val.get(key, ""), test.get(key, "")) for key in keys]
    return [
        f"Selected: {describe_selection(manifest.selection)}. Test is measured once, on the selected weights.",
        "",
        table(["metric", f"{split} (step {selection.get('step', '-')})", "test"], rows),
    ]


STRATEGY_PREFIX = "strategy/"  # test metrics of the inference strategies the evaluate stage measured


def _compute_lines(metrics: dict[str, Any]) -> list[str]:
    """Test exact accuracy against forward passes per puzzle: the official fixed pass and each measured strategy."""
    flat = dict(_flat(metrics))
    labels = sorted({key[len(STRATEGY_PREFIX) :].rsplit("/", 1)[0] for key in flat if key.startswith(STRATEGY_PREFIX)})
    if not labels:
        return []
    rows = []
    if "fixed/exact_accuracy" in flat:
        rows.append(("fixed (official)", flat["fixed/exact_accuracy"], flat.get("fixed/steps", "")))
    for label in labels:
        key = f"{STRATEGY_PREFIX}{label}/"
        rows.append((label, flat.get(key + "exact_accuracy", ""), flat.get(key + "forward_passes", "")))
    rows.sort(key=lambda row: row[2] if isinstance(row[2], (int, float)) else float("inf"))
    return [
        "",
        "## Accuracy against compute",
        "",
        "Test split; a forward pass is one supervision step of one puzzle (the official evaluation runs 16).",
        "",
        table(["strategy", "test exact accuracy", "forward passes per puzzle"], rows),
    ]


def render_model_card(manifest: Manifest, store_url: str) -> str:
    """Markdown model card: what it is, its metrics, the curve, where it came from, how to load it."""
    created = manifest.created_at.isoformat(timespec="seconds")
    lines = [
        f"# {manifest.name} — version {manifest.version}",
        "",
        f"Tiny Recursive Model published {created} to `{store_url}`.",
        "",
        *_rehearsal_lines(manifest.extra.get("rehearsal")),
        "## Metrics",
        "",
    ]
    lines += _metrics_lines(manifest)
    lines += _compute_lines(manifest.metrics)
    lines += ["", "## Training curve", "", "![training curve](training_curve.png)", "", "## Lineage", ""]
    lines += _lineage_lines(manifest)
    model_cfg = manifest.config.get("model", {})
    if model_cfg:
        lines += ["", "## Model config", "", "```json", json.dumps(model_cfg, indent=2, sort_keys=True), "```"]
    lines += _usage_lines(f"{manifest.name}:{manifest.version}", store_url)
    return "\n".join(lines)


def _rehearsal_lines(rehearsal: Any) -> list[str]:
    """A banner for a dress rehearsal: real data and model shapes, a few steps; its metrics mean nothing."""
    if not rehearsal:
        return []
    budget = ", ".join(rehearsal.get("overrides", [])) if isinstance(rehearsal, dict) else ""
    return [
        "> **Dress rehearsal, not a trained model**: the preset's real data and full-size model ran through every",
        f"> stage on a CPU-sized budget ({budget or 'see the manifest'}); its metrics only show that each stage works.",
        "",
    ]


def _lineage_lines(manifest: Manifest) -> list[str]:
    """Code, data, dataset, runs and environment, one bullet each."""
    git = manifest.git
    dirty = " (with uncommitted changes)" if git.dirty else ""
    lines = [f"- code: commit `{git.commit}`{dirty}" if git.commit else "- code: not from a git checkout"]
    if manifest.data:
        lines.append(f"- data: DVC stage `{manifest.data.stage}`")
        lines += [f"  - out `{o.path}` md5 `{o.md5}`" for o in manifest.data.outs]
    if manifest.dataset_metadata:
        meta = manifest.dataset_metadata
        lines.append(
            f"- dataset: `{meta.get('name')}` ({meta.get('task')}, seq_len {meta.get('seq_len')}, "
            f"vocab {meta.get('vocab_size')})"
        )
    runs = (
        ("Ray run", manifest.ray_run_name),
        ("Tune run", manifest.tune_run_name),
        ("Tune trial", manifest.tune_trial_name),
    )
    lines += [f"- {label}: `{value}`" for label, value in runs if value]
    if manifest.environment:
        env = manifest.environment
        packages = ", ".join(f"{k} {v}" for k, v in env.packages.items() if k in ("torch", "trm-pipeline"))
        lines.append(f"- environment: Python {env.python}, {packages}")
    return lines


def _usage_lines(ref: str, store_url: str) -> list[str]:
    return [
        "",
        "## Use",
        "",
        "```python",
        "import trm",
        f'model, config = trm.load_model("{store_url}#{ref}")  # verifies every file\'s sha256',
        "```",
        "",
        f"or `trm models download {ref} DEST --store {store_url}`. `manifest.json` lists every file's sha256 and "
        "the full lineage.",
        "",
    ]
