"""Speed-ups of the scoring path (issue 7, `make bench`): each leaves every per-item score as the
plain path computes it."""

from __future__ import annotations

from contextlib import nullcontext

import pandas as pd

from harness.run import load, run_comparison


def _records(config) -> dict:
    from harness.plan import plan_runs
    from harness.store import Store

    loaded = load(config)
    store = Store(loaded.spec.store)
    plan = plan_runs(loaded.spec, loaded.suite, store)
    return {(r.model.label, r.task.name): store.read(r.key).sort_values(["doc_id", "filter"]).reset_index(drop=True)
            for r in plan.runs}


def test_requests_built_tokenised_and_templated_once_score_as_the_plain_path(tiny_config, tmp_path, monkeypatch):
    from lm_eval.api.task import Task

    from harness import execute

    builds = []
    original = Task.build_all_requests

    def counting(self, *args, **kwargs):
        builds.append(self.config.task)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Task, "build_all_requests", counting)
    shared = tiny_config(limit=16, store=tmp_path / "shared")
    run_comparison(load(shared), log=lambda m: None)
    built_once = _records(shared)
    assert len(builds) == len(set(builds)) == 7  # once per task, not once per (task, variant)

    # the plain path: lm-eval rebuilds the requests and tokenises them again for every variant
    from harness import tasks
    from harness.backends import hf

    monkeypatch.setattr(execute, "shared_requests", lambda task: nullcontext())
    monkeypatch.setattr(hf, "TOKEN_CACHE", False)
    monkeypatch.setattr(tasks, "TEMPLATE_CACHE", False)
    plain = tiny_config(limit=16, store=tmp_path / "plain")
    run_comparison(load(plain), log=lambda m: None)
    rebuilt = _records(plain)

    assert built_once.keys() == rebuilt.keys() and len({m for m, _ in rebuilt}) == 3
    for key in rebuilt:
        a, b = built_once[key], rebuilt[key]
        pd.testing.assert_frame_equal(a.drop(columns=["scores"]), b.drop(columns=["scores"]), obj=str(key))
        assert list(map(list, a["scores"])) == list(map(list, b["scores"])), key  # bit-identical
