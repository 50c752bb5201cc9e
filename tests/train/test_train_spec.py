"""TrainSpec is the one place of the trainer's settings: `harness train` and `harness sweep` take
their options from its fields (names, types, defaults, help), and what makes an adapter what it is
is declared on it once, for a resume, a sweep's reuse and the demo build's cache alike."""

from __future__ import annotations

import re
import types

import click
import pytest
from click.testing import CliRunner

from harness.cli import main
from harness.config import TrainSpec
from harness.persisted import TrainManifest, write_record
from harness.records import TRAIN_MANIFEST

# The options the README and the tests use: they keep working.
DOCUMENTED = ["--base", "--data", "--out", "--replay", "--replay-ratio", "--steps", "--batch-size", "--grad-accum",
              "--lr", "--lora-r", "--lora-alpha", "--max-length", "--seed", "--chat-template", "--precision",
              "--strategy", "--checkpoint-every", "--eval-every", "--eval-config"]
SWEEP_ONLY = {"sizes", "sweep_eval_config", "fixed_steps"}
SWEEP_SKIPS = {"checkpoint_every", "eval_every", "eval_config"}


def _options(command: str) -> dict[str, click.Option]:
    return {p.name: p for p in main.commands[command].params if isinstance(p, click.Option)}


@pytest.mark.parametrize("command, skipped, extra", [("train", set(), {"resume"}),
                                                     ("sweep", SWEEP_SKIPS, SWEEP_ONLY)])
def test_the_options_are_trainspecs_fields_with_its_defaults(command, skipped, extra):
    options = _options(command)
    assert set(options) - {"help"} == (set(TrainSpec.model_fields) - skipped) | extra
    for name, field in TrainSpec.model_fields.items():
        if name in skipped:
            continue
        option = options[name]
        default = None if field.is_required() else field.get_default(call_default_factory=True)
        assert option.default == default, f"--{name}: the CLI has a default of its own"
        assert option.required == field.is_required()
        assert option.help.startswith(field.description if name != "out" or command == "train" else "Folder for")


def test_help_shows_every_option_with_trainspecs_default_and_help():
    out = CliRunner().invoke(main, ["train", "--help"], terminal_width=200).output
    entries = {e.split()[0]: " ".join(e.split()) for e in re.split(r"\n  (?=--)", out.split("Options:")[1])
               if e.strip()}
    assert set(DOCUMENTED) <= set(entries), out
    for name, field in TrainSpec.model_fields.items():
        line = entries[f"--{name.replace('_', '-')}"]
        assert field.description in line, line
        if not field.is_required() and field.default is not None:
            shown = ", ".join(field.default_factory()) if field.default_factory else str(field.default)
            assert f"[default: {shown}]" in line, line


def test_the_options_reach_the_spec(monkeypatch, tmp_path):
    """Nothing given: TrainSpec's own defaults; every option given reaches its field."""
    from harness.train import lora

    seen = []

    def train_lora(spec, log=None, resume=False):
        seen.append(spec)
        return types.SimpleNamespace(wall_s=1.0, steps=spec.steps, tokens=1, final_loss=0.5)

    monkeypatch.setattr(lora, "train_lora", train_lora)
    required = ["train", "--base", "b", "--data", "d.jsonl", "--out", str(tmp_path)]
    assert CliRunner().invoke(main, required).exit_code == 0
    assert seen[-1] == TrainSpec(base="b", data="d.jsonl", out=str(tmp_path))
    run = CliRunner().invoke(main, [*required, "--target-modules", "q_proj", "--target-modules", "v_proj",
                                    "--lora-dropout", "0.1", "--warmup-steps", "3", "--precision", "no"])
    assert run.exit_code == 0, run.output
    assert seen[-1].target_modules == ["q_proj", "v_proj"] and seen[-1].lora_dropout == 0.1
    assert seen[-1].warmup_steps == 3 and seen[-1].precision == "no"
    bad = CliRunner().invoke(main, [*required, "--steps", "0"])
    assert bad.exit_code == 2 and "harness train: steps: Input should be greater than or equal to 1" in bad.output


# --------------------------------------------------------------------------- what an adapter is

SPEC = TrainSpec(base="base", data="train.jsonl", out="out")
INPUTS = {"base": "base", "data": "a" * 64, "replay": None}
OTHER = {"out": "elsewhere", "checkpoint_every": 5, "eval_every": 5, "eval_config": "h.yaml", "grad_accum": 4,
         "strategy": "fsdp", "replay_ratio": 0.1, "steps": 7, "batch_size": 4, "lr": 1e-3, "warmup_steps": 2,
         "weight_decay": 0.1, "lora_r": 4, "lora_alpha": 8, "lora_dropout": 0.1, "target_modules": ["q_proj"],
         "layers": [1], "max_length": 64, "seed": 1, "chat_template": "t.jinja", "precision": "no",
         "base": "other", "data": "other.jsonl", "replay": "r.jsonl"}


