"""Every file the harness persists outside its store is a versioned record: written atomically,
read back equal, older versions still read, and a damaged, newer or foreign file named with what
is wrong with it."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest

from harness.config import TrainSpec
from harness.errors import HarnessError
from harness.persisted import (
    BuildStamps,
    ContaminatedPair,
    DataCheckResult,
    InputHashes,
    LoopProgress,
    MonitorResult,
    Problem,
    StageStamp,
    SweepRecord,
    TrainerState,
    TrainManifest,
    read_record,
    write_record,
)
from harness.records import CurvePoint, CurveRecord, Estimate

SPEC = TrainSpec(base="base", data="train.jsonl", out="out", steps=4, batch_size=8, checkpoint_every=2)
CURVE = CurveRecord(kind="steps", name="v1", best=2, binary_roles=["target"], points=[
    CurvePoint(x=2, candidate="step-000002", roles={"target": Estimate(estimate=0.3, low=0.2, high=0.4)})])


def _manifest(**update) -> TrainManifest:
    fields = dict(harness_version="0.2.0", torch_version="2.13.0", machine="x86_64", base="base",
                  data_sha256="a" * 64, replay_sha256=None, records=10, replay_records=0, spec=SPEC, processes=1,
                  steps=4, tokens=400, loss_tokens=100, wall_s=1.5, loss_curve=[2.0, 1.5, 1.2, 1.0])
    return TrainManifest(**(fields | update))


RECORDS = {
    "train_manifest.json": _manifest(eval_curve=CURVE),
    "sweep.json": SweepRecord(base="base", base_weights="f" * 64, eval_config="harness.yaml", spec=SPEC,
                              scale_steps=True, curve=CURVE.model_copy(update={"kind": "data_size"})),
    "trainer_state.json": TrainerState(
        loop=LoopProgress(step=2, loss_curve=[2.0, 1.5], tokens=200, loss_tokens=50, wall_s=0.7), spec=SPEC,
        data_sha256=InputHashes(data="a" * 64), order=[3, 1, 2],
        param_groups=[{"lr": 0.002, "betas": [0.9, 0.95], "params": [0, 1]}]),
    "build.json": BuildStamps(stages={"base": StageStamp(key="k", files={"config.json": "c" * 64}, wall_s=3.0)}),
    "monitor.json": MonitorResult(
        candidate="v1", task="t", metric="acc", samples=50, accepted_n=100, paired=False, accepted_score=0.8,
        new_score=0.7, change=Estimate(estimate=-0.1, low=-0.2, high=0.0), method="Newcombe", drop=False,
        novelty_reference=0.1, novelty_new=0.12, novelty_p=0.3, drift=False, reasons=[]),
    "check.json": DataCheckResult(
        file="train.jsonl", sha256="b" * 64, records=3, words_median=4.0, ngram=13, min_overlap=0.8,
        max_contaminated=0.0, passed=False, labels={"FALL": 3},
        problems=[Problem(kind="duplicate", lines=[1, 3], detail="the same record 2 times")],
        contamination=[ContaminatedPair(line=2, task="t", doc_id=5, overlap=1.0, item="a claim FALL")]),
}


@pytest.mark.parametrize("name", RECORDS)
def test_each_record_round_trips_through_its_file(tmp_path, name):
    record = RECORDS[name]
    write_record(tmp_path / name, record)
    back = read_record(tmp_path / name, type(record))
    assert back == record and back.version == type(record).VERSION
    assert json.loads((tmp_path / name).read_text())["version"] == type(record).VERSION
    assert [p.name for p in tmp_path.iterdir()] == [name]  # no temporary file left behind


def test_a_diverged_loss_round_trips(tmp_path):
    write_record(tmp_path / "m.json", _manifest(loss_curve=[2.0, math.inf, math.nan]))
    curve = read_record(tmp_path / "m.json", TrainManifest).loss_curve
    assert curve[:2] == [2.0, math.inf] and math.isnan(curve[2])


def test_a_write_that_dies_leaves_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "train_manifest.json"
    write_record(path, _manifest())
    before = path.read_bytes()

    def die(*args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", die)
    with pytest.raises(OSError, match="disk full"):
        write_record(path, _manifest(steps=5))
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == [path.name]


# --------------------------------------------------------------------------- files of older versions

def _old_spec() -> dict:
    """TrainSpec as the trainer of version 1 manifests knew it (fewer fields: the rest are defaults)."""
    return {"base": "base", "data": "train.jsonl", "out": "out", "replay": None, "replay_ratio": 0.0, "steps": 4,
            "batch_size": 8, "lr": 0.002, "warmup_steps": 20, "weight_decay": 0.0, "lora_r": 16, "lora_alpha": 32,
            "lora_dropout": 0.0, "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"], "max_length": 256,
            "seed": 0}


def _old_manifest(version: int) -> dict:
    """A train_manifest.json as the trainer wrote it before the records (json.dumps of a dict)."""
    m = {"version": version, "harness_version": "0.1.0", "torch_version": "2.5.0", "machine": "x86_64",
         "base": "base", "data_sha256": "a" * 64, "replay_sha256": None, "records": 10, "replay_records": 0,
         "spec": _old_spec(), "steps": 4, "tokens": 400, "loss_tokens": 100, "wall_s": 1.5,
         "loss_curve": [2.0, 1.5, 1.2, 1.0]}
    if version >= 2:
        m["spec"] |= {"grad_accum": 1, "chat_template": None, "precision": "auto", "strategy": "ddp",
                      "checkpoint_every": 2, "eval_every": 0, "eval_config": None}
        m |= {"processes": 2, "eval_curve": CURVE.model_dump(), "reused_from": None}
    if version == 3:  # the prompt format as its own record had it
        m["prompt_format"] = {"chat": True, "template_sha256": "t" * 64, "system_prompts": ["Triage claims.", None]}
    return m


@pytest.mark.parametrize("version", [1, 2, 3])
def test_manifests_of_the_trainer_before_the_records_are_read(tmp_path, version):
    path = tmp_path / "train_manifest.json"
    path.write_text(json.dumps(_old_manifest(version), indent=1) + "\n")
    m = read_record(path, TrainManifest)
    assert m.version == TrainManifest.VERSION and m.steps == 4 and m.final_loss == 1.0
    assert m.processes == (1 if version == 1 else 2)
    assert m.eval_curve == (None if version == 1 else CURVE)
    assert m.identity() == _manifest().identity()  # the same adapter, whichever harness wrote it
    if version == 3:  # what the trained format was, as comparison.json's models keep theirs
        fmt = m.prompt_format
        assert fmt.chat and fmt.template_sha256 == "t" * 64 and fmt.system_prompts == ["Triage claims.", None]
        assert fmt.template_source == "tokenizer" and fmt.description == (
            "chat template (the tokenizer's, sha256 tttttttttttt), system prompt 'Triage claims.'")


def test_the_checkpoint_state_of_format_1_is_read(tmp_path):
    old = {"format": 1, "loop": {"step": 2, "loss_curve": [2.0, 1.5], "tokens": 200, "loss_tokens": 50,
                                 "wall_s": 0.7},
           "spec": SPEC.model_dump(), "data_sha256": {"data": "a" * 64, "replay": None}, "order": [3, 1, 2],
           "param_groups": [{"lr": 0.002, "betas": [0.9, 0.95], "params": [0, 1]}]}
    (tmp_path / "trainer_state.json").write_text(json.dumps(old) + "\n")
    assert read_record(tmp_path / "trainer_state.json", TrainerState) == RECORDS["trainer_state.json"]


def test_the_demo_build_record_of_version_1_is_read(tmp_path):
    flat = {"base": {"files": {"config.json": "c" * 64}, "key": "k", "wall_s": 3.0}}
    (tmp_path / "build.json").write_text(json.dumps(flat, indent=1, sort_keys=True) + "\n")
    assert read_record(tmp_path / "build.json", BuildStamps) == RECORDS["build.json"]


def test_a_monitor_result_written_before_it_had_a_version_is_read(tmp_path):
    record = RECORDS["monitor.json"]
    (tmp_path / "m.json").write_text(json.dumps(record.model_dump(exclude={"version"})))
    assert read_record(tmp_path / "m.json", MonitorResult) == record


# --------------------------------------------------------------------------- files that cannot be read

def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(HarnessError, match=r"sweep.json: no such file \(a sweep result\); re-run harness sweep"):
        read_record(tmp_path / "sweep.json", SweepRecord)


def test_a_damaged_file_is_named_with_its_line(tmp_path):
    path = _write(tmp_path / "train_manifest.json", RECORDS["train_manifest.json"].model_dump_json(indent=1)[:200])
    with pytest.raises(HarnessError, match=r"train_manifest.json: not valid JSON \(line \d+: .*\), a damaged trainer "
                                           r"manifest; train the adapter again, or remove the file"):
        read_record(path, TrainManifest)
    with pytest.raises(HarnessError, match=r"train_manifest.json: expected a JSON object, got list"):
        read_record(_write(path, "[1, 2]"), TrainManifest)


def test_a_file_of_a_newer_harness_says_to_upgrade(tmp_path):
    newer = TrainManifest.VERSION + 1
    data = json.loads(RECORDS["train_manifest.json"].model_dump_json()) | {"version": newer}
    path = _write(tmp_path / "train_manifest.json", json.dumps(data))
    with pytest.raises(HarnessError, match=rf"train_manifest.json: trainer manifest format version {newer}, newer "
                                           rf"than the {newer - 1} this harness reads; upgrade the harness"):
        read_record(path, TrainManifest)


@pytest.mark.parametrize("change, field", [
    (lambda d: d.pop("steps"), r"field 'steps': Field required"),
    (lambda d: d["spec"].update(lr="fast"), r"field 'spec.lr': Input should be a valid number"),
    (lambda d: d.update(colour="red"), r"field 'colour': unknown field"),
    (lambda d: d["eval_curve"]["points"][0].update(x="two"), r"field 'eval_curve.points.0.x': Input should be"),
])
def test_a_file_of_another_shape_names_the_field(tmp_path, change, field):
    data = json.loads(RECORDS["train_manifest.json"].model_dump_json())
    change(data)
    path = _write(tmp_path / "train_manifest.json", json.dumps(data))
    with pytest.raises(HarnessError, match=r"train_manifest.json: not a trainer manifest this harness reads: " + field):
        read_record(path, TrainManifest)


def test_a_file_without_a_version_is_not_taken_for_ours(tmp_path):
    data = json.loads(RECORDS["sweep.json"].model_dump_json())
    del data["version"]
    with pytest.raises(HarnessError, match=r"sweep.json: no format version \(None\): not a sweep result"):
        read_record(_write(tmp_path / "sweep.json", json.dumps(data)), SweepRecord)


def test_compare_names_a_sweep_of_a_newer_harness(tmp_path):
    from harness.compare import read_sweep

    data = json.loads(RECORDS["sweep.json"].model_dump_json()) | {"version": 2}
    with pytest.raises(HarnessError, match=r"sweep.json: sweep result format version 2, newer than the 1"):
        read_sweep(_write(tmp_path / "sweep.json", json.dumps(data)), "f" * 64)
