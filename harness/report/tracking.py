"""The comparison logged to MLflow (config `tracking.mlflow`), one run per candidate.

A reader of comparison.json like the HTML report: parameters (base, adapter, suite, prompt format,
fingerprints), metrics (every task's score of the base and the candidate, the paired delta and its
bounds; each role's delta; judged win rates), tags (each gate's verdict, ready or blocked, the guards
that fired) and artifacts (the HTML report and comparison.json). A candidate `harness train` made is
linked to its training: one run per trained adapter (found again by the adapter's fingerprint, so a
second comparison adds no second one) holds the trainer's summary and the evaluation curve along
its steps, and the candidate's evaluation runs are its children.

MLflow is an optional extra, imported only here and only when the config asks for it.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

from harness.comparison import ComparisonResult
from harness.config import MlflowSpec
from harness.errors import HarnessError
from harness.records import CandidateResult
from harness.report.words import gate_state

INSTALL = "pip install 'harness[mlflow]'"
PARAM_CHARS = 6000  # MLflow's longest parameter value
_BATCH = {"metrics": 1000, "params": 100, "tags": 100}  # MLflow's log_batch limits
_KEY = re.compile(r"[^\w\-./ :]")  # what MLflow allows in a metric, parameter or tag name


def require_mlflow():
    """MLflow's client class, or an error saying what to install (checked before anything is evaluated)."""
    try:
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise HarnessError(f"tracking.mlflow: MLflow is not installed; {INSTALL} (or pip install mlflow), or "
                           "remove `tracking.mlflow` from the config") from None
    return MlflowClient


def _key(*parts: str) -> str:
    return _KEY.sub("_", "/".join(parts))


def _experiment(client, spec: MlflowSpec) -> str:
    found = client.get_experiment_by_name(spec.experiment)
    if found is not None:
        return found.experiment_id
    return client.create_experiment(spec.experiment, artifact_location=spec.artifact_location)


def _log(client, run_id: str, metrics=(), params=(), tags=()) -> None:
    """log_batch within MLflow's limits per call."""
    from mlflow.entities import Metric, Param, RunTag

    now = int(time.time() * 1000)
    ms = [Metric(k, float(v), now, step) for k, v, step in metrics if v == v]  # a NaN score is not logged
    ps = [Param(k, str(v)[:PARAM_CHARS]) for k, v in params]
    ts = [RunTag(k, str(v)[:PARAM_CHARS]) for k, v in tags]
    for kind, items in (("metrics", ms), ("params", ps), ("tags", ts)):
        size = _BATCH[kind]
        for i in range(0, len(items), size):
            client.log_batch(run_id, **{kind: items[i:i + size]})


def _metrics(cr: CandidateResult) -> list[tuple[str, float, int]]:
    out = []
    for t in cr.tasks:
        out += [(_key(t.task, "base"), t.base.estimate, 0), (_key(t.task, "candidate"), t.candidate.estimate, 0),
                (_key(t.task, "delta"), t.delta.estimate, 0), (_key(t.task, "delta_low"), t.delta.low, 0),
                (_key(t.task, "delta_high"), t.delta.high, 0)]
    for r in [*cr.roles, *cr.summaries]:
        name = getattr(r, "name", r.role)
        out += [(_key("role", name, "delta"), r.delta.estimate, 0), (_key("role", name, "delta_low"), r.delta.low, 0),
                (_key("role", name, "delta_high"), r.delta.high, 0)]
    for j in cr.judged:
        out += [(_key("judged", j.task, "win_rate"), j.win_rate.estimate, 0),
                (_key("judged", j.task, "win_rate_low"), j.win_rate.low, 0),
                (_key("judged", j.task, "win_rate_high"), j.win_rate.high, 0)]
    return out


def _training_run(client, experiment: str, result: ComparisonResult, cr: CandidateResult) -> str | None:
    """The run of the candidate's training (its trainer manifest's summary, its curve along steps), made
    once per trained adapter; None for a candidate no `harness train` wrote."""
    model = next(m for m in result.candidates if m.label == cr.candidate)
    if not model.training:
        return None
    found = client.search_runs([experiment], filter_string=f"tags.`harness.adapter_fingerprint` = "
                               f"'{model.fingerprint}' and tags.`harness.kind` = 'training'", max_results=1)
    if found:
        return found[0].info.run_id
    run = client.create_run(experiment, run_name=f"{cr.candidate} (training)", tags={
        "harness.kind": "training", "harness.adapter_fingerprint": model.fingerprint, "harness.adapter": model.source})
    curve = next((c for c in result.curves if c.kind == "steps" and c.name == cr.candidate), None)
    points = [] if curve is None else [(_key(role, "delta"), e.estimate, p.x) for p in curve.points
                                       for role, e in p.roles.items()]
    _log(client, run.info.run_id, params=[(_key("train", k), v) for k, v in model.training.items()],
         metrics=[(_key("train", k), v, 0) for k, v in model.training.items() if isinstance(v, int | float)] + points)
    client.set_terminated(run.info.run_id)
    return run.info.run_id


def log_mlflow(result: ComparisonResult, spec: MlflowSpec, report: Path) -> list[str]:
    """One MLflow run per fine-tune of the comparison; returns their run ids. `report`: the index.html
    written beside comparison.json (both are logged as artifacts)."""
    client = require_mlflow()(tracking_uri=spec.uri)
    try:
        experiment = _experiment(client, spec)
    except Exception as e:  # MLflow's own errors: a bad URI, an unreachable server, a read-only file
        raise HarnessError(f"tracking.mlflow: cannot open experiment '{spec.experiment}' at {spec.uri} "
                           f"({type(e).__name__}: {str(e)[:300]}); check tracking.mlflow.uri") from None
    ids = []
    for cr in (r for r in result.results if r.kind == "fine-tune"):
        base = next(m for m in [result.base, *result.candidates] if m.label == cr.reference)
        model = next(m for m in result.candidates if m.label == cr.candidate)
        parent = _training_run(client, experiment, result, cr)
        tags = {"harness.kind": "evaluation", "harness.comparison": result.name, "harness.candidate": cr.candidate,
                "harness.gates": gate_state(result, cr.candidate)}
        if parent is not None:
            tags |= {"mlflow.parentRunId": parent, "harness.training_run_id": parent}
        run = client.create_run(experiment, run_name=f"{result.name}: {cr.candidate}", tags=tags)
        run_id = run.info.run_id
        verdicts = [v for v in result.gates if v.candidate == cr.candidate]
        flags = [*cr.flags, *(f for t in cr.tasks for f in t.flags)]
        _log(client, run_id, metrics=_metrics(cr),
             params=[("base", base.source), ("adapter", model.source), ("suite", result.suite),
                     ("prompt_format", model.prompt_format.description), ("base_fingerprint", base.fingerprint),
                     ("candidate_fingerprint", model.fingerprint), ("suite_hash", result.suite_hash),
                     ("harness_version", result.harness_version), ("confidence", result.confidence)],
             tags=[(_key("gate", v.gate), v.status) for v in verdicts]
             + ([("harness.flags", "; ".join(flags))] if flags else []))
        for path in (report, report.parent / "comparison.json"):
            if path.is_file():
                client.log_artifact(run_id, str(path))
        client.set_terminated(run_id)
        ids.append(run_id)
    return ids
