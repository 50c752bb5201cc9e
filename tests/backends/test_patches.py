"""What harness's lm-eval patches (harness/backends/patches.py, harness/sources/lm_eval_patches.py)
rely on in lm-eval, pinned: after an lm-eval upgrade, a failure here names the patch to revisit
instead of a score that silently changed. Each test runs lm-eval itself, on small local tasks and a
stand-in LM through lm-eval's public `LM` interface."""

from __future__ import annotations

import dataclasses
import inspect
import json

import pytest
from lm_eval.api.instance import Instance
from lm_eval.api.model import LM

from conftest import REPO
from harness.backends import patches
from harness.config import load_suite
from harness.sources.tasks import FEWSHOT_SEED, load_tasks


class _StandInLM(LM):
    """Scores by text length and 'generates' the context's last word: deterministic, no model."""

    def loglikelihood(self, requests, disable_tqdm: bool = False):
        return [(-float(len(r.args[1])), False) for r in requests]

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False):
        return [-float(len(r.args[0])) for r in requests]

    def generate_until(self, requests, disable_tqdm: bool = False):
        return [r.args[0].split()[-1] for r in requests]


def _evaluate(task, **kwargs) -> list[dict]:
    from lm_eval.evaluator import evaluate

    out = evaluate(_StandInLM(), {"tasks": {task.task_name: task}, "groups": {}, "group_map": {}},
                   log_samples=True, bootstrap_iters=0, **kwargs)
    return sorted(out["samples"][task.task_name], key=lambda s: (s["doc_id"], s["filter"]))


@pytest.fixture(scope="module")
def capitals():
    """The demo's multiple-choice task (a test split)."""
    loaded = load_tasks(load_suite(REPO / "suites" / "demo.yaml"), "demo.yaml")
    return next(t.task for t in loaded if t.name == "demo_capitals")


@pytest.fixture(scope="module")
def echo(tmp_path_factory):
    """A generation task with a validation split only, and a regex filter."""
    root = tmp_path_factory.mktemp("echo")
    rows = [{"q": f"Say word {i}: w{i}", "a": f"w{i}"} for i in range(9)]
    (root / "echo.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (root / "echo.yaml").write_text(
        "task: echo\ndataset_path: json\ndataset_kwargs: {data_files: {validation: echo.jsonl}}\n"
        "validation_split: validation\noutput_type: generate_until\n"
        "doc_to_text: \"{{q | regex_replace('Say', 'Repeat')}}\"\ndoc_to_target: a\n"
        "generation_kwargs: {until: ['\\n']}\n"
        "filter_list:\n  - name: first\n    filter:\n      - {function: regex, regex_pattern: 'w(\\d+)'}\n"
        "      - {function: take_first}\n"
        "metric_list:\n  - {metric: exact_match, aggregation: mean, higher_is_better: true}\n")
    (root / "suite.yaml").write_text(f"name: echo\ntask_dirs: [{root}]\ntasks:\n  - {{task: echo, role: target, "
                                     "metric: exact_match}\n")
    (task,) = load_tasks(load_suite(root / "suite.yaml"), "suite.yaml")
    assert not task.task.has_test_docs() and task.task.has_validation_docs()
    return task.task


@pytest.mark.parametrize("name", ["capitals", "echo"])
def test_select_docs_lm_eval_scores_exactly_the_selected_documents(name, request):
    """Relied on: `eval_docs` reads `test_docs()` (else `validation_docs()`), and evaluation reads its
    documents only through `eval_docs`."""
    task = request.getfixturevalue(name)
    docs = list(task.eval_docs)
    indices = (1, 4, 7)
    with patches.select_docs(task, indices):
        assert list(task.eval_docs) == [docs[i] for i in indices]
        samples = _evaluate(task)
    assert sorted({s["doc_id"] for s in samples}) == [0, 1, 2]  # numbered 0..k-1, in the dataset's order
    assert [s["doc"] for s in samples if s["filter"] == samples[0]["filter"]] == [docs[i] for i in indices]
    assert list(task.eval_docs) == docs  # the task is whole again afterwards
    # the same samples as lm-eval's own (slow) selection, once numbered by their indices
    for sample in samples:
        sample["doc_id"] = indices[sample["doc_id"]]
    assert samples == _evaluate(task, samples={task.task_name: list(indices)})


