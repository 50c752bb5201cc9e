"""The JSON files the harness keeps outside its run store: one versioned record per file, read and
written here only. Writes are atomic (temp file, fsync, rename: a kill leaves the old file or the
new one); a read names the file, the field and what to do when the file is missing, damaged,
written by a newer harness, or of another shape. Older versions are upgraded as they are read.

    train_manifest.json   TrainManifest     what the trainer did, beside the adapter it wrote
    sweep.json            SweepRecord       a `harness sweep`: its recipe and its data-size curve
    trainer_state.json    TrainerState      a resumable checkpoint's progress (beside its tensors)
    build.json            BuildStamps       the demo build's stages: input keys and output hashes
    monitor --json        MonitorResult     `harness monitor`'s verdict
    data check --json     DataCheckResult   `harness data check`'s findings
    comparison.json       ComparisonResult  a comparison, beside its report (harness.comparison: reading
                                            its format 1 needs harness.stats, above this module)

(The run store's manifests are the store's, versioned with its index: harness.store.STORE_FORMAT.)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from pydantic import ConfigDict, Field, ValidationError, model_validator

from harness.config import TrainSpec
from harness.errors import HarnessError
from harness.records import CurveRecord, Estimate, PromptFormatRecord, Record
from harness.util.files import atomic_write
from harness.util.reads import note_read

# the file names (train_manifest.json is harness.records.TRAIN_MANIFEST: compare reads it too)
TRAINER_STATE = "trainer_state.json"
SWEEP = "sweep.json"
BUILD_STAMPS = "build.json"


class PersistedRecord(Record):
    """A record that is a file of its own."""

    # NaN and infinity (a diverged loss) round-trip instead of turning into null
    model_config = ConfigDict(extra="forbid", frozen=True, ser_json_inf_nan="constants")

    VERSION: ClassVar[int] = 1  # the version this harness writes; it reads every one up to it
    UNVERSIONED: ClassVar[int | None] = None  # the version of a file with no `version` (None: not ours)
    WHAT: ClassVar[str] = "file"  # what the file is, for messages
    FIX: ClassVar[str] = "remove it and run again"  # what to do when it cannot be read

    version: int = Field(description="Format version of the file; older ones are upgraded when read.")

    @model_validator(mode="before")
    @classmethod
    def _current_version(cls, data: Any) -> Any:
        """A record made in code is of the current version (a file's version is read_record's to check)."""
        return {"version": cls.VERSION, **data} if isinstance(data, dict) else data

    @classmethod
    def version_of(cls, data: dict) -> Any:
        return data.get("version", cls.UNVERSIONED)

    @classmethod
    def upgrade(cls, data: dict, version: int) -> dict:
        """The fields of a file written in an older `version`, in the current shape."""
        return data


R = TypeVar("R", bound=PersistedRecord)


def write_record(path: Path, record: PersistedRecord) -> None:
    """Write `record` as indented JSON to `path`, atomically."""
    text = record.model_dump_json(indent=1) + "\n"
    atomic_write(Path(path), lambda tmp: tmp.write_text(text, encoding="utf-8"))


def read_record(path: Path, cls: type[R]) -> R:
    """The record in `path`, upgraded to the current version; a HarnessError says what is wrong."""
    path = Path(path)
    if not path.is_file():
        raise HarnessError(f"{path}: no such file (a {cls.WHAT}); {cls.FIX}")
    note_read(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise HarnessError(f"{path}: not valid JSON (line {e.lineno}: {e.msg}), a damaged {cls.WHAT}; "
                           f"{cls.FIX}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise HarnessError(f"{path}: unreadable {cls.WHAT} ({e}); {cls.FIX}") from None
    if not isinstance(data, dict):
        raise HarnessError(f"{path}: expected a JSON object, got {type(data).__name__}; {cls.FIX}")
    version = cls.version_of(data)
    if type(version) is not int or version < 1:
        raise HarnessError(f"{path}: no format version ({version!r}): not a {cls.WHAT} the harness wrote; "
                           f"{cls.FIX}")
    if version > cls.VERSION:
        raise HarnessError(f"{path}: {cls.WHAT} format version {version}, newer than the {cls.VERSION} this "
                           "harness reads; upgrade the harness (it was written by a newer one)")
    data = {**cls.upgrade(dict(data), version), "version": cls.VERSION}
    try:
        return cls.model_validate(data)
    except ValidationError as e:
        problems = []
        for err in e.errors()[:3]:
            where = ".".join(str(p) for p in err["loc"]) or "(top level)"
            msg = "unknown field" if err["type"] == "extra_forbidden" else err["msg"].removeprefix("Value error, ")
            problems.append(f"field '{where}': {msg}")
        more = f" (and {e.error_count() - 3} more)" if e.error_count() > 3 else ""
        raise HarnessError(f"{path}: not a {cls.WHAT} this harness reads: {'; '.join(problems)}{more}; "
                           f"{cls.FIX}") from None


# --------------------------------------------------------------------------- training


class TrainManifest(PersistedRecord):
    """What `harness train` did, written beside the adapter (train_manifest.json)."""

    VERSION: ClassVar[int] = 4
    WHAT: ClassVar[str] = "trainer manifest"
    FIX: ClassVar[str] = "train the adapter again, or remove the file"

    harness_version: str = Field(description="Version of the harness that trained the adapter.")
    torch_version: str = Field(description="torch version it trained with.")
    machine: str = Field(description="platform.machine() of the main process.")
    base: str = Field(description="The base model folder, as given.")
    data_sha256: str = Field(description="sha256 of the training data file.")
    replay_sha256: str | None = Field(description="sha256 of the replay file; None without replay.")
    records: int = Field(description="Training records in the data file.")
    replay_records: int = Field(description="Records in the replay file.")
    spec: TrainSpec = Field(description="The settings it trained with.")
    processes: int = Field(1, description="Training processes (torchrun / accelerate launch).")
    steps: int = Field(description="Optimizer steps.")
    tokens: int = Field(description="Input tokens seen (padding excluded).")
    loss_tokens: int = Field(description="Tokens the loss covered.")
    wall_s: float = Field(description="Training seconds, checkpoints and evaluation excluded.")
    loss_curve: list[float] = Field(description="Mean loss of each step.")
    eval_curve: CurveRecord | None = Field(None, description="The checkpoints scored along training "
                                                             "(--eval-every); None without.")
    reused_from: str | None = Field(None, description="The adapter folder a sweep copied this one from "
                                                      "(same recipe and data); None when trained here.")
    prompt_format: PromptFormatRecord | None = Field(None, description="How its training records were "
                                                     "prompted; None in manifests before version 3.")

    @classmethod
    def upgrade(cls, data: dict, version: int) -> dict:
        # version 1 had no `processes` (one process) nor `eval_curve`, version 2 no `prompt_format`: the
        # defaults. Version 3's prompt format was its own record ({chat, template_sha256, system_prompts}):
        # its template's source is the spec's --chat-template, else the base's tokenizer.
        old = data.get("prompt_format")
        if version == 3 and old is not None:
            source = (data["spec"].get("chat_template") or "tokenizer") if old["chat"] else "none"
            data["prompt_format"] = PromptFormatRecord.of(source, old.get("template_sha256"),
                                                          old.get("system_prompts", [])).model_dump()
        return data

    @property
    def final_loss(self) -> float | None:
        return self.loss_curve[-1] if self.loss_curve else None

    def identity(self) -> dict[str, Any]:
        """What makes this adapter what it is (see TrainSpec.adapter_identity)."""
        hashes = InputHashes(data=self.data_sha256, replay=self.replay_sha256)
        return self.spec.adapter_identity(hashes.inputs(self.spec.base))


class InputHashes(Record):
    """sha256 of a training run's data files."""

    data: str = Field(description="sha256 of the training data file.")
    replay: str | None = Field(None, description="sha256 of the replay file; None without replay.")

    def inputs(self, base: str) -> dict[str, str | None]:
        """TrainSpec.INPUTS as adapter_identity takes them: the base by folder, the data by content."""
        return {"base": base, "data": self.data, "replay": self.replay}


