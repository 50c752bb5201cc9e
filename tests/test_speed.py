"""Speed-ups of the scoring path (issue 7, `make bench`): each leaves every per-item score as the
plain path computes it."""

from __future__ import annotations

import functools
import inspect
import shutil
from contextlib import nullcontext

import numpy as np
import pandas as pd
import pytest

from conftest import logprob_tolerance, logprobs_within
from harness.pipeline import load, run_comparison

CONTEXT = 1024  # tokens: more than the longest request the SmolLM2 test scores (a 3-shot triage prompt)


def _records(config) -> dict:
    from harness.plan import plan_runs
    from harness.store import Store

    loaded = load(config)
    store = Store(loaded.spec.store)
    plan = plan_runs(loaded.spec, loaded.suite, store)
    return {(r.model.label, r.task.name): store.read(r.key).sort_values(["doc_id", "filter"]).reset_index(drop=True)
            for r in plan.runs}


def test_requests_built_tokenised_and_templated_once_score_as_the_plain_path(tiny_config, tiny_world, tmp_path,
                                                                            monkeypatch):
    from lm_eval.api.task import Task

    builds = []
    original = Task.build_all_requests

    def counting(self, *args, **kwargs):
        builds.append(self.config.task)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Task, "build_all_requests", counting)
    shared = tiny_config(limit=16, store=tmp_path / "shared")
    run_comparison(load(shared), log=lambda m: None)
    built_once = _records(shared)
    assert len(builds) == len(set(builds)) == 8  # once per task, not once per (task, variant)

    # the plain path: lm-eval rebuilds the requests, compiles the templates and tokenises again for
    # every variant
    from lm_eval import utils

    from harness.backends import hf, patches
    from harness.sources import lm_eval_patches

    monkeypatch.setattr(patches, "shared_requests", lambda task, seed, prompt_key="": nullcontext())
    monkeypatch.setattr(hf.HFBackend, "__init__", functools.partialmethod(hf.HFBackend.__init__, plain=True))
    monkeypatch.setattr(lm_eval_patches, "cache_compiled_templates", lambda: None)
    monkeypatch.setattr(utils, "apply_template", inspect.unwrap(utils.apply_template))
    plain = tiny_config(limit=16, store=tmp_path / "plain")
    run_comparison(load(plain), log=lambda m: None)
    rebuilt = _records(plain)

    assert built_once.keys() == rebuilt.keys() and len({m for m, _ in rebuilt}) == 3
    worst = 0.0
    for key in rebuilt:
        a, b = built_once[key], rebuilt[key]
        metrics = [c for c in a.columns if c.startswith("metric")]
        pd.testing.assert_frame_equal(a.drop(columns=["scores", *metrics]), b.drop(columns=["scores", *metrics]),
                                      obj=str(key))
        # packed scoring (each context once, its continuations after it) sums in another order than the
        # plain path: per request within float32's tolerance (conftest.logprob_tolerance); a
        # right-or-wrong metric may flip only on an item whose plain choice wins by less than twice that
        for x, y in zip(a["scores"], b["scores"], strict=True):
            if len(x):
                worst = max(worst, logprobs_within(x, y, tiny_world.base, what=str(key)))
        scores = [np.asarray(x, float).ravel() for x in b["scores"]]
        tolerance = np.array([logprob_tolerance(tiny_world.base, np.abs(x).sum()) for x in scores])
        margin = np.array([np.inf if len(x) < 2 else np.diff(np.sort(x)[-2:])[0] for x in scores])
        clear = margin > 2 * tolerance
        for m in metrics:
            if not pd.api.types.is_numeric_dtype(b[m]):
                continue  # per-item tuples (an aggregate's inputs): their numbers are the scores above
            if set(b[m].dropna().unique()) <= {0.0, 1.0}:
                pd.testing.assert_series_equal(a.loc[clear, m], b.loc[clear, m], obj=f"{key} {m}")
            else:  # a continuous metric of log-likelihoods (a bias score): within its requests' tolerance
                assert (np.abs(a[m].to_numpy(float) - b[m].to_numpy(float)) <= tolerance).all(), (key, m)
    print(f"\nlargest per-request difference, packed vs plain: {worst:.2e} nats")


