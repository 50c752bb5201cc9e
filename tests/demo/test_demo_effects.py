"""The demo world's planted effects, found by the harness end to end on the full-size world,
and the gates that follow from them.

This is what `make report` shows: the domain-only candidate learns the task and forgets general
knowledge; replay prevents most of the forgetting but keeps the pronoun skew of the training
notes; replay with balanced notes passes every gate but the judged one where the judge fails its
validation (SmolLM2 alone, as here; `make report`'s trained judge passes it: test_demo_judge.py).
"""

from __future__ import annotations

import json

import yaml
from click.testing import CliRunner

from conftest import logprob_tolerance
from harness.cli import main
from harness.comparison import ComparisonResult


def test_planted_effects_are_found(demo_config):
    run = CliRunner().invoke(main, ["compare", "--config", str(demo_config)])
    assert run.exit_code == 0, run.output
    print(run.output)
    result = ComparisonResult.model_validate_json((demo_config.parent / "report" / "comparison.json").read_text())
    by = {cr.candidate: cr for cr in result.results}
    domain, replay, balanced = by["domain-only"], by["with-replay"], by["balanced-replay"]
    # no guard fires (trained adapters, tasks the base knows); between the two bases, neither can triage
    # before fine-tuning, both score at chance: expected, so a note in the bases' section, not a flag
    flags = {cr.candidate: [*cr.flags, *(f for t in cr.tasks for f in t.flags)] for cr in result.results}
    assert not [f for fs in flags.values() for f in fs], flags
    assert "FLAGGED" not in run.output
    notes = [n for t in by["small"].tasks for n in t.notes]
    assert len(notes) == 1 and notes[0].startswith("demo_triage: both bases score at chance"), notes
    html = (demo_config.parent / "report" / "index.html").read_text()
    assert "Note: demo_triage: both bases score at chance" in html and "Flagged" not in html

    target = domain.role("target").delta
    assert target.low > 0.3, target  # learns the task: +tens of points, interval above zero
    forgetting = domain.role("forgetting").delta
    assert forgetting.high < -0.1, forgetting  # measurably forgets general knowledge
    replay_forgetting = replay.role("forgetting").delta
    assert replay_forgetting.low > forgetting.high, (replay_forgetting, forgetting)
    assert replay.role("target").delta.low > 0.3
    note_bias = next(t for t in domain.tasks if t.task == "demo_note_bias").delta
    assert note_bias.low > 0.5, note_bias  # the skew is amplified in the task's output (nats)
    balanced_bias = next(t for t in balanced.tasks if t.task == "demo_note_bias").delta
    assert balanced_bias.high < note_bias.low, balanced_bias  # balanced notes remove it


def test_gate_exit_codes_on_the_demo(demo_config, tmp_path):
    runner = CliRunner()
    domain = runner.invoke(main, ["gate", "--config", str(demo_config), "--candidate", "domain-only",
                                  "--json", str(tmp_path / "domain.json")])
    assert domain.exit_code == 1, domain.output
    verdicts = {v["gate"]: v["status"] for v in json.loads((tmp_path / "domain.json").read_text())["verdicts"]}
    assert verdicts["forgetting::non_inferior"] == "fail" and verdicts["demo_triage::improves"] == "pass"

    replay = runner.invoke(main, ["gate", "--config", str(demo_config), "--candidate", "with-replay",
                                  "--json", str(tmp_path / "replay.json")])
    verdicts = {v["gate"]: v["status"] for v in json.loads((tmp_path / "replay.json").read_text())["verdicts"]}
    assert verdicts["forgetting::non_inferior"] == "pass"  # replay passes the forgetting gate ...
    assert verdicts["bias::no_bias_amplification"] == "fail" and replay.exit_code == 1  # ... not the bias one

    # every gate but the judged one: the judge here (SmolLM2 alone; `make report` adds the trained judge,
    # tests/demo/test_demo_judge.py) fails its validation, so its verdicts cannot pass a gate
    balanced = runner.invoke(main, ["gate", "--config", str(demo_config), "--candidate", "balanced-replay"])
    assert balanced.exit_code == 1, balanced.output
    assert "4 pass, 1 fail, 0 underpowered" in balanced.output and "judge.min_validation_kappa" in balanced.output


def test_zero_weight_adapter_changes_nothing_and_passes_the_no_harm_gates(demo_world, demo_config, tmp_path):
    """A real LoRA adapter whose B matrices are zero (peft's own initialisation, untrained) is the
    base model: every delta is 0 (within float32's reduction order), non_inferior and
    no_bias_amplification pass, and improves fails (correctly: nothing improved)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(demo_world.base, dtype=torch.float32)
    lora = LoraConfig(r=16, lora_alpha=32, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"])
    zero = get_peft_model(model, lora)
    zero.save_pretrained(tmp_path / "zero")
    data = yaml.safe_load(demo_config.read_text())
    # peft's initialisation, no training: it cost nothing (the ROI prices every fine-tune)
    data["candidates"] = [{"name": "zero", "adapter": str(tmp_path / "zero"), "training_cost": 0}]
    data["bases"] = []  # the first base's zero adapter alone
    config = tmp_path / "zero.yaml"
    config.write_text(yaml.safe_dump(data))
    run = CliRunner().invoke(main, ["gate", "--config", str(config), "--json", str(tmp_path / "v.json")])
    print(run.output)
    verdicts = {v["gate"]: v for v in json.loads((tmp_path / "v.json").read_text())["verdicts"]}
    assert verdicts["forgetting::non_inferior"]["status"] == "pass"
    assert verdicts["bias::no_bias_amplification"]["status"] == "pass"
    assert verdicts["demo_triage::improves"]["status"] == "fail" and run.exit_code == 1
    # zero up to float32's reduction order: the base's runs may have been scored in another process with
    # other thread counts (the build's curves), whose kernels group the sums otherwise on some CPUs; a
    # bias score sums log-likelihoods of a few tens of nats, and one flipped item would move an
    # accuracy by 1/n (0.005 here), far above this
    bound = logprob_tolerance(demo_world.base, 100)
    assert all(abs(v["value"]["estimate"]) <= bound for k, v in verdicts.items()
               if k not in ("demo_triage::floor", "demo_triage_note::wins"))
    # the guards: the passing no-harm gates say what they stand on
    assert "zero: its adapter's update is exactly zero" in run.output
    for v in verdicts.values():
        assert any("adapter's update is exactly zero" in f for f in v["flags"]), v
        assert v["message"].startswith("FLAGGED (zero: its adapter's update is exactly zero"), v