class LoopProgress(Record):
    """The training loop's progress (harness.train.loop.LoopState) at a checkpoint."""

    step: int = Field(description="Steps done.")
    loss_curve: list[float] = Field(description="Mean loss of each step so far.")
    tokens: int = Field(description="Input tokens seen so far.")
    loss_tokens: int = Field(description="Tokens the loss covered so far.")
    wall_s: float = Field(description="Training seconds so far.")


class TrainerState(PersistedRecord):
    """A resumable checkpoint's state beside its adapter and optimizer tensors (trainer_state.json)."""

    VERSION: ClassVar[int] = 2
    WHAT: ClassVar[str] = "checkpoint state"
    FIX: ClassVar[str] = "remove this checkpoint folder (resuming starts from the one before it)"

    loop: LoopProgress = Field(description="Progress: steps, loss curve, tokens, seconds.")
    spec: TrainSpec = Field(description="The settings of the run that wrote it.")
    data_sha256: InputHashes = Field(description="Content of the data files it trained on.")
    order: list[int] = Field(description="Domain records of the current shuffled pass still to come.")
    param_groups: list[dict[str, Any]] = Field(description="AdamW's param_groups (learning rate, betas, "
                                                           "parameter indices).")

    @classmethod
    def version_of(cls, data: dict) -> Any:
        return data.get("version", data.get("format"))  # version 1 called it `format`

    @classmethod
    def upgrade(cls, data: dict, version: int) -> dict:
        data.pop("format", None)
        return data

    def identity(self) -> dict[str, Any]:
        """What makes the adapter the run writes what it is (see TrainSpec.adapter_identity)."""
        return self.spec.adapter_identity(self.data_sha256.inputs(self.spec.base))


