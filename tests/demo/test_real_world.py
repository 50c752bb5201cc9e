"""The real-model world (`make report-real`): SmolLM2-135M-Instruct fine-tuned on chat records of the
demo's triage, cached by content, and configs/real.yaml run end to end on it (sized down: two
training steps, three items per task), every model in its chat format."""

from __future__ import annotations

import json

import pytest
import yaml

from conftest import REPO
from harness.demo.real import REPLAY_PROMPT, RealSpec, build_real
from harness.pipeline import load, run_comparison

pytestmark = pytest.mark.e2e  # a real 135M model: trains and scores on 2 cores


def test_the_real_world_trains_on_chat_records_and_its_config_scores_every_arm_in_chat_format(smollm2, tiny_world,
                                                                                             tmp_path):
    spec = RealSpec(records=16, replay_records=16, steps=2, batch_size=4, warmup_steps=0)
    logs: list[str] = []
    built = build_real(tmp_path / "real", smollm2.parent, spec, log=logs.append)
    first = json.loads((built.root / "data" / "domain_chat.jsonl").read_text().splitlines()[0])
    user, assistant = first["messages"]
    assert user["role"] == "user" and user["content"].startswith("Claim: ") and user["content"].endswith("\nCategory:")
    assert assistant["role"] == "assistant" and assistant["content"].split(".")[0] in {"FALL", "STRAIN", "BURN",
                                                                                      "CUT", "DENY"}
    replay = json.loads((built.root / "data" / "replay_chat.jsonl").read_text().splitlines()[0])
    assert replay["messages"][0]["content"] == REPLAY_PROMPT
    for name in ("domain-only", "balanced-replay"):
        manifest = json.loads((built.candidates[name] / "train_manifest.json").read_text())
        assert manifest["prompt_format"]["template_sha256"] is not None and manifest["steps"] == 2  # chat
    again = build_real(tmp_path / "real", smollm2.parent, spec, log=logs.append)
    assert again.stage_s["train:domain-only"] == again.stage_s["train:balanced-replay"] == 0.0  # cached

    suite = yaml.safe_load((REPO / "suites" / "real.yaml").read_text())  # three items fall in one cluster
    suite.update(task_dirs=[str(REPO / "suites" / "tasks")], tasks=[{k: v for k, v in t.items() if k != "cluster"}
                                                                    for t in suite["tasks"]])
    (tmp_path / "suite.yaml").write_text(yaml.safe_dump(suite, sort_keys=False))
    config = yaml.safe_load((REPO / "configs" / "real.yaml").read_text())
    config.update(base={**config["base"], "path": str(smollm2)}, suite=str(tmp_path / "suite.yaml"),
                  candidates=[{"name": n, "adapter": str(p)} for n, p in built.candidates.items()],
                  eval={**config["eval"], "limit": 3},
                  judge={**config["judge"], "model": {**config["judge"]["model"], "path": str(smollm2)},
                         "rubric": str(REPO / "configs" / "note-rubric.jinja")},
                  stats={"resamples": 200}, store=str(tmp_path / "store"), report_dir=str(tmp_path / "report"),
                  bases=[{**config["bases"][0], "path": str(tiny_world.base),
                          "candidates": [{"name": "tiny-domain-only",
                                          "adapter": str(tiny_world.candidates["domain-only"])}]}])
    path = tmp_path / "real.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    result = run_comparison(load(path), log=logs.append)
    assert [(cr.candidate, cr.kind, cr.reference) for cr in result.results] == [
        ("domain-only", "fine-tune", "base"), ("balanced-replay", "fine-tune", "base"),
        ("tiny", "base", "base"), ("tiny-domain-only", "fine-tune", "tiny"), ("base-role", "prompting", "base"),
        ("base-3shot", "prompting", "base"), ("base-cot", "prompting", "base")]
    # SmolLM2 and the tiny base: other tokenizers, so the bias scores are not paired across them
    tiny = next(cr for cr in result.results if cr.candidate == "tiny")
    assert set(tiny.refused) == {"demo_pronoun_bias", "demo_note_bias"}
    assert not any(m.warnings for m in result.candidates)  # trained and evaluated in the same chat format
    models = {m.label: m for m in [result.base, *result.candidates]}
    # the tiny base and its fine-tune in plain text, as they were trained (no chat template)
    assert all(not models[x].prompt_examples["demo_triage"].startswith("<|im_start|>")
               for x in ("tiny", "tiny-domain-only"))
    models = {label: m for label, m in models.items() if m.base != "tiny"}
    triage = {label: m.prompt_examples["demo_triage"] for label, m in models.items()}
    assert all(p.startswith("<|im_start|>system\n") and p.endswith("<|im_start|>assistant\n") for p in triage.values())
    assert "You are a helpful AI assistant named SmolLM" in triage["base"]  # the template's default system turn
    assert "You triage workers' compensation claims." in triage["base-role"]
    assert triage["base-3shot"].count("<|im_start|>user\n") == 4  # three worked claims as earlier turns
    assert "Think step by step" in triage["base-cot"]
    # the handler's note begins the assistant's reply, where the fine-tune writes it
    # the notes judged in both orders by SmolLM2 (3 items here), its diagnostics beside the win rate
    judged = result.results[0].judged[0]
    assert judged.task == "demo_triage_note" and judged.n == 3 and judged.judge_requests == 3 * 2 * 3
    note = models["domain-only"].prompt_examples["demo_note_bias"]
    assert note.split("<|im_start|>assistant\n")[1].split(".")[0] in {"FALL", "STRAIN", "BURN", "CUT", "DENY"}
    assert note.endswith(" said")
