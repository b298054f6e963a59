"""Evaluation: eval sets, metrics with per-example scores, evaluation runs, per-version reports."""