class SweepRecord(PersistedRecord):
    """A `harness sweep`: the recipe, the base it fine-tuned, and the data-size curve (sweep.json)."""

    WHAT: ClassVar[str] = "sweep result"
    FIX: ClassVar[str] = "re-run harness sweep, or drop it from `sweeps`"

    base: str = Field(description="The base model folder, as given.")
    base_weights: str = Field(description="Fingerprint of the base's files: a report checks it is its base.")
    eval_config: str = Field(description="The harness config that scored the sizes.")
    spec: TrainSpec = Field(description="The recipe (the largest size's steps).")
    scale_steps: bool = Field(description="Smaller sizes trained proportionally fewer steps.")
    curve: CurveRecord = Field(description="Target gain and forgetting against training records.")


# --------------------------------------------------------------------------- demo build


class StageStamp(Record):
    """One built stage of the demo world."""

    key: str = Field(description="Hash of the stage's inputs (specs, data, source code).")
    files: dict[str, str] = Field(description="Output file -> sha256, as built.")
    wall_s: float = Field(description="Seconds the stage took when it was built.")


class BuildStamps(PersistedRecord):
    """The demo build's record of its stages (build.json in the demo folder)."""

    VERSION: ClassVar[int] = 2
    UNVERSIONED: ClassVar[int | None] = 1  # version 1: the stages at the top level
    WHAT: ClassVar[str] = "demo build record"
    FIX: ClassVar[str] = "remove it (the demo rebuilds what it cannot vouch for)"

    stages: dict[str, StageStamp] = Field(default_factory=dict, description="Stage name -> its stamp.")

    @classmethod
    def upgrade(cls, data: dict, version: int) -> dict:
        return {"stages": data} if version == 1 else data


# --------------------------------------------------------------------------- tools


class MonitorResult(PersistedRecord):
    """`harness monitor`: the deployed candidate on fresh samples, and their drift (--json)."""

    UNVERSIONED: ClassVar[int | None] = 1  # written without a version before it had one
    WHAT: ClassVar[str] = "monitor result"
    FIX: ClassVar[str] = "run harness monitor again"

    candidate: str = Field(description="The deployed candidate.")
    task: str = Field(description="The task the samples belong to.")
    metric: str = Field(description="The task's primary metric.")
    samples: int = Field(description="Samples scored.")
    accepted_n: int = Field(description="Items of the accepted run.")
    paired: bool = Field(description="Scored against the same items (by prompt) instead of independent samples.")
    accepted_score: float = Field(description="Mean metric of the accepted run.")
    new_score: float = Field(description="Mean metric on the samples.")
    change: Estimate = Field(description="New minus accepted score, with its interval.")
    method: str = Field(description="How the interval was computed.")
    drop: bool = Field(description="The whole interval is below zero and the drop is at least max_drop.")
    novelty_reference: float = Field(description="Mean share of unseen word bigrams in held-out training inputs.")
    novelty_new: float = Field(description="Mean share of unseen word bigrams in the samples.")
    novelty_p: float = Field(description="One-sided Mann-Whitney p-value of the samples' higher novelty.")
    drift: bool = Field(description="p < drift_alpha and the novelty rose by at least min_novelty.")
    reasons: list[str] = Field(description="Why a re-fine-tune is due, one line each; empty when none is.")

    @property
    def due(self) -> bool:
        return self.drop or self.drift


class Problem(Record):
    """Lines that share one finding."""

    kind: str = Field(description="invalid, duplicate, near_duplicate, empty, truncated or length_outlier.")
    lines: list[int] = Field(description="1-based line numbers in the checked file.")
    detail: str = Field(description="What was found, in words.")


class ContaminatedPair(Record):
    """A training record that holds most of an evaluation item."""

    line: int = Field(description="Line of the training record.")
    task: str = Field(description="The evaluation task.")
    doc_id: int = Field(description="The item's document id in the task (as in the store's records).")
    overlap: float = Field(description="Share of the item's n-grams found in the training record.")
    item: str = Field(description="The item's text (prompt and answer), as compared.")


class DataCheckResult(PersistedRecord):
    """`harness data check`: the findings on one training file (--json)."""

    WHAT: ClassVar[str] = "data check result"
    FIX: ClassVar[str] = "run harness data check again"

    file: str = Field(description="The checked file.")
    sha256: str = Field(description="Its sha256.")
    records: int = Field(description="Readable records.")
    problems: list[Problem] = Field(description="Findings, by first line.")
    labels: dict[str, int] | None = Field(None, description="Completion -> count, for classification data.")
    words_median: float = Field(description="Median words per record.")
    suite: str | None = Field(None, description="The suite checked for contamination; None: not checked.")
    ngram: int = Field(description="Word n-grams compared for contamination.")
    min_overlap: float = Field(description="Share of an item's n-grams a record must hold to contain it.")
    eval_items: int = Field(0, description="Evaluation items of the suite.")
    contaminated_items: int = Field(0, description="Evaluation items found in the data.")
    contamination: list[ContaminatedPair] = Field(default_factory=list, description="Record/item pairs found.")
    max_contaminated: float = Field(description="Share of evaluation items allowed in the data.")
    passed: bool = Field(description="Contaminated share of eval items at most max_contaminated.")

    def count(self, kind: str) -> int:
        return sum(1 for p in self.problems if p.kind == kind)
