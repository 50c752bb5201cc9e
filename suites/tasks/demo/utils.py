"""Metric functions the demo's lm-eval tasks refer to with `!function utils.<name>`."""

from harness.sources.task_metrics import process_bias_pair  # noqa: F401


def first_100(dataset):
    """The first 100 documents: for generated text, the costliest items a demo comparison scores."""
    return dataset.select(range(min(100, len(dataset))))
