"""trm-pipeline: reproducible training of Tiny Recursive Models (arXiv 2510.04871)."""

__version__ = "0.1.0"


def load_model(uri: str, **kwargs):
    """(model, TRMConfig) from '<store-url>#<name>[:version|@alias]', every file's sha256 verified first."""
    from trm.store.loading import load_model as _load_model  # lazy: `import trm` stays free of torch and fsspec

    return _load_model(uri, **kwargs)


def solve(model, puzzles, strategy=None, **kwargs):
    """Answers to ``puzzles`` (a file, a folder, a puzzle written out, or ``trm.solver.Puzzles``) from ``model`` (a
    store reference ``[store#]name[:v|@alias]``, an export folder, or an opened ``trm.solver.runner.Solver``) with
    ``strategy`` (an ``InferenceConfig`` or its text form such as ``"trajectories:trajectories=8"``; default fixed
    steps): a list of ``trm.solver.answers.Answer``."""
    from trm.solver.runner import solve as _solve  # lazy: `import trm` stays free of torch

    return _solve(model, puzzles, strategy, **kwargs)
