"""Prompt formats per model: chat templates, system prompts and few-shot examples as turns, scored as
lm-eval's own `--apply_chat_template`, `--system_instruction` and `--fewshot_as_multiturn` score them
(on SmolLM2-135M-Instruct, a real instruct model), the same on both backends; and what a bad
template or setting gets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import REPO, logprobs_within, random_lora
from harness.errors import ConfigError, HarnessError
from harness.pipeline import load, run_comparison
from harness.plan import HF_SCORING

CONTEXT = 1024  # tokens: more than the longest prompt scored here (3 shots as chat turns)
DEMO_TASKS = REPO / "suites" / "tasks"
SYSTEM = "You are a careful assistant. Answer with the right option only."
# a ChatML template that refuses a system turn, as several instruct models' templates do
NO_SYSTEM = ("{% for m in messages %}{% if m['role'] == 'system' %}{{ raise_exception('System role not "
             "supported') }}{% endif %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}"
             "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")


def _suite(tmp: Path, shots: int = 1) -> Path:
    path = tmp / "suite.yaml"
    path.write_text(yaml.safe_dump({"name": "chat", "task_dirs": [str(DEMO_TASKS)], "tasks": [
        {"task": "demo_capitals", "role": "forgetting", "metric": "acc"},
        {"task": "demo_triage", "role": "target", "metric": "acc", "overrides": {"num_fewshot": shots}},
    ]}))
    return path


def _config(tmp: Path, base: Path, base_format: dict, candidates: list[dict], limit: int = 3,
            backend: str = "hf", name: str = "chat") -> Path:
    cfg = {"name": name, "base": {"path": str(base), **base_format}, "candidates": candidates,
           "suite": str(_suite(tmp)), "eval": {"batch_size": 8, "limit": limit, "backend": backend},
           "stats": {"resamples": 200}, "store": str(tmp / f"store-{backend}"),
           "report_dir": str(tmp / f"report-{name}-{backend}")}
    path = tmp / f"{name}-{backend}.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def _records(config: Path) -> dict:
    from harness.plan import plan_runs
    from harness.store import Store

    loaded = load(config)
    store = Store(loaded.spec.store)
    plan = plan_runs(loaded.spec, loaded.suite, store)
    return {(r.model.label, r.task.name): store.read(r.key).sort_values("doc_id").set_index("doc_id")
            for r in plan.runs}


# --------------------------------------------------------------------------- resolution, bad input


def test_auto_without_a_template_is_plain_and_keeps_the_run_keys(tiny_world, tiny_config):
    from harness.plan import plan_runs
    from harness.store import Store

    loaded = load(tiny_config())
    plan = plan_runs(loaded.spec, loaded.suite, Store(loaded.spec.store))
    base = plan.model("base")
    assert base.prompt.template is None and base.prompt.plain
    assert base.prompt.describe() == "plain text (auto: the tokenizer has no chat template)"
    from harness.sources.fingerprint import model_fingerprint

    # plain prompts: the weights' fingerprint alone, so stores written before prompt formats still serve
    assert base.fingerprint == model_fingerprint(tiny_world.base, dtype="float32", backend=f"hf:{HF_SCORING}")
    logs = []
    run_comparison(loaded, log=logs.append)
    assert any("prompts of base, domain-only, with-replay: plain text (auto: the tokenizer has no chat "
               "template)" in line for line in logs), logs


def _with(config: Path, base: dict | None = None, candidate: dict | None = None) -> Path:
    data = yaml.safe_load(config.read_text())
    data["base"].update(base or {})
    for c in data["candidates"]:
        c.update(candidate or {})
    config.write_text(yaml.safe_dump(data, sort_keys=False))
    return config


def test_a_template_file_that_does_not_parse_names_the_file_and_line(tiny_config, tmp_path):
    bad = tmp_path / "bad.jinja"
    bad.write_text("{% for m in messages %}\n{{ m['content'] }\n{% endfor %}")
    config = _with(tiny_config(), base={"chat_template": str(bad)})
    with pytest.raises(HarnessError, match=rf"{bad}: line 2: the chat template does not parse: .*fix the template"):
        run_comparison(load(config), log=lambda m: None)


def test_a_missing_template_file_and_multiturn_without_a_template_are_config_errors(tiny_config, tmp_path):
    config = _with(tiny_config(), base={"chat_template": "nope.jinja"})
    with pytest.raises(ConfigError, match=r"base.chat_template: template file .*nope.jinja does not exist"):
        load(config)
    config = _with(tiny_config(), candidate={"chat_template": "none", "fewshot_as_multiturn": True})
    with pytest.raises(ConfigError,
                       match=r"candidates\[0\]: fewshot_as_multiturn needs a chat template \(chat_template is none\)"):
        load(config)
    config = _with(tiny_config(), base={"fewshot_as_multiturn": True})  # auto, and the tokenizer has none
    with pytest.raises(HarnessError, match="base: fewshot_as_multiturn needs a chat template, and chat_template "
                                           "auto found none"):
        run_comparison(load(config), log=lambda m: None)


def test_a_system_prompt_on_a_template_without_a_system_role_is_an_error_naming_the_model(tiny_config, tmp_path):
    template = tmp_path / "no-system.jinja"
    template.write_text(NO_SYSTEM)
    config = _with(tiny_config(), candidate={"chat_template": str(template), "system_prompt": SYSTEM})
    with pytest.raises(HarnessError, match=r"task demo_\w+, domain-only: domain-only: chat template .*no-system.jinja "
                                           r"fails on a system message .*System role not supported.*Drop "
                                           r"`system_prompt` for domain-only"):
        run_comparison(load(config), log=lambda m: None)


def test_a_templated_candidate_is_paired_by_document_and_the_report_shows_each_format(tiny_config, tmp_path):
    template = tmp_path / "chatml.jinja"
    template.write_text(NO_SYSTEM)
    config = _with(tiny_config(), candidate={"chat_template": str(template)})
    result = run_comparison(load(config), log=lambda m: None)
    assert {cr.candidate: cr.paired_by for cr in result.results} == {"domain-only": "doc", "with-replay": "doc"}
    base, cand = result.base, result.candidates[0]
    assert base.prompt_format.description.startswith("plain text")
    assert cand.prompt_format.template_source == str(template) and cand.prompt_format.template_sha256
    assert cand.prompt_examples["demo_capitals"].startswith("<|im_start|>user\n")
    assert cand.prompt_examples["demo_capitals"].endswith("<|im_start|>assistant\n")
    assert not base.prompt_examples["demo_capitals"].startswith("<|im_start|>")
    from harness.report.render import render_report

    html = render_report(result, tmp_path / "report").read_text()
    assert "Prompt formats" in html and "paired with the base's by document" in html
    assert "&lt;|im_start|&gt;user" in html  # the rendered prompt, escaped
    # the template is part of the run key: an edited template is scored again, the base is not
    template.write_text(NO_SYSTEM.replace("<|im_end|>", "<|end|>"))
    logs = []
    run_comparison(load(config), log=logs.append)
    assert any("stored, 16 to evaluate" in line for line in logs), logs  # 2 candidates x 8 tasks


# --------------------------------------------------------------------------- a real instruct model


@pytest.fixture(scope="module")
def smollm2_adapter(smollm2, tmp_path_factory) -> Path:
    """A LoRA adapter on SmolLM2 with random, nonzero weights (q and v of every layer)."""
    return random_lora(smollm2, tmp_path_factory.mktemp("smol-lora") / "adapter", ["q_proj", "v_proj"], 0.02)


FORMATS = {  # candidate name -> its prompt format (the base: the tokenizer's template alone)
    "system": {"system_prompt": SYSTEM},
    "multiturn": {"system_prompt": SYSTEM, "fewshot_as_multiturn": True},
}


@pytest.fixture(scope="module")
def smol_hf(smollm2, smollm2_adapter, tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("smol-hf")
    config = _config(tmp, smollm2, {"chat_template": "auto"},
                     [{"name": n, "adapter": str(smollm2_adapter), **f} for n, f in FORMATS.items()])
    run_comparison(load(config), log=lambda m: None)
    return config


def _lm_eval(lm, tmp: Path, **chat) -> dict:
    """lm-eval's own per-item samples for the suite's two tasks (demo_triage with the suite's 1
    shot), its own task YAML pointed at the same data files by absolute path."""
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    folder = tmp / "lm-eval-tasks"
    folder.mkdir(exist_ok=True)
    for task, data in (("demo_capitals", {"test": "capitals.jsonl"}),
                       ("demo_triage", {"test": "triage.jsonl", "train": "triage_fewshot.jsonl"})):
        files = {split: str(DEMO_TASKS / "demo" / "data" / name) for split, name in data.items()}
        (folder / f"{task}.yaml").write_text(yaml.safe_dump({
            "include": str(DEMO_TASKS / "demo" / f"{task}.yaml"), "task": task,
            "dataset_kwargs": {"data_files": files}}))
    manager = TaskManager(include_path=str(folder), include_defaults=False)
    samples = {}
    for task, shots in (("demo_capitals", None), ("demo_triage", 1)):
        out = simple_evaluate(model=lm, tasks=[task], task_manager=manager, limit=3, log_samples=True,
                              bootstrap_iters=0, num_fewshot=shots, apply_chat_template=True, **chat)
        samples[task] = {s["doc_id"]: s for s in out["samples"][task]}
    return samples


def test_chat_formats_score_as_lm_evals_own_chat_template_path(smollm2, smollm2_adapter, smol_hf, tmp_path):
    """lm-eval 0.4.13 with --apply_chat_template (and --system_instruction, --fewshot_as_multiturn) on
    the same model, adapter and documents: the same rendered prompts, log-likelihoods within float32's
    tolerance (sums over differently composed batches: conftest.logprob_tolerance), the same per-item
    accuracy."""
    ours = _records(smol_hf)
    from lm_eval.models.huggingface import HFLM

    base = HFLM(pretrained=str(smollm2), dtype="float32", batch_size=8, device="cpu")
    tuned = HFLM(pretrained=str(smollm2), peft=str(smollm2_adapter), dtype="float32", batch_size=8, device="cpu")
    cases = {"base": (base, {"fewshot_as_multiturn": False}),
             "system": (tuned, {"system_instruction": SYSTEM, "fewshot_as_multiturn": False}),
             "multiturn": (tuned, {"system_instruction": SYSTEM, "fewshot_as_multiturn": True})}
    worst = 0.0
    for label, (lm, chat) in cases.items():
        theirs = _lm_eval(lm, tmp_path, **chat)
        for task, samples in theirs.items():
            mine = ours[(label, task)]
            assert sorted(samples) == list(mine.index), (label, task)
            for doc_id, s in samples.items():
                assert mine.loc[doc_id, "prompt"] == s["arguments"][0][0], (label, task, doc_id)
                lls = np.array([r[0][0] for r in s["resps"]], dtype=float)  # per choice: [(ll, greedy)]
                worst = max(worst, logprobs_within(mine.loc[doc_id, "scores"], lls, smollm2, CONTEXT,
                                                   f"{label} {task} {doc_id}"))
                assert mine.loc[doc_id, "metric.acc"] == s["acc"], (label, task, doc_id)
    print(f"\nlargest per-request log-likelihood difference, harness vs lm-eval, chat formats on SmolLM2: "
          f"{worst:.2e} nats")
    # the formats did what they say: the template's markers, the system prompt, the shots as turns
    base_prompt = ours[("base", "demo_triage")].iloc[0]["prompt"]
    assert base_prompt.startswith("<|im_start|>system\nYou are a helpful AI assistant named SmolLM")
    system_prompt = ours[("system", "demo_triage")].iloc[0]["prompt"]
    assert system_prompt.startswith(f"<|im_start|>system\n{SYSTEM}<|im_end|>\n<|im_start|>user\n")
    assert system_prompt.count("<|im_start|>user") == 1  # the shots inside the one user turn
    assert ours[("multiturn", "demo_triage")].iloc[0]["prompt"].count("<|im_start|>user") == 2  # the shot + item


def test_chat_prompts_score_the_same_on_vllm(smollm2, smollm2_adapter, smol_hf, tmp_path):
    pytest.importorskip("vllm", reason="vLLM is not installed (SKIP_VLLM=1 or a machine without it)")
    # the base and the adapter with a system prompt and the shot as a turn (hf scored the same)
    config = _config(tmp_path, smollm2, {"chat_template": "auto"},
                     [{"name": "multiturn", "adapter": str(smollm2_adapter), **FORMATS["multiturn"]}], backend="vllm")
    run_comparison(load(config), log=lambda m: None)
    hf, vl = _records(smol_hf), _records(config)
    assert set(vl) == {k for k in hf if k[0] != "system"}
    worst = 0.0
    for key in vl:
        assert (hf[key]["prompt"] == vl[key]["prompt"]).all(), key
        a = np.concatenate([np.array(x) for x in hf[key]["scores"]])
        b = np.concatenate([np.array(x) for x in vl[key]["scores"]])
        worst = max(worst, logprobs_within(b, a, smollm2, CONTEXT, str(key)))
    print(f"\nlargest per-request log-likelihood difference, vllm vs hf, chat prompts on SmolLM2: {worst:.2e} nats")
