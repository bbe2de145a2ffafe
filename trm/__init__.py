"""trm-pipeline: reproducible training of Tiny Recursive Models (arXiv 2510.04871)."""

__version__ = "0.1.0"