def test_rolling_windows_of_all_documents_in_one_sorted_pass_score_as_lm_evals_chunks(tiny_world, monkeypatch):
    """Rolling log-likelihood: every document's windows sorted by length and batched together,
    against lm-eval's own loop (windows sent `batch_size` at a time in document order). Batches of
    other shapes round differently in float32: each document's total agrees to a relative 2e-6
    (3.4e-7 measured on the bench's 400 documents)."""
    import random

    from lm_eval.api.instance import Instance

    from harness.backends import hf

    words = "the river carried salt to the old town where merchants weighed copper and grain".split()
    rng = random.Random(0)
    texts = [" ".join(rng.choices(words, k=rng.randint(3, 120))) for _ in range(40)]  # up to 3 windows
    backend = hf.HFBackend(tiny_world.base, dtype="float32", device="cpu", batch_size=8,
                           adapters=tiny_world.candidates, max_length=64)
    calls = []
    inner = backend.lm._loglikelihood_tokens
    monkeypatch.setattr(backend.lm, "_loglikelihood_tokens",
                        lambda requests, *a, **k: calls.append(len(requests)) or inner(requests, *a, **k))
    requests = [Instance("loglikelihood_rolling", {}, (t,), i) for i, t in enumerate(texts)]
    for variant in backend.variants():
        with backend.activate(variant) as lm:
            lm.plain = False
            calls.clear()
            one_pass = lm.loglikelihood_rolling(requests)
            assert len(calls) == 1 and calls[0] > len(texts)  # one sorted pass over every window
            lm.plain = True
            calls.clear()
            chunked = lm.loglikelihood_rolling(requests)
            assert len(calls) > 1  # lm-eval's loop: one call per batch of windows
        assert len(one_pass) == len(chunked) == len(texts)
        for a, b in zip(one_pass, chunked, strict=True):
            assert abs(a - b) <= 2e-6 * abs(b), (variant, a, b)


def test_progress_bar_counts_runs_on_a_terminal_and_stays_out_of_plain_logs(tiny_config, monkeypatch):
    from click.testing import CliRunner

    from harness.cli import main

    config = tiny_config()
    monkeypatch.setenv("HARNESS_PROGRESS", "1")  # as on a terminal
    shown = CliRunner().invoke(main, ["compare", "--config", str(config)])
    assert shown.exit_code == 0, shown.output
    runs = shown.stdout.count("execute: ") - shown.stdout.count("execute: loading")
    assert runs > 0 and "execute: 100%" in shown.stderr and f"{runs}/{runs} [" in shown.stderr
    assert "Running loglikelihood requests" in shown.stderr  # lm-eval's bar for the run in progress
    assert "%|" not in shown.stdout  # the per-run log lines stay whole

    monkeypatch.setenv("HARNESS_PROGRESS", "auto")  # not a terminal: plain lines only
    shutil.rmtree(config.parent / "store")
    plain = CliRunner().invoke(main, ["compare", "--config", str(config)])
    assert plain.exit_code == 0, plain.output
    assert "%|" not in plain.stderr + plain.stdout
    assert plain.stdout.count("execute: ") == shown.stdout.count("execute: ")


def _demo_requests(tasks: dict[str, tuple[int, int]], monkeypatch) -> list:
    """lm-eval's requests of demo tasks: name -> (documents, examples per prompt)."""
    from lm_eval.tasks import TaskManager

    from conftest import REPO

    monkeypatch.chdir(REPO / "suites" / "tasks" / "demo")  # the task files' data paths are relative
    manager = TaskManager(include_path=".", include_defaults=False)
    requests = []
    for name, task in manager.load(list(tasks))["tasks"].items():
        docs, shots = tasks[name]
        task.set_config(key="num_fewshot", value=shots)
        task.set_fewshot_seed(seed=1234)
        task.build_all_requests(limit=docs, rank=0, world_size=1)
        requests += task.instances
    return requests


