"""The LoRA trainer: loss on completions only, replay mixing, clear errors, a useful manifest."""

from __future__ import annotations

import dataclasses
import json

import pytest
from click.testing import CliRunner
from transformers import AutoTokenizer

from harness.cli import main
from harness.config import TrainSpec
from harness.errors import HarnessError
from harness.train.data import IGNORE, encode_pair, read_records
from harness.train.lora import MANIFEST, train_lora


def test_loss_covers_completion_and_eos_only(tiny_world):
    tok = AutoTokenizer.from_pretrained(tiny_world.base)
    ids, labels = encode_pair(tok, "Claim: a fall\nCategory:", " FALL. Done.")
    prompt_ids = tok("Claim: a fall\nCategory:")["input_ids"]
    assert ids[0] == tok.bos_token_id and ids[-1] == tok.eos_token_id
    assert labels[: len(prompt_ids)] == [IGNORE] * len(prompt_ids)
    assert labels[len(prompt_ids):] == ids[len(prompt_ids):]
    assert tok.decode(ids[len(prompt_ids):-1]) == " FALL. Done."


def test_bad_jsonl_line_is_named(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_text('{"prompt": "a", "completion": "b"}\n{"prompt": "a"\n')
    with pytest.raises(HarnessError, match=r"train.jsonl:2: not valid JSON"):
        read_records(path)
    path.write_text('{"prompt": "a", "completion": "b"}\n\n{"prompt": "a", "answer": "b"}\n')
    with pytest.raises(HarnessError, match=r"train.jsonl:3: expected an object with string fields"):
        read_records(path)


def test_training_lowers_loss_and_writes_adapter_and_manifest(tiny_world, tmp_path):
    data = tiny_world.root / "data" / "domain_train.jsonl"
    spec = TrainSpec(base=str(tiny_world.base), data=str(data), out=str(tmp_path / "a"),
                     steps=25, batch_size=8, lr=5e-3)
    manifest = train_lora(spec)
    assert (tmp_path / "a" / "adapter_model.safetensors").is_file()
    assert not list((tmp_path / "a").glob("*.bin"))
    written = json.loads((tmp_path / "a" / MANIFEST).read_text())
    assert written["steps"] == 25 and len(written["loss_curve"]) == 25
    assert written["wall_s"] > 0 and written["tokens"] > written["loss_tokens"] > 0
    assert len(written["data_sha256"]) == 64 and written["replay_sha256"] is None
    first, last = manifest["loss_curve"][:5], manifest["loss_curve"][-5:]
    assert sum(last) / 5 < 0.9 * sum(first) / 5, manifest["loss_curve"]


def test_replay_is_mixed_in_at_the_ratio(tiny_world, tmp_path, monkeypatch):
    """Count the batches' rows that come from replay (their prompt is empty: labels start at 1)."""
    from harness.train import lora

    seen = []
    real_run_loop = lora.run_loop

    def spy(model, optimizer, next_batch, settings, *args, **kwargs):
        for step in range(40):
            (micro,) = next_batch(step).micro
            seen.extend((micro["labels"][:, 1] != IGNORE).tolist())
        return real_run_loop(model, optimizer, next_batch, dataclasses.replace(settings, steps=1), *args, **kwargs)

    monkeypatch.setattr(lora, "run_loop", spy)
    root = tiny_world.root / "data"
    spec = TrainSpec(base=str(tiny_world.base), data=str(root / "domain_train.jsonl"),
                     replay=str(root / "replay.jsonl"), replay_ratio=0.25, out=str(tmp_path / "r"),
                     steps=1, batch_size=32)
    train_lora(spec)
    share = sum(seen) / len(seen)
    assert 0.20 < share < 0.30, share


def test_train_cli(tiny_world, tmp_path):
    data = tiny_world.root / "data" / "domain_train.jsonl"
    result = CliRunner().invoke(main, ["train", "--base", str(tiny_world.base), "--data", str(data),
                                       "--out", str(tmp_path / "cli"), "--steps", "3", "--batch-size", "4"])
    assert result.exit_code == 0, result.output
    assert "train: wrote" in result.output and (tmp_path / "cli" / "adapter_config.json").is_file()
    bad = CliRunner().invoke(main, ["train", "--base", str(tiny_world.base), "--data", str(data),
                                    "--out", str(tmp_path / "x"), "--replay-ratio", "0.5"])
    assert bad.exit_code == 2 and "replay_ratio > 0 needs a replay file" in bad.output
