"""A suite file (e.g. `suites/demo.yaml`): lm-eval tasks, each with a role and a primary metric,
summaries of them, and the suites it includes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, model_validator

from harness.config.common import Role, Spec, parse_spec, read_yaml, refuse_duplicates
from harness.errors import ConfigError


class DataSpec(Spec):
    """Local files to read a task's documents from instead of the hub."""

    format: str = Field(description="How the files are laid out: arc_jsonl, hellaswag_txt, winogrande_csv, "
                                    "mmlu_csv, boolq_jsonl, piqa_jsonl, gsm8k_jsonl, crows_pairs_csv, bbq, "
                                    "winobias_txt, stereoset_csv, or jsonl (already in the task's schema).")
    path: str = Field(description="File or folder, relative to the suite file.")


class TaskSpec(Spec):
    """One lm-eval task of a suite, with the role it plays and the metric that decides."""

    task: str = Field(description="lm-eval task name (from the suite's task folders or lm-eval).")
    role: Role
    metric: str = Field(description="Primary per-item metric, e.g. acc or bias_score.")
    extra_metrics: list[str] = Field(default_factory=list, description="More per-item metrics to report "
                                     "with paired intervals (not gated), e.g. BBQ's acc beside its bias score.")
    filter: str = Field("none", description="lm-eval filter whose output the metric scores.")
    cluster: str | None = Field(
        None, description="Document field whose items are correlated (template, passage): "
                          "intervals and tests then use cluster-robust standard errors.")
    category: str | None = Field(
        None, description="Document field to break results down by (e.g. a bias category).")
    subset: int | None = Field(
        None, ge=1, description="Score a fixed random subset of this many items (per lm-eval task) "
                                "instead of all: CI-sized runs of large benchmarks.")
    subset_seed: int = Field(0, description="Seed of the subset's draw.")
    data: DataSpec | None = Field(None, description="Read the documents from local files.")
    overrides: dict[str, Any] = Field(default_factory=dict, description="lm-eval task config keys to "
                                      "override, e.g. {generation_kwargs: {max_gen_toks: 64}}.")


class SummarySpec(Spec):
    """A named average of several suite entries of one role, e.g. the forgetting average of
    Biderman et al. (2024) over HellaSwag, ARC-Challenge and WinoGrande."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    description: str = ""
    tasks: list[str] = Field(min_length=2, description="Suite entries averaged, each weighing the same.")


class SuiteSpec(Spec):
    """A set of tasks with roles, loaded from a suite YAML file."""

    name: str
    description: str = ""
    include: list[str] = Field(default_factory=list, description="Other suite files whose tasks and "
                               "summaries this suite adds (relative to this file), e.g. forgetting.yaml.")
    task_dirs: list[str] = Field(
        default_factory=lambda: ["tasks"],
        description="Folders with lm-eval task YAML, relative to the suite file.")
    tasks: list[TaskSpec] = Field(default_factory=list)
    summaries: list[SummarySpec] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self) -> SuiteSpec:
        if not self.tasks and not self.include:
            raise ValueError("a suite needs `tasks` (or `include` of another suite)")
        refuse_duplicates("task listed twice", [t.task for t in self.tasks])
        refuse_duplicates("summary listed twice", [s.name for s in self.summaries])
        return self

    def default_target(self) -> str | None:
        """The task read when none is named (ROI, monitor): the suite's first target task; None without one."""
        return next((t.task for t in self.tasks if t.role == "target"), None)


def load_suite(path: str | Path, _seen: tuple[Path, ...] = ()) -> SuiteSpec:
    """Load and validate a suite file with the suites it includes; `task_dirs` and data paths in
    the result are absolute."""
    path = Path(path)
    if path.resolve() in _seen:
        raise ConfigError([f"{path}: include: the suite includes itself (through {_seen[-1]})"])
    spec = parse_spec(SuiteSpec, read_yaml(path), str(path))
    here = path.resolve().parent
    dirs = [str((here / d).resolve()) for d in spec.task_dirs]
    if "task_dirs" not in spec.model_fields_set:  # the default folder is optional
        dirs = [d for d in dirs if Path(d).is_dir()]
    missing = [f"{path}: task_dirs: folder {d} does not exist" for d in dirs if not Path(d).is_dir()]
    included_tasks, summaries = [], []
    for i, inc in enumerate(spec.include):
        inc_path = here / inc
        if not inc_path.is_file():
            missing.append(f"{path}: include[{i}]: suite file {inc_path.resolve()} does not exist")
            continue
        sub = load_suite(inc_path, (*_seen, path.resolve()))
        dirs += [d for d in sub.task_dirs if d not in dirs]
        included_tasks += sub.tasks
        summaries += sub.summaries
    tasks = list(included_tasks)
    for i, t in enumerate(spec.tasks):
        if t.data is not None:
            data_path = (here / t.data.path).resolve()
            if not data_path.exists():
                missing.append(f"{path}: tasks[{i}].data.path: {data_path} does not exist")
            t = t.model_copy(update={"data": t.data.model_copy(update={"path": str(data_path)})})
        tasks.append(t)
    summaries += spec.summaries
    names = [t.task for t in tasks]
    missing += [f"{path}: task '{n}' is listed twice (here and in an included suite); keep one"
                for n in sorted({n for n in names if names.count(n) > 1})]
    roles = {t.task: t.role for t in tasks}
    for sm in summaries:
        unknown = [t for t in sm.tasks if t not in roles]
        if unknown:
            missing.append(f"{path}: summaries: '{sm.name}' names {', '.join(unknown)}, not tasks of the suite")
        elif len({roles[t] for t in sm.tasks}) > 1:
            missing.append(f"{path}: summaries: '{sm.name}' mixes roles "
                           f"({', '.join(sorted({roles[t] for t in sm.tasks}))}); average tasks of one role")
    snames = [sm.name for sm in summaries]
    missing += [f"{path}: summary '{n}' is defined twice (here and in an included suite)"
                for n in sorted({n for n in snames if snames.count(n) > 1})]
    if missing:
        raise ConfigError(missing)
    return spec.model_copy(update={"task_dirs": dirs, "tasks": tasks, "summaries": summaries, "include": []})
