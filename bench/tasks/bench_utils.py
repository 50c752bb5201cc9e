"""Metric functions the bench's lm-eval tasks refer to with `!function utils.<name>`."""


def log_likelihood_per_word(doc: dict, results: list) -> dict:
    """A rolling log-likelihood as a per-item number: nats per word of the document."""
    (loglikelihood,) = results
    return {"ll_per_word": float(loglikelihood) / max(1, len(doc["text"].split()))}
