"""Helpers shared by the Ray tests (imported by path: tests use --import-mode=importlib)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import torch

from trm.config import TRMConfig, load_config
from trm.data.build import build_dataset

# Held-out exact accuracy on the validation split, which Ray runs evaluate on (200 puzzles on solution grids that
# train never uses): a notch below the single-process test's 0.95 on the test split (tests/train/test_learning.py),
# since the two 200-puzzle splits differ by a few puzzles in difficulty (measured: 0.945 on val at 0.95+ on test).
LEARNING_THRESHOLD = 0.93


def build_smoke_data(root: Path) -> Path:
    build_dataset(load_config("smoke").data.name, out_root=root)  # params.yaml's section, as DVC builds it
    return root


def smoke_config(data_root: Path, *overrides: str) -> TRMConfig:
    return load_config("smoke", [f"data.root={data_root}", *overrides])


def wait_for(condition: Callable[[], bool], timeout: float, what: str, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def assert_same_state(got: dict[str, torch.Tensor], want: dict[str, torch.Tensor]) -> None:
    """Every tensor of a trainer state equal within fp32 tolerance (torch RNG states excluded: they are
    per-process and not part of the training computation).

    Why a few outliers are allowed: AdamATan2's update is atan2(m, sqrt(v)), which does not shrink with the
    gradient, so a weight whose gradient is ~1e-9 (fp32 summation-order noise between 1 process x 64 rows and
    2 ranks x 32 rows) can move by up to ~lr in either direction. A wrong data slice or missing all-reduce moves
    nearly every element, so at most 0.1% of elements may differ, and by at most 1e-3."""
    compared = [k for k in want if not k.startswith("rng.torch")]
    assert set(compared) <= set(got), sorted(set(compared) - set(got))[:10]
    assert any(k.startswith("carry.") for k in compared) and any(k.startswith("ema.") for k in compared)
    for key in compared:
        a, b = got[key], want[key]
        assert a.shape == b.shape and a.dtype == b.dtype, key
        if a.dtype.is_floating_point:
            off = (a.double() - b.double()).abs() > 1e-5 + 1e-4 * b.double().abs()
            assert off.float().mean().item() <= 1e-3, f"{key}: {int(off.sum())} of {off.numel()} elements differ"
            torch.testing.assert_close(a, b, rtol=0, atol=1e-3, msg=lambda m, k=key: f"{k}: {m}")
        else:
            assert torch.equal(a, b), key
