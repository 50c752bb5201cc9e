"""The LoRA trainer: loss on completions only, replay mixing, clear errors, a useful manifest."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re

import pytest
from click.testing import CliRunner
from transformers import AutoTokenizer

from harness.cli import main
from harness.config import TrainSpec
from harness.errors import HarnessError
from harness.persisted import TrainManifest, read_record
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
    # byte-stable across processes (peft keeps target_modules as a set; its order follows the hash seed)
    config = json.loads((tmp_path / "a" / "adapter_config.json").read_text())
    assert config["target_modules"] == sorted(spec.target_modules)
    first, last = manifest.loss_curve[:5], manifest.loss_curve[-5:]
    assert sum(last) / 5 < 0.9 * sum(first) / 5, manifest.loss_curve
    assert read_record(tmp_path / "a" / MANIFEST, TrainManifest) == manifest


def test_runs_in_one_process_may_change_precision(tiny_world, tmp_path):
    """accelerate keeps one mixed precision per process: a float32 run, a bf16 run, a float32 run
    again (a sweep, the real world's candidates, an API user) each train as asked."""
    data = tiny_world.root / "data" / "domain_train.jsonl"
    losses = []
    for i, precision in enumerate(("no", "bf16", "no")):
        spec = TrainSpec(base=str(tiny_world.base), data=str(data), out=str(tmp_path / f"a{i}"), steps=2,
                         batch_size=4, warmup_steps=0, precision=precision)
        losses.append(train_lora(spec).loss_curve)
    assert losses[0] == losses[2] and losses[1] != losses[0]


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


# --------------------------------------------------------------------------- chat records

CHAT_TEMPLATE = ("{{ bos_token }}{% for m in messages %}{% if m['role'] == 'assistant' %}Agent: {{ m['content'] }}"
                 "{{ eos_token }}\n{% else %}{{ m['role'] }}: {{ m['content'] }}\n{% endif %}{% endfor %}"
                 "{% if add_generation_prompt %}Agent:{% endif %}")


def _chat_file(tiny_world, tmp_path, n: int = 200):
    """The demo's claims as two-turn conversations: a system line, the claim, the category."""
    rows = [json.loads(line) for line in (tiny_world.root / "data" / "domain_train.jsonl").read_text().splitlines()]
    path = tmp_path / "chat.jsonl"
    with path.open("w") as f:
        for r in rows[:n]:
            f.write(json.dumps({"messages": [
                {"role": "system", "content": "Triage insurance claims."},
                {"role": "user", "content": r["prompt"]},
                {"role": "assistant", "content": r["completion"].strip()},
                {"role": "user", "content": "Sure?"},
                {"role": "assistant", "content": "Yes."}]}) + "\n")
    template = tmp_path / "chat.jinja"
    template.write_text(CHAT_TEMPLATE)
    return path, template


def test_chat_records_learn_the_assistant_turns_only(tiny_world, tmp_path):
    from harness.train.data import encode_chat

    tok = AutoTokenizer.from_pretrained(tiny_world.base)
    tok.chat_template = CHAT_TEMPLATE
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "A fall at work."},
                {"role": "assistant", "content": "FALL"}, {"role": "user", "content": "Sure?"},
                {"role": "assistant", "content": "Yes."}]
    ids, labels = encode_chat(tok, messages, "x:1")
    assert tok.decode(ids) == tok.apply_chat_template(messages, tokenize=False)
    learned = tok.decode([t for t, lab in zip(ids, labels, strict=True) if lab != IGNORE])
    assert learned.replace(" ", "") == "FALL</s>\nYes.</s>\n".replace(" ", ""), learned
    assert "Be brief" not in learned and "fall at work" not in learned and "Sure" not in learned


def test_chat_data_trains(tiny_world, tmp_path):
    data, template = _chat_file(tiny_world, tmp_path)
    manifest = train_lora(TrainSpec(base=str(tiny_world.base), data=str(data), out=str(tmp_path / "chat"),
                                    chat_template=str(template), steps=25, batch_size=8, lr=5e-3))
    curve = manifest.loss_curve
    assert sum(curve[-5:]) / 5 < 0.9 * sum(curve[:5]) / 5, curve
    assert manifest.records == 200 and (tmp_path / "chat" / "adapter_model.safetensors").is_file()


@pytest.mark.parametrize("line, message", [
    ('{"messages": [{"role": "user", "content": "hi"}, {"role": "bot", "content": "x"}]}',
     r"chat.jsonl:3: messages\[1\] must be an object with 'role' \(one of system, user, assistant, tool\)"),
    ('{"messages": [{"role": "user", "content": "hi"}]}', r"chat.jsonl:3: no non-empty assistant message"),
    ('{"messages": "hello"}', r"chat.jsonl:3: 'messages' must be a non-empty list"),
    ('{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant"}]}',
     r"chat.jsonl:3: messages\[1\] must be an object with 'role'"),
])
def test_malformed_chat_line_is_named_by_the_cli(tiny_world, tmp_path, line, message):
    data, template = _chat_file(tiny_world, tmp_path, n=2)
    data.write_text(data.read_text() + line + "\n")
    run = CliRunner().invoke(main, ["train", "--base", str(tiny_world.base), "--data", str(data), "--out",
                                    str(tmp_path / "out"), "--chat-template", str(template), "--steps", "1"])
    assert run.exit_code == 2, run.output
    assert re.search(message, run.output), run.output
    assert not (tmp_path / "out").exists()


def test_chat_records_without_a_template_say_what_to_pass(tiny_world, tmp_path):
    data, _ = _chat_file(tiny_world, tmp_path, n=2)
    with pytest.raises(HarnessError, match=r"chat.jsonl:1: a chat record, but the tokenizer has no chat "
                                           r"template; pass --chat-template"):
        train_lora(TrainSpec(base=str(tiny_world.base), data=str(data), out=str(tmp_path / "o"), steps=1))