@pytest.mark.parametrize("name", ["capitals", "echo"])
def test_shared_requests_build_once_and_score_as_a_fresh_build(name, request, monkeypatch):
    """Relied on: `evaluate` builds through `task.build_all_requests(**kwargs)`, then reads
    `task.instances` (the same list every time) and fills each Instance's `resps` and `filtered_resps`."""
    from lm_eval.api.task import Task

    task = request.getfixturevalue(name)
    fields = {f.name: f for f in dataclasses.fields(Instance)}
    assert fields["resps"].default_factory is list and fields["filtered_resps"].default_factory is dict
    assert isinstance(inspect.getattr_static(Task, "instances"), property)

    task.set_fewshot_seed(seed=FEWSHOT_SEED)
    fresh = _evaluate(task)  # lm-eval alone
    builds = []
    original = Task.build_all_requests
    monkeypatch.setattr(Task, "build_all_requests", lambda self, **kw: builds.append(kw) or original(self, **kw))
    with patches.shared_requests(task, FEWSHOT_SEED):
        first = _evaluate(task)
        instances = task.instances
        assert task.instances is instances
        again = _evaluate(task)
        assert task.instances is instances and len(builds) == 1  # built once, reused
        _evaluate(task, system_instruction="Answer briefly.")  # other arguments: built again
        assert len(builds) == 2
    assert first == again == fresh  # the first evaluation's samples are left as they were


def test_compiled_templates_render_as_lm_evals_own_apply_template(capitals, monkeypatch):
    """Relied on: tasks render through `lm_eval.utils.apply_template`, looked up at each call, which
    is `utils.env.from_string(template).render(**doc)`."""
    from jinja2 import UndefinedError
    from lm_eval import utils

    from harness.sources import lm_eval_patches

    lm_eval_patches.cache_compiled_templates()
    cached, plain = utils.apply_template, inspect.unwrap(utils.apply_template)
    assert cached is not plain
    doc = {"q": "Say a word", "items": [1, 2]}
    for template in ["{{q | regex_replace('Say', 'Repeat')}}", "{{items}}", "{{q}}\n", "{% if q %}yes{% endif %}"]:
        assert cached(template, doc) == plain(template, doc) == utils.env.from_string(template).render(**doc)
    with pytest.raises(UndefinedError):
        cached("{{missing}}", doc)

    calls = []
    monkeypatch.setattr(utils, "apply_template", lambda template, doc: calls.append(template) or plain(template, doc))
    text = capitals.doc_to_text(capitals.eval_docs[0])
    assert calls == ["{{question}}"] and text == capitals.eval_docs[0]["question"]


def test_transient_request_bars_reach_hflms_own_bars(tiny_world, monkeypatch):
    """Relied on: HFLM builds its request bars with `lm_eval.models.huggingface.tqdm`, looked up when
    a call starts."""
    from lm_eval.models import huggingface
    from tqdm import tqdm

    from harness.backends.hf import HFBackend

    assert huggingface.tqdm is tqdm
    backend = HFBackend(tiny_world.base, dtype="float32", device="cpu", batch_size=4)
    leave = []
    init = tqdm.__init__

    def spy(self, *args, **kwargs):
        leave.append(kwargs.get("leave", True))
        init(self, *args, **kwargs)

    monkeypatch.setattr(tqdm, "__init__", spy)
    with backend.activate("base") as lm:
        lm.loglikelihood([Instance("loglikelihood", {}, ("The sky is", " blue"), 0)])
        lm.generate_until([Instance("generate_until", {}, ("The sky is", {"until": ["\n"], "max_gen_toks": 2}), 0)])
    assert leave.count(False) == 2  # HFLM's bar for each of its two request loops, left off the screen
    assert huggingface.tqdm is tqdm  # and lm-eval's own again after each call
