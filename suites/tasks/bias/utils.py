"""Metric functions the bias tasks refer to with `!function utils.<name>`."""

from harness.sources.task_metrics import process_bias_pair, process_stereoset  # noqa: F401
