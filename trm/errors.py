"""The two kinds of failure every command and flow reports in one line (the `trm` command and the flows turn
them into exit codes and Prefect state messages; see trm/cli/output.py).

- ``UsageError``: a wrong parameter, preset, override, path, name or URL. Raised before anything starts (no Ray,
  no data build, no run folder, no store object), exit code 2. The message names the parameter and the fix.
- ``PreflightError``: a service the run will need at its end does not answer, refuses, or cannot host it (store,
  DVC remote, Ray cluster). Raised before the first expensive stage, exit code 1. The message names the service,
  its URL with secrets redacted, and the fix.
"""

from __future__ import annotations


class UsageError(ValueError):
    """A parameter that cannot work; nothing has been started."""


class PreflightError(RuntimeError):
    """A service the run needs is unreachable, refuses, or is too small; nothing expensive has been started."""
