"""Evaluation: metrics over valid rows, fixed-step and adaptive-halting inference (``inference.evaluate``), the
ARC evaluator (voting, pass@K, submission.json), the eval.json report, and the training loop's evaluation hook."""
