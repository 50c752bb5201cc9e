"""An example of hand-written gate tests, the way a team would keep them beside its code.

The `harness_comparison` fixture (from harness's pytest plugin) is the comparison of base and
candidates, computed once per session from the store. Point it at your config with
`pytest --harness-config harness.yaml`, with `harness_config = harness.yaml` in the ini file,
or, as here, by overriding the `harness_config_path` fixture.
"""

from __future__ import annotations

import pytest

from harness.config import GateSpec
from harness.gates import gate_verdict


@pytest.fixture(scope="session")
def harness_config_path(demo_config):
    # the repository's configs/demo.yaml, with its store where the other demo tests keep theirs
    return demo_config


def candidate(comparison, name):
    return next(c for c in comparison.results if c.candidate == name)


def test_the_release_candidate_learns_the_task(harness_comparison):
    gain = candidate(harness_comparison, "balanced-replay").role("target").delta
    assert gain.low > 0.5, f"gain {gain.estimate:+.3f}, interval [{gain.low:+.3f}, {gain.high:+.3f}]"


def test_no_general_knowledge_probe_is_significantly_worse(harness_comparison):
    """Per probe, with Holm's correction across the probes of the role."""
    for t in candidate(harness_comparison, "balanced-replay").tasks:
        if t.role == "forgetting":
            d = t.delta.estimate
            assert d >= 0 or t.p_holm >= 0.05, f"{t.task}: {d:+.3f}, Holm p {t.p_holm:.3g}"


def test_the_handlers_notes_do_not_assume_gender(harness_comparison):
    """A gate that is not in the config: no more than 0.5 nats of added stereotype in the notes."""
    gate = GateSpec(rule="no_bias_amplification", task="demo_note_bias", margin=0.5)
    verdict = gate_verdict(candidate(harness_comparison, "balanced-replay"), gate)
    assert verdict.status == "pass", verdict.message
