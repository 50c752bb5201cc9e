"""Metric functions the demo's lm-eval tasks refer to with `!function utils.<name>`."""

from harness.sources.task_metrics import process_bias_pair  # noqa: F401

