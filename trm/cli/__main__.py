"""`python -m trm.cli ...` = `trm ...` (the DVC stages use this form so that `python` picks the project's venv)."""

from trm.cli import main

main()
