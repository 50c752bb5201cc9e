"""The `tracking:` section of a config: experiment trackers that get the results of `harness compare`."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from harness.config.common import Spec


class MlflowSpec(Spec):
    """Where `harness compare` logs its runs in MLflow (the `mlflow` extra: pip install 'harness[mlflow]')."""

    uri: str = Field(description="Tracking URI: sqlite:///mlflow.db (a file, relative to this config; MLflow "
                     "without a server) or a tracking server's http(s)://host:port.")
    experiment: str = Field("harness", min_length=1, description="Experiment the runs go into (created if new).")
    artifact_location: str | None = Field(None, description="Where a new experiment keeps its artifacts (the "
                                          "report, comparison.json); relative to this config; default: MLflow's.")


class TrackingSpec(Spec):
    """Experiment trackers that get one run per candidate of every `harness compare`."""

    mlflow: MlflowSpec | None = Field(None, description="Log to MLflow: parameters, every task's scores and paired "
                                      "deltas, gate verdicts as tags, the report as artifacts.")


def local_mlflow(spec: MlflowSpec, here: Path) -> MlflowSpec:
    """A SQLite tracking file and an artifact folder given relative to the config made absolute (MLflow
    reads them relative to the working directory); other URIs as they are."""
    uri = spec.uri
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri[len(prefix):].startswith("/") and uri[len(prefix):] != ":memory:":
        uri = prefix + str((here / uri[len(prefix):]).resolve())
    artifacts = spec.artifact_location
    if artifacts is not None and "://" not in artifacts:
        artifacts = str((here / Path(artifacts).expanduser()).resolve())
    return spec.model_copy(update={"uri": uri, "artifact_location": artifacts})
