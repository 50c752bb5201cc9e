"""A task's aggregation functions as references the store can hold, so comparing needs no task.

Most metrics are per-item means, and compare averages the stored per-item values itself. A few
are ratios over the whole set (BBQ's bias scores): compare needs lm-eval's own aggregation on
the stored per-item tuples (for jackknife pseudo-values, also per category). Execute writes a
reference to each such function into the run's manifest; compare resolves it without building
an lm-eval task:

- `lm_eval:<name>`: a function of lm-eval's aggregation registry (`mean`, `f1`, ...).
- `file:<path>::<name>::<sha256>`: a function defined in a task's Python file (lm-eval's
  `!function utils.<name>`), with the hash of that file when the run was scored; a file that has
  changed since is refused (the stored run was aggregated by other code).
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
from collections.abc import Callable
from pathlib import Path

import numpy as np

from harness.errors import HarnessError


class Aggregation:
    """A stored aggregation resolved: called as the function itself; `leave_one_out` gives the
    all-items and leave-one-out values in one pass where the metric allows it (else None)."""

    def __init__(self, ref: str, fn: Callable[[list], float]):
        self.ref, self.fn = ref, fn

    def __call__(self, items: list) -> float:
        return self.fn(items)

    def leave_one_out(self, items: list) -> tuple[float, np.ndarray] | None:
        return leave_one_out(self.ref, items)


_LOADED: dict[str, Aggregation] = {}


def aggregation_ref(fn: Callable) -> str:
    """The reference stored for `fn`, one of a task's `aggregation()` values."""
    from lm_eval.api.registry import AGGREGATION_REGISTRY

    for name, registered in AGGREGATION_REGISTRY.items():
        if registered is fn:
            return f"lm_eval:{name}"
    source = inspect.getsourcefile(fn)
    if source is None or not Path(source).is_file():
        raise HarnessError(f"aggregation {getattr(fn, '__qualname__', fn)!r}: not in lm-eval's registry and "
                           "not defined in a Python file; give the task's metric a registered or file-defined "
                           "aggregation")
    digest = hashlib.sha256(Path(source).read_bytes()).hexdigest()
    return f"file:{Path(source).resolve()}::{fn.__name__}::{digest}"


def resolve_aggregation(ref: str, where: str) -> Aggregation:
    """The function behind a stored reference; `where` names the run for errors."""
    if ref in _LOADED:
        return _LOADED[ref]
    kind, _, rest = ref.partition(":")
    if kind == "lm_eval":
        import lm_eval.api.metrics  # noqa: F401  (registers the built-in aggregations)
        from lm_eval.api.registry import AGGREGATION_REGISTRY

        if rest not in AGGREGATION_REGISTRY:
            raise HarnessError(f"{where}: aggregation '{rest}' is not in this lm-eval's registry; "
                               "re-score the run with this lm-eval (delete its files from the store)")
        fn = AGGREGATION_REGISTRY[rest]
    elif kind == "file":
        path, name, digest = rest.rsplit("::", 2)
        file = Path(path)
        if not file.is_file() or hashlib.sha256(file.read_bytes()).hexdigest() != digest:
            raise HarnessError(f"{where}: its aggregation '{name}' came from {file}, which has changed or gone "
                               "since the run was scored; re-score the run (delete its files from the store)")
        spec = importlib.util.spec_from_file_location(f"harness_aggregation_{digest[:16]}", file)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        fn = getattr(module, name)
    else:
        raise HarnessError(f"{where}: unknown aggregation reference {ref!r}")
    _LOADED[ref] = Aggregation(ref, fn)
    return _LOADED[ref]


# lm-eval's corpus metrics that sacrebleu computes from summed per-segment statistics: the metric
# object lm-eval's aggregation builds (`sacrebleu.corpus_*` with these arguments)
_SACREBLEU = {"lm_eval:bleu": ("BLEU", {}), "lm_eval:chrf": ("CHRF", {}), "lm_eval:chrf++": ("CHRF", {"word_order": 2}),
              "lm_eval:ter": ("TER", {})}


def leave_one_out(ref: str, items: list) -> tuple[float, np.ndarray] | None:
    """The aggregate over all items and over each item's leave-one-out set, for a corpus metric whose
    score is a function of summed per-segment statistics (lm-eval's BLEU, chrF, chrF++, TER through
    sacrebleu): each segment's statistics computed once and subtracted from the total, so n + 1
    scores cost one pass instead of n passes over n items. None for any other aggregation."""
    if ref not in _SACREBLEU or len(items) < 2:
        return None
    import sacrebleu
    from lm_eval.api.metrics import _sacreformat

    name, kwargs = _SACREBLEU[ref]
    refs, preds = _sacreformat([item[0] for item in items], [item[1] for item in items])
    metric = getattr(sacrebleu.metrics, name)(**kwargs)
    stats = np.asarray(metric._extract_corpus_statistics(preds, refs), dtype=float)
    total = stats.sum(axis=0)
    theta = float(metric._compute_score_from_stats(total).score)
    loo = np.array([float(metric._compute_score_from_stats(total - row).score) for row in stats])
    return theta, loo