def test_the_manifest_records_the_prompt_format_and_compare_warns_of_a_mismatch(tiny_world, tiny_config, tmp_path):
    """Trained on chat records with a template and a system line, evaluated in plain text: the
    compare output and the report say so; evaluated in its training format: no warning."""
    import yaml

    from harness.pipeline import load, run_comparison
    from harness.report.render import render_report

    data, template = _chat_file(tiny_world, tmp_path, n=40)
    manifest = train_lora(TrainSpec(base=str(tiny_world.base), data=str(data), out=str(tmp_path / "chat"),
                                    chat_template=str(template), steps=2, batch_size=8, lr=5e-3))
    fmt = manifest.prompt_format
    assert fmt.chat and fmt.system_prompts == ["Triage insurance claims."]
    assert fmt.template_sha256 == hashlib.sha256(CHAT_TEMPLATE.encode()).hexdigest()
    plain = train_lora(TrainSpec(base=str(tiny_world.base), data=str(tiny_world.root / "data" / "domain_train.jsonl"),
                                 out=str(tmp_path / "plain"), steps=1, batch_size=8))
    assert plain.prompt_format.chat is False and plain.prompt_format.template_sha256 is None

    config = tiny_config({"chat": tmp_path / "chat"}, limit=12)
    logs = []
    result = run_comparison(load(config), log=logs.append)
    warning = next(line for line in logs if "WARNING" in line)
    assert "chat: trained on chat records (chat template sha256 " in warning and "plain-text prompts" in warning
    assert result.candidates[0].warnings and "Warning:</b> chat: trained on chat records" in \
        render_report(result, tmp_path / "report").read_text()

    # evaluated as it was trained: the template and the system line; nothing to warn of
    data_yaml = yaml.safe_load(config.read_text())
    data_yaml["candidates"][0] |= {"chat_template": str(template), "system_prompt": "Triage insurance claims."}
    config.write_text(yaml.safe_dump(data_yaml))
    logs = []
    result = run_comparison(load(config), log=logs.append)
    assert not [line for line in logs if "WARNING" in line] and result.candidates[0].warnings == []
    # another system prompt than the one trained with is named
    data_yaml["candidates"][0]["system_prompt"] = "Be brief."
    config.write_text(yaml.safe_dump(data_yaml))
    logs = []
    run_comparison(load(config), log=logs.append)
    assert any("chat: evaluated with system prompt 'Be brief.' but trained with 'Triage insurance claims.'" in line
               for line in logs), logs


def test_the_loss_on_completions_alone_is_the_models_own_from_their_logits_only(tiny_world):
    """Where the loss covers some positions only, the trainer computes the logits there alone
    (loop.micro_loss): the model's own loss and gradients, up to the order of float32 sums."""
    import torch
    from transformers import AutoModelForCausalLM

    from conftest import logprob_tolerance
    from harness.train.loop import micro_loss

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(tiny_world.base, dtype=torch.float32)
    ids = torch.randint(5, 500, (3, 24))
    mask = torch.ones_like(ids)
    mask[2, 18:] = 0  # a shorter row, padded
    labels = torch.full_like(ids, IGNORE)
    labels[0, 20:], labels[1, 15:18], labels[2, 16:18] = ids[0, 20:], ids[1, 15:18], ids[2, 16:18]
    micro = {"input_ids": ids, "attention_mask": mask, "labels": labels}
    n = int((labels[:, 1:] != IGNORE).sum())

    def loss_and_grads(fn):
        model.zero_grad()
        loss = fn()
        loss.backward()
        return loss.item(), [p.grad.clone() for p in model.parameters()]

    own, own_grads = loss_and_grads(lambda: model(**micro, num_items_in_batch=n).loss)
    ours, our_grads = loss_and_grads(lambda: micro_loss(model, micro, n))
    assert abs(ours - own) <= logprob_tolerance(tiny_world.base, own * n, context=24, tokens=n) / n
    # a gradient element carries a relative rounding error of at most g (conftest.adam_tolerance: the
    # chain behind each token's log-probability and the sum over the batch's tokens), on both sides
    g = logprob_tolerance(tiny_world.base, 1.0, context=24, tokens=n)
    for a, b in zip(own_grads, our_grads, strict=True):  # each a sum over the same terms, regrouped
        assert float((a - b).abs().max()) <= 2 * g * float(a.abs().max())
    full = labels.clone()
    full[:, 1:] = ids[:, 1:]  # every position: the model's own loss, as it is
    assert micro_loss(model, {**micro, "labels": full}, 3 * 23).item() == \
        model(**{**micro, "labels": full}, num_items_in_batch=3 * 23).loss.item()


def test_lora_on_chosen_layers_only(tiny_world, tmp_path):
    """--layers: LoRA weights on those decoder layers alone; the others stay the base's."""
    from safetensors import safe_open

    out = tmp_path / "upper"
    run = CliRunner().invoke(main, ["train", "--base", str(tiny_world.base), "--data",
                                    str(tiny_world.root / "data" / "domain_train.jsonl"), "--out", str(out),
                                    "--steps", "2", "--batch-size", "4", "--layers", "1"])
    assert run.exit_code == 0, run.output
    with safe_open(out / "adapter_model.safetensors", "pt") as f:
        layers = {int(re.search(r"layers\.(\d+)\.", k).group(1)) for k in f.keys()}
    assert layers == {1}
    assert json.loads((out / "adapter_config.json").read_text())["layers_to_transform"] == [1]
