"""Shared plumbing of the training/evaluation benchmarks: JSON-line output, a machine/load note (with the CPU model
name), the best GEMM rate (the denominator of every utilisation figure), and replacing a script's own marked section
of ``docs/benchmarks.md`` so that a rerun updates its numbers instead of appending.

A section is everything between ``<!-- bench:KEY -->`` and ``<!-- /bench:KEY -->``; when the markers are missing
the section is appended at the end of the file. The file is written atomically (trm.atomic).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import torch

from trm.atomic import atomic_write_text
from trm.machine import cpu_model  # re-exported: the bench scripts import it from here

REPO_ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS_DOC = REPO_ROOT / "docs" / "benchmarks.md"
IMG_DIR = REPO_ROOT / "docs" / "img"


def emit(record: dict[str, Any]) -> None:
    """One JSON object per line on stdout: the machine-readable result of a measurement."""
    print(json.dumps(record, sort_keys=False), flush=True)


def gemm_rate(
    m: int, k: int, n: int, repeats: int, device: torch.device | None = None, dtype: torch.dtype = torch.float32
) -> float:
    """Best FLOP/s of [m,k] x [k,n] over ``repeats`` timed calls after one warm-up call (synchronised on CUDA)."""
    device = device or torch.device("cpu")
    a, b = torch.randn(m, k, device=device, dtype=dtype), torch.randn(k, n, device=device, dtype=dtype)
    out = torch.empty(m, n, device=device, dtype=dtype)
    torch.matmul(a, b, out=out)
    best = float("inf")
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        torch.matmul(a, b, out=out)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        best = min(best, time.perf_counter() - start)
    return 2.0 * m * k * n / best


def machine_note() -> str:
    """When and on what a number was measured (the load average matters: the reference machine is shared)."""
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    cpu = cpu_model()
    return (
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} CPU cores ({cpu}), "
        f"torch {torch.__version__} with {torch.get_num_threads()} threads, load average {load}"
    )


def replace_section(key: str, body: str, doc: Path = BENCHMARKS_DOC) -> Path:
    """Put ``body`` between the ``bench:KEY`` markers of ``doc`` (appending the markers when absent)."""
    start, end = f"<!-- bench:{key} -->", f"<!-- /bench:{key} -->"
    text = doc.read_text(encoding="utf-8") if doc.exists() else "# Benchmarks\n"
    block = f"{start}\n{body.rstrip()}\n{end}"
    if start in text and end in text:
        head, rest = text.split(start, 1)
        _, tail = rest.split(end, 1)
        text = head + block + tail
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    return atomic_write_text(doc, text)
