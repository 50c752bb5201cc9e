"""Reference metrics for generated text that lm-eval does not register, registered under their usual
names so that a task's `metric_list` names them as it names lm-eval's own (`bleu`, `chrf`, `ter`,
`exact_match`): `rouge1`, `rouge2`, `rougeL`, per item the F-measure of Google's `rouge_score` (the
library lm-eval's own summarization tasks use) with the Porter stemmer, averaged over items.

lm-eval's `bleu`, `chrf` and `ter` are corpus metrics (per-item passthroughs, aggregated over the
corpus by sacrebleu): the harness stores their per-item inputs and pairs them by jackknife
pseudo-values, as it does BBQ's bias scores.
"""

from __future__ import annotations

from functools import cache

ROUGE = ("rouge1", "rouge2", "rougeL")


@cache
def _scorer(kind: str):
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer([kind], use_stemmer=True)


def rouge(kind: str, references: list[str], predictions: list[str]) -> float:
    """ROUGE F-measure of one prediction against its reference (lm-eval calls a metric per item)."""
    return float(_scorer(kind).score(references[0], predictions[0])[kind].fmeasure)


def _metric(kind: str):
    def fn(references: list[str], predictions: list[str], **_: object) -> float:
        return rouge(kind, references, predictions)

    fn.__name__ = fn.__qualname__ = kind
    return fn


def register() -> None:
    """Make the names known to lm-eval's metric registry (once; a name lm-eval has is left alone)."""
    import lm_eval.api.metrics  # noqa: F401  (registers lm-eval's aggregations, `mean` among them)
    from lm_eval.api.registry import metric_registry, register_metric

    for kind in ROUGE:
        if kind not in metric_registry:
            register_metric(metric=kind, higher_is_better=True, output_type="generate_until",
                            aggregation="mean")(_metric(kind))