# ~45 s of CI's 12 minutes held to AVX2: in `make test` the packed path on SmolLM2 with an adapter is held
# against lm-eval's own full-sequence scoring by tests/sources/test_prompts.py (chat formats, 1 shot), and
# the path's accounting (every request through it, each variant's cache its own) by this file's tiny-world tests
@pytest.mark.slow
def test_packed_scoring_on_smollm2_scores_as_lm_evals_full_sequences(smollm2, tmp_path, monkeypatch):
    """A real model: SmolLM2-135M-Instruct and a LoRA adapter on its attention (each variant's context
    cache its own), the demo's triage under a 3-shot context (five choices per question) and its
    capitals (four): each request within float32's tolerance of lm-eval's full-sequence scoring
    (conftest.logprob_tolerance, over a context of at most CONTEXT tokens); a choice may change only where
    the plain path's margin is below twice that."""
    from conftest import random_lora
    from harness.backends import hf

    adapter = random_lora(smollm2, tmp_path / "adapter", ["q_proj", "v_proj"], 0.02)
    requests = _demo_requests({"demo_triage": (4, 3), "demo_capitals": (8, 0)}, monkeypatch)
    assert len(requests) == 4 * 5 + 8 * 4
    backend = hf.HFBackend(smollm2, dtype="float32", device="cpu", batch_size=16, adapters={"tuned": adapter})
    calls = []
    from harness.backends import hf_lm

    original = hf_lm.packed_scores
    monkeypatch.setattr(hf_lm, "packed_scores",
                        lambda model, reqs, *a, **k: calls.append(len(reqs)) or original(model, reqs, *a, **k))
    worst, scores = 0.0, {}
    for variant in backend.variants():
        with backend.activate(variant) as lm:
            lm.plain = False
            shared = lm.loglikelihood(requests)
            lm.plain = True
            plain = lm.loglikelihood(requests)
        scores[variant] = [ll for ll, _ in shared]
        by_doc: dict = {}
        for req, (a, _), (b, _) in zip(requests, shared, plain, strict=True):
            by_doc.setdefault((req.task_name, req.doc_id), []).append((a, b))
        for doc, pairs in by_doc.items():
            a, b = np.array(pairs).T
            margin = np.diff(np.sort(b)[-2:])[0]
            tolerance = logprob_tolerance(smollm2, np.abs(b).sum(), context=CONTEXT)
            assert margin <= 2 * tolerance or a.argmax() == b.argmax(), (variant, doc)
        worst = max(worst, logprobs_within(scores[variant], [b for b, _ in plain], smollm2, CONTEXT, variant))
    assert sum(calls) == 2 * len(requests)  # every request of both variants went through the shared path
    assert max(abs(a - b) for a, b in zip(scores["base"], scores["tuned"], strict=True)) > 1e-3  # the adapter counts
    print(f"\nSmolLM2, packed vs plain: largest per-request difference {worst:.2e} nats")


def test_a_model_that_cannot_share_contexts_is_scored_as_lm_eval_does_and_said_once(tiny_world, monkeypatch):
    """A model class whose forward takes no `logits_to_keep` (or no position_ids, or whose cache
    cannot be reordered): the packed path fails once, a warning says so, and every request is
    scored on lm-eval's path, with the same results as the plain backend's."""
    import warnings

    from harness.backends import hf

    requests = _demo_requests({"demo_triage": (5, 0)}, monkeypatch)
    backend = hf.HFBackend(tiny_world.base, dtype="float32", device="cpu", batch_size=8)
    forward = backend.model.forward

    def old_style(*args, **kwargs):
        if "logits_to_keep" in kwargs:
            raise TypeError("forward() got an unexpected keyword argument 'logits_to_keep'")
        return forward(*args, **kwargs)

    monkeypatch.setattr(backend.model, "forward", old_style)
    with backend.activate("base") as lm, warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        first = lm.loglikelihood(requests)
        again = lm.loglikelihood(requests)
        lm.plain = True
        plain = lm.loglikelihood(requests)
    messages = [str(w.message) for w in said if "cannot score with shared contexts" in str(w.message)]
    assert len(messages) == 1 and "logits_to_keep" in messages[0], [str(w.message) for w in said]
    assert first == again == plain  # lm-eval's own path, bit for bit
