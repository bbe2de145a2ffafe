"""Carving a validation split out of real training data: a seeded choice of whole source puzzles (each later a
whole group with its augmentations), made before augmentation so no validation puzzle is ever augmented into
train. Generated datasets draw their validation set as a third disjoint set instead (sudoku_gen, maze_gen)."""

from __future__ import annotations

import numpy as np

VAL_STREAM = 0x76616C  # "val": keeps the validation draw independent of every other use of the build seed


def validation_rng(seed: int) -> np.random.Generator:
    return np.random.default_rng([seed, VAL_STREAM])


def carve_validation(n: int, count: int, seed: int, what: str) -> tuple[np.ndarray, np.ndarray]:
    """(train indices, validation indices) of ``n`` source items, ``count`` of them for validation, each sorted so
    both keep file order."""
    if count >= n:
        raise ValueError(f"val_count={count} must be below the {n} training {what} it is carved from")
    chosen = np.sort(validation_rng(seed).choice(n, size=count, replace=False))
    return np.setdiff1d(np.arange(n), chosen), chosen
