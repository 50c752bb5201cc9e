"""The demo world's planted effects, found by the harness end to end on the full-size world.

This is what `make report` shows: the domain-only candidate learns the task and forgets general
knowledge; replay prevents most of the forgetting; the pronoun skew in the training notes is
amplified in the task's output. The build is shared with `make report` (.harness/demo/, reused
when its content hashes match), so after `make report` this test only evaluates.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import REPO
from harness.cli import main
from harness.compare import ComparisonResult


@pytest.fixture(scope="session")
def demo_world():
    from harness.demo.build import DemoSpec, build_demo

    root = Path(os.environ.get("HARNESS_DEMO_DIR", REPO / ".harness" / "demo"))
    return build_demo(root, DemoSpec(), probe_dir=None, log=print)


def test_planted_effects_are_found(demo_world, tmp_path):
    config = tmp_path / "demo.yaml"
    config.write_text("\n".join([
        "name: demo-test",
        f"base: {{path: {demo_world.base}}}",
        "candidates:",
        *[f"  - {{name: {n}, adapter: {p}}}" for n, p in demo_world.candidates.items()],
        f"suite: {REPO / 'suites' / 'demo.yaml'}",
        f"store: {tmp_path / 'store'}",
        f"report_dir: {tmp_path / 'report'}",
    ]) + "\n")
    run = CliRunner().invoke(main, ["compare", "--config", str(config)])
    assert run.exit_code == 0, run.output
    print(run.output)
    result = ComparisonResult.model_validate_json((tmp_path / "report" / "comparison.json").read_text())
    by = {cr.candidate: cr for cr in result.results}
    domain, replay = by["domain-only"], by["with-replay"]

    target = domain.role("target")
    assert target.ci_low > 0.3, target  # learns the task: +tens of points, interval above zero
    forgetting = domain.role("forgetting")
    assert forgetting.ci_high < -0.1, forgetting  # measurably forgets general knowledge
    replay_forgetting = replay.role("forgetting")
    assert replay_forgetting.ci_low > forgetting.ci_high, (replay_forgetting, forgetting)
    assert replay.role("target").ci_low > 0.3
    note_bias = next(t for t in domain.tasks if t.task == "demo_note_bias")
    assert note_bias.ci_low > 0.5, note_bias  # the skew is amplified in the task's output (nats)
