"""The facts of each role (order, title, good direction, reading) and the default target task,
each said once (harness.config) and read wherever results are shown."""

from __future__ import annotations

from typing import get_args

from harness.comparison import ComparisonResult
from harness.config import ROLE_FACTS, ROLES, Role, SuiteSpec, role_rank
from harness.records import (
    CandidateResult,
    Estimate,
    ModelRecord,
    RoleResult,
    TaskResult,
)
from harness.report.render import render_html


def test_the_role_table_is_the_roles_a_suite_may_name_in_report_order():
    assert ROLES == get_args(Role) == ("target", "forgetting", "bias")
    assert [role_rank(r) for r in ("bias", "target", "style")] == [2, 0, 3]
    assert {r: f.good for r, f in ROLE_FACTS.items()} == {"target": 1, "forgetting": 1, "bias": -1}


def test_the_default_target_is_the_suites_first_target_task():
    suite = SuiteSpec(name="s", tasks=[{"task": "general", "role": "forgetting", "metric": "acc"},
                                       {"task": "triage", "role": "target", "metric": "acc"},
                                       {"task": "triage_2", "role": "target", "metric": "acc"}])
    assert suite.default_target() == "triage"
    assert suite.model_copy(update={"tasks": suite.tasks[:1]}).default_target() is None


def _comparison(deltas: dict[str, float]) -> ComparisonResult:
    def task(role: str, d: float) -> TaskResult:
        return TaskResult(task=f"{role}_task", role=role, metric="acc", n=100, binary=True,
                          base=Estimate(estimate=0.5, low=0.4, high=0.6),
                          candidate=Estimate(estimate=0.5 + d, low=0.4 + d, high=0.6 + d),
                          delta=Estimate(estimate=d, low=d - 0.05, high=d + 0.05), interval="i", test="t",
                          p_value=0.01, p_holm=0.01, sd_item=0.5, mde=0.1)

    roles = [RoleResult(role=r, tasks=[f"{r}_task"], n=100, delta=Estimate(estimate=d, low=d - 0.05, high=d + 0.05),
                        se=0.02, p_value=0.01, mde=0.06) for r, d in deltas.items()]
    m = ModelRecord(label="base", source="/m", fingerprint="f" * 64)
    cr = CandidateResult(candidate="c", tasks=[task(r, d) for r, d in deltas.items()], roles=roles, flips=[])
    return ComparisonResult(name="roles", created_at="now", harness_version="0", suite="s", confidence=0.95,
                            base=m, candidates=[m.model_copy(update={"label": "c"})], results=[cr])


def test_the_report_shows_each_role_by_its_facts_in_their_order():
    """Cards in the table's order, titled and read as the table says; a rise of the bias score is
    bad news, a rise on the other roles good news."""
    import re

    html = render_html(_comparison({"bias": 0.2, "forgetting": 0.2, "target": 0.2}))
    cards = re.findall(r'<div class="card (\w+)">\s*<div class="muted">([^<]+) <span', html)
    assert cards == [("good", "Target gain"), ("good", "Forgetting"), ("bad", "Bias change")]
    for facts in ROLE_FACTS.values():
        assert f"{facts.reading} · 1 task(s)" in html
