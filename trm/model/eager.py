"""`eager`: keep one function out of `torch.compile` graphs, with its signature visible to the type checker."""

from __future__ import annotations

from collections.abc import Callable
from typing import ParamSpec, TypeVar, cast

import torch

_P = ParamSpec("_P")
_R = TypeVar("_R")


def eager(fn: Callable[_P, _R]) -> Callable[_P, _R]:
    """`torch.compiler.disable(fn)`: the function always runs eagerly, also when called from a compiled model.

    Used where a graph break is required (a fresh autograd leaf that must outlive the graph, numbers drawn from a
    CPU generator). torch declares `disable` without annotations, hence the cast back to `fn`'s own type.
    """
    return cast(Callable[_P, _R], torch.compiler.disable(fn))  # type: ignore[no-untyped-call]  # unannotated in torch
