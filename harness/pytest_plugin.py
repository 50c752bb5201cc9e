"""pytest plugin (entry point `pytest11`): fine-tune regression gates as tests.

    pytest --harness-config configs/demo.yaml [--harness-candidate NAME] [--junit-xml gates.xml]

collects one test per (candidate, gate), e.g. `gate[with-replay::forgetting::non_inferior]`,
that passes and fails as `harness gate` does. The config is validated when pytest starts, before
anything runs; the comparison is computed once per session (from the store, evaluating only
what it lacks). Hand-written tests use the `harness_comparison` fixture; override the
`harness_config_path` fixture (or set `harness_config` in the ini file) to point it at a config.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from harness.comparison import ComparisonResult
from harness.config import GateSpec
from harness.errors import HarnessError
from harness.records import CandidateResult, FlipRecord, GateVerdict

_LOADED = pytest.StashKey["object"]()
_RESULTS = pytest.StashKey[dict]()
WORST_FLIPS = 5


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("harness", "fine-tune regression gates")
    group.addoption("--harness-config", dest="harness_config", default=None, metavar="FILE",
                    help="harness config: collect one test per (candidate, gate) in its `gates:`")
    group.addoption("--harness-candidate", dest="harness_candidate", default=None, metavar="NAME",
                    help="only this candidate's gates")
    parser.addini("harness_config", "config file the harness_comparison fixture uses by default")


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_RESULTS] = {}
    path = config.getoption("harness_config", None)
    if not path:
        return
    from harness.pipeline import load

    try:  # a bad config or gate fails here, at argument parsing, before any model loads
        loaded = load(path, config.getoption("harness_candidate"))
    except HarnessError as e:
        raise pytest.UsageError(f"--harness-config: {e}") from None
    if not loaded.spec.gates:
        raise pytest.UsageError(f"--harness-config: {path} has no `gates:`")
    config.stash[_LOADED] = loaded


def comparison_for(config: pytest.Config, path: Path, candidate: str | None = None) -> ComparisonResult:
    """The comparison of a config, computed once per pytest session."""
    from harness.pipeline import load, run_comparison

    key = (str(Path(path).resolve()), candidate)
    cache = config.stash[_RESULTS]
    if key not in cache:
        loaded = config.stash.get(_LOADED, None)
        if loaded is None or loaded.path.resolve() != Path(path).resolve():
            loaded = load(path, candidate)
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        log = (lambda m: reporter.write_line(f"harness: {m}")) if reporter else (lambda m: None)
        cache[key] = run_comparison(loaded, log=log)
    return cache[key]


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list) -> None:
    # tryfirst: the gate items must exist before -k / -m selection runs
    loaded = config.stash.get(_LOADED, None)
    if loaded is not None:  # genitems reports the collection, so counts and --collect-only see it
        items.extend(session.genitems(GateFile.from_parent(session, path=loaded.path.resolve())))


class GateFile(pytest.File):
    """The config file as a collector of gate items."""

    def collect(self):
        from harness.gates import applies

        loaded = self.config.stash[_LOADED]
        for _, cand, _ in loaded.spec.all_candidates():
            for gate in loaded.spec.gates:
                if applies(gate, cand.name):
                    yield GateItem.from_parent(self, name=f"gate[{cand.name}::{gate.target}::{gate.rule}]",
                                               candidate=cand.name, gate=gate)


def worst_flips(cr: CandidateResult, gate: GateSpec) -> list[FlipRecord]:
    """The items the base got right and the candidate wrong, in the tasks the gate reads (its task,
    summary or role), in the comparison's order; at most WORST_FLIPS."""
    from harness.gates import gate_tasks

    tasks = set(gate_tasks(cr, gate))
    return [f for f in cr.flips if f.task in tasks and f.direction == "to_wrong"][:WORST_FLIPS]


class GateFlagged(UserWarning):
    """A gate that passes on a candidate or task a guard flagged (pytest lists it under warnings)."""


class GateFailed(Exception):
    def __init__(self, verdict: GateVerdict, flips: list):
        super().__init__(verdict.message)
        self.verdict, self.flips = verdict, flips


class GateItem(pytest.Item):
    def __init__(self, *, candidate: str, gate: GateSpec, **kwargs):
        super().__init__(**kwargs)
        self.candidate, self.gate = candidate, gate

    def runtest(self) -> None:
        from harness.gates import gate_verdict, verdict_blocks

        loaded = self.config.stash[_LOADED]
        result = comparison_for(self.config, loaded.path, self.config.getoption("harness_candidate"))
        cr = next(c for c in result.results if c.candidate == self.candidate)
        verdict = gate_verdict(cr, self.gate, result.judge_validation)
        if verdict_blocks(verdict, loaded.spec.underpowered):
            raise GateFailed(verdict, worst_flips(cr, self.gate))
        if verdict.status == "underpowered":
            pytest.skip(f"underpowered (counts as pass in this config): {verdict.message}")
        for flag in verdict.flags:  # a pass that stands on scores a guard calls suspect: said, in the summary
            warnings.warn(GateFlagged(f"{verdict.test_id} passes, flagged: {flag}"), stacklevel=1)

    def repr_failure(self, excinfo, style=None):
        if not isinstance(excinfo.value, GateFailed):
            return super().repr_failure(excinfo, style)
        v, flips = excinfo.value.verdict, excinfo.value.flips
        lines = [
            f"{v.status.upper()}: {v.test_id}",
            f"  estimate  {v.value.estimate:+.4f}",
            f"  interval  [{v.value.low:+.4f}, {v.value.high:+.4f}]   ({v.test})",
            f"  threshold {v.threshold:+.4f}   n={v.n}" + (f"   MDE {v.mde:.4f}" if v.mde is not None else ""),
            f"  {v.message}",
        ]
        if flips:
            lines.append(f"  worst flipped examples (right for base, wrong for {v.candidate}):")
            for f in flips:
                lines.append(f"    [{f.task} #{f.doc_id}] {f.prompt!r}: expected {f.target!r}, base "
                             f"{f.base_response!r}, candidate {f.candidate_response!r}")
        return "\n".join(lines)

    def reportinfo(self):
        return self.path, None, self.name


@pytest.fixture(scope="session")
def harness_config_path(request: pytest.FixtureRequest) -> Path:
    """The config `harness_comparison` uses: --harness-config, else the `harness_config` ini value."""
    path = request.config.getoption("harness_config") or request.config.getini("harness_config")
    if not path:
        pytest.skip("no harness config: pass --harness-config, set `harness_config` in the ini file, "
                    "or override the harness_config_path fixture")
    return Path(path)


@pytest.fixture(scope="session")
def harness_comparison(request: pytest.FixtureRequest, harness_config_path: Path) -> ComparisonResult:
    """The comparison of base and candidates (one evaluation per session, from the store)."""
    try:
        return comparison_for(request.config, harness_config_path, request.config.getoption("harness_candidate"))
    except HarnessError as e:
        pytest.fail(f"harness: {e}", pytrace=False)
