"""trm-pipeline: reproducible training of Tiny Recursive Models (arXiv 2510.04871)."""

__version__ = "0.1.0"


def load_model(uri: str, **kwargs):
    """(model, TRMConfig) from '<store-url>#<name>[:version|@alias]', every file's sha256 verified first."""
    from trm.store.loading import load_model as _load_model  # lazy: `import trm` stays free of torch and fsspec

    return _load_model(uri, **kwargs)