def test_every_setting_but_the_run_only_ones_makes_another_adapter():
    assert set(OTHER) == set(TrainSpec.model_fields)
    for name, value in OTHER.items():
        if name in TrainSpec.INPUTS:
            continue  # the files count by the identity the caller gives them
        changed = SPEC.model_copy(update={name: value}).adapter_identity(INPUTS)
        assert (changed == SPEC.adapter_identity(INPUTS)) == (name in TrainSpec.RUN_ONLY), name
    for name in TrainSpec.INPUTS:
        assert SPEC.adapter_identity(INPUTS | {name: "other"}) != SPEC.adapter_identity(INPUTS), name


def _trained(folder, spec: TrainSpec, data_sha256: str):
    folder.mkdir(parents=True)
    (folder / "adapter_model.safetensors").write_bytes(b"weights")
    write_record(folder / TRAIN_MANIFEST, TrainManifest(
        harness_version="x", torch_version="x", machine="x", base=spec.base, data_sha256=data_sha256,
        replay_sha256=None, records=2, replay_records=0, spec=spec, steps=spec.steps, tokens=1, loss_tokens=1,
        wall_s=1.0, loss_curve=[1.0]))
    return folder


def test_a_sweep_reuses_an_adapter_of_the_same_identity_only(tmp_path):
    from harness.train.lora import adapter_identity, input_hashes
    from harness.train.sweep import _same_training

    data = tmp_path / "train.jsonl"
    data.write_text('{"prompt": "a", "completion": "b"}\n')
    spec = TrainSpec(base="base", data=str(data), out=str(tmp_path / "new"), steps=4)
    done = _trained(tmp_path / "done", spec.model_copy(update={"out": "x", "grad_accum": 2, "checkpoint_every": 2,
                                                               "data": "a copy of the same data.jsonl"}),
                    input_hashes(spec).data)
    assert _same_training(done, adapter_identity(spec)) is not None
    assert _same_training(done, adapter_identity(spec.model_copy(update={"lr": 1e-3}))) is None
    data.write_text('{"prompt": "a", "completion": "c"}\n')
    assert _same_training(done, adapter_identity(spec)) is None


def test_the_demo_keys_a_candidate_by_its_adapter_and_not_by_where_its_base_lies(tmp_path):
    from harness.demo.build import _adapter_key

    data = tmp_path / "train.jsonl"
    data.write_text('{"prompt": "a", "completion": "b"}\n')
    one = TrainSpec(base="/a/base", data=str(data), out="/a/out")
    moved = one.model_copy(update={"base": "/b/base", "out": "/b/out", "grad_accum": 2})
    assert _adapter_key(one, "K") == _adapter_key(moved, "K")
    assert _adapter_key(one, "K") != _adapter_key(one, "another base")
    assert _adapter_key(one, "K") != _adapter_key(one.model_copy(update={"steps": 5}), "K")


def test_a_resume_for_another_adapter_is_refused_naming_what_differs(tmp_path):
    """Checked before any weight is touched: the checkpoint's identity against the run's."""
    from harness.errors import HarnessError
    from harness.persisted import TRAINER_STATE, InputHashes, LoopProgress, TrainerState
    from harness.train.checkpoint import load_checkpoint

    spec = TrainSpec(base="base", data="train.jsonl", out="out", steps=4, checkpoint_every=2)
    hashes = InputHashes(data="a" * 64)
    folder = tmp_path / "step-000002"
    write_record(folder / TRAINER_STATE, TrainerState(
        loop=LoopProgress(step=2, loss_curve=[1.0, 0.9], tokens=2, loss_tokens=1, wall_s=0.1), spec=spec,
        data_sha256=hashes, order=[], param_groups=[]))
    for update, named in [({"lr": 1e-3}, "lr"), ({"seed": 1, "steps": 8}, "seed, steps"),
                          ({"base": "other"}, "base")]:
        with pytest.raises(HarnessError, match=rf"step-000002: written by a run with other settings \({named}\)"):
            load_checkpoint(folder, None, None, None, spec.model_copy(update=update), hashes)
    with pytest.raises(HarnessError, match=r"other settings \(data \(its content\)\)"):
        load_checkpoint(folder, None, None, None, spec.model_copy(update={"data": "moved.jsonl"}),
                        InputHashes(data="b" * 64))
