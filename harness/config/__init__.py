"""Typed, validated specs: what users declare. All defaults live here.

A config file (e.g. `configs/demo.yaml`) names the base model, its candidates, a suite and where
results go (`harness_yaml`: HarnessSpec, load_config). A suite file (e.g. `suites/demo.yaml`) names
lm-eval tasks, each with a role and a primary metric (`suite`: SuiteSpec, load_suite). The models
of a comparison are in `models`, the trainer's settings in `train`, what they share (the base spec,
roles, reading YAML into a spec) in `common`. Relative paths are relative to the file that
contains them. Every problem is reported at once, with the file and key path.

Import from `harness.config`; the modules are how the specs are laid out, not an interface.
"""

from harness.config.common import (
    ROLE_FACTS,
    ROLES,
    Role,
    RoleFacts,
    Spec,
    parse_spec,
    read_yaml,
    resolve_ref,
    role_rank,
)
from harness.config.harness_yaml import (
    EndpointSpec,
    EvalSpec,
    GateRule,
    GateSpec,
    HarnessSpec,
    JudgeEndpointSpec,
    JudgeFallbackSpec,
    JudgeSpec,
    RaySpec,
    RoiSpec,
    StatsSpec,
    VLLMOptions,
    load_config,
)
from harness.config.models import (
    BaseSpec,
    CandidateSpec,
    ModelSpec,
    PromptFormatFields,
    PromptingSpec,
    TaskVariantSpec,
    TokenPriceSpec,
)
from harness.config.suite import DataSpec, SuiteSpec, SummarySpec, TaskSpec, load_suite
from harness.config.tracking import MlflowSpec, TrackingSpec
from harness.config.train import TrainSpec

__all__ = [
    "ROLES", "ROLE_FACTS", "BaseSpec", "CandidateSpec", "DataSpec", "EndpointSpec", "EvalSpec", "GateRule",
    "GateSpec", "HarnessSpec", "JudgeEndpointSpec", "JudgeFallbackSpec", "JudgeSpec", "MlflowSpec", "ModelSpec",
    "PromptFormatFields", "PromptingSpec",
    "RoiSpec", "Role", "RoleFacts", "Spec", "StatsSpec", "SuiteSpec", "SummarySpec", "TaskSpec", "TaskVariantSpec",
    "TokenPriceSpec", "TrackingSpec", "RaySpec",
    "TrainSpec", "VLLMOptions", "load_config", "load_suite", "parse_spec", "read_yaml", "resolve_ref", "role_rank",
]
