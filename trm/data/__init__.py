"""Puzzle datasets: sources (CSV/JSON readers, generators), augmentation, the Parquet writer and the build registry
(``trm.data.build``), plus the training loader and sampler. Submodules are imported where used, so importing
``trm.data`` stays cheap. Design notes: docs/architecture.md ("Design: the data")."""

from trm.data.errors import DataError

__all__ = ["DataError"]
