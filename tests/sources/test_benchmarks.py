"""The ready forgetting and bias suites, read from local copies of the public benchmarks in
../shared/datasets, on a real pretrained model (../shared/models/stories260K) and on the demo model.

Where ../shared is absent (a clone on its own) these tests skip and say so.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import random
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import REPO, logprob_tolerance
from harness.config import TaskSpec
from harness.errors import HarnessError

SHARED = Path(os.environ.get("HARNESS_SHARED_DIR", REPO.parent / "shared"))
DATASETS = SHARED / "datasets"
STORIES = SHARED / "models" / "stories260K"

needs_shared = pytest.mark.skipif(
    not (DATASETS.is_dir() and (STORIES / "config.json").is_file()),
    reason=f"public benchmark copies and stories260K not found under {SHARED} (set HARNESS_SHARED_DIR)")

TASK_DATA = {
    "hellaswag": {"format": "hellaswag_txt", "path": "hellaswag/hellaswag_val_full.txt.bz2"},
    "arc_challenge": {"format": "arc_jsonl", "path": "arc/ARC-Challenge-Test.jsonl"},
    "winogrande": {"format": "winogrande_csv", "path": "winogrande/winogrande_za_english_columns.csv"},
    "mmlu": {"format": "mmlu_csv", "path": "mmlu"},
    "boolq": {"format": "boolq_jsonl", "path": "boolq/dev.jsonl"},
    "piqa": {"format": "piqa_jsonl", "path": "piqa/dev.jsonl"},
    "gsm8k_cot_zeroshot": {"format": "gsm8k_jsonl", "path": "gsm8k/test.jsonl"},
    "crows_pairs_english": {"format": "crows_pairs_csv", "path": "crows_pairs/crows_pairs_anonymized.csv"},
    "bbq_ambig": {"format": "bbq", "path": "bbq"},
    "bbq_disambig": {"format": "bbq", "path": "bbq"},
    "winobias": {"format": "winobias_txt", "path": "winobias"},
    "stereoset_intrasentence": {"format": "stereoset_csv", "path": "stereoset/intrasentence_stereo_set.csv"},
    "stereoset_intersentence": {"format": "stereoset_csv", "path": "stereoset/intersentence_stereo_set.csv"},
}


def _config(tmp: Path, name: str, base: Path, candidates: dict[str, Path], suite: Path, store: Path,
            tasks: list[str] | None = None, **eval_options) -> Path:
    data = {k: {"format": v["format"], "path": str(DATASETS / v["path"])} for k, v in TASK_DATA.items()
            if tasks is None or k in tasks}
    cfg = {"name": name, "base": {"path": str(base), "dtype": "float32"},
           "candidates": [{"name": n, "adapter": str(p)} for n, p in candidates.items()],
           "suite": str(suite), "eval": {"batch_size": 32, **eval_options}, "stats": {"resamples": 1000},
           "task_data": data, "store": str(store), "report_dir": str(tmp / f"report-{name}")}
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def _zero_adapter(base: Path, out: Path) -> Path:
    """A LoRA adapter whose update is exactly zero (peft initialises B = 0)."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base)
    get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")
                   ).save_pretrained(out)
    return out


def _run(config: Path):
    from harness.pipeline import load, run_comparison

    loaded = load(config)
    return loaded, run_comparison(loaded, log=lambda m: None)


@pytest.fixture(scope="module")
def quick_suite(tmp_path_factory) -> Path:
    """Both ready quick suites in one suite file, through `include`."""
    path = tmp_path_factory.mktemp("suite") / "quick.yaml"
    path.write_text(yaml.safe_dump({"name": "quick", "include": [str(REPO / "suites" / "forgetting-quick.yaml"),
                                                                  str(REPO / "suites" / "bias-quick.yaml")]}))
    return path


@pytest.fixture(scope="module")
def stories(tmp_path_factory, quick_suite):
    """stories260K against a zero-weight adapter on both quick suites (one store)."""
    tmp = tmp_path_factory.mktemp("stories")
    zero = _zero_adapter(STORIES, tmp / "zero")
    config = _config(tmp, "stories", STORIES, {"zero": zero}, quick_suite, tmp / "store")
    loaded, result = _run(config)
    return {"tmp": tmp, "zero": zero, "loaded": loaded, "result": result}


def _base_records(loaded, task: str) -> pd.DataFrame:
    from harness.plan import plan_runs
    from harness.store import Store

    store = Store(loaded.spec.store)
    plan = plan_runs(loaded.spec, loaded.suite, store)
    run = next(r for r in plan.runs if r.model.label == "base" and r.task.name == task)
    df = store.read(run.key)
    return df[df["filter"] == "none"].set_index("doc_id").sort_index()


# --------------------------------------------------------------------------- the suites run


@needs_shared
def test_quick_suites_run_on_stories260k_and_a_zero_adapter_changes_nothing(stories):
    result = stories["result"]
    (cr,) = result.results
    tasks = {t.task: t for t in cr.tasks}
    mmlu = [t for t in tasks if t.startswith("mmlu_")]
    assert len(mmlu) == 57 and all(tasks[t].n == 2 for t in mmlu)
    expected_n = {"hellaswag": 60, "arc_challenge": 60, "winogrande": 60, "boolq": 40, "piqa": 60,
                  "gsm8k_cot_zeroshot": 8, "crows_pairs_english": 150, "bbq_ambig": 60, "bbq_disambig": 60,
                  "winobias": 150, "stereoset_intrasentence": 150, "stereoset_intersentence": 150}
    assert {t: tasks[t].n for t in expected_n} == expected_n
    # real scores of a real model, not constants
    assert 0 < tasks["hellaswag"].base.estimate < 1 and 0 < tasks["crows_pairs_english"].base.estimate < 1
    # a zero-weight adapter: every item scores the same, so every delta is exactly zero
    assert all(t.delta.estimate == 0 for t in cr.tasks)
    assert {r.role: (r.delta.estimate, r.delta.low, r.delta.high) for r in cr.roles} == {
        "forgetting": (0.0, 0.0, 0.0), "bias": (0.0, 0.0, 0.0)}
    for t in cr.tasks:  # no category shows amplification either
        assert all(c.delta.estimate == 0 and c.delta.low <= 0 <= c.delta.high for c in t.categories), t.task
    # per-category breakdowns with the benchmarks' own labels
    cats = {t.task: {c.category for c in t.categories} for t in cr.tasks}
    assert {"gender", "race-color", "religion"} <= cats["crows_pairs_english"]
    assert "Gender_identity" in cats["bbq_ambig"] | cats["bbq_disambig"]
    assert cats["winobias"] == {"type1", "type2"}
    assert {"gender", "race"} <= cats["stereoset_intrasentence"]
    # secondary metrics, reported with paired intervals: BBQ's accuracy beside its bias score, ...
    extra = {t.task: {x.metric: x for x in t.extra} for t in cr.tasks}
    assert set(extra["bbq_ambig"]) == set(extra["bbq_disambig"]) == {"acc"}
    assert set(extra["crows_pairs_english"]) == {"likelihood_diff"} and set(extra["winobias"]) == {"pct_stereotype"}
    assert all(x.delta.estimate == 0 and 0 <= x.base.estimate <= 1 for x in extra["bbq_ambig"].values())
    # the Biderman et al. forgetting average
    (summary,) = cr.summaries
    assert summary.name == "biderman_avg" and summary.role == "forgetting"
    assert summary.tasks == ["hellaswag", "arc_challenge", "winogrande"] and summary.delta.estimate == 0


@needs_shared
def test_compare_reads_the_store_alone_no_lm_eval_task_is_touched(stories):
    """Comparing (BBQ's whole-set bias scores included: lm-eval's own aggregation, referenced from
    each run's manifest) needs no lm-eval task object: every one is replaced by a trap."""
    from harness.compare import compare_runs
    from harness.plan import plan_runs
    from harness.store import Store

    class Trap:
        def __getattr__(self, name):
            raise AssertionError(f"compare touched the lm-eval task ({name})")

    loaded = stories["loaded"]
    store = Store(loaded.spec.store)
    plan = plan_runs(loaded.spec, loaded.suite, store)
    bbq = next(r for r in plan.runs if r.task.name == "bbq_ambig")
    assert store.read_manifest(bbq.key).aggregations["amb_bias_score"].startswith("file:")
    trapped = [dataclasses.replace(r, task=dataclasses.replace(r.task, task=Trap())) for r in plan.runs]
    result = compare_runs(dataclasses.replace(plan, runs=trapped, tasks=[]), loaded.spec, loaded.suite, store)
    expected = stories["result"].results
    assert [cr.model_dump() for cr in result.results] == [cr.model_dump() for cr in expected]


@needs_shared
def test_a_task_longer_than_the_demo_models_context_stops_then_runs_with_a_longer_window(demo_world, tmp_path):
    """The demo model's context is 256 tokens; some PIQA answers are longer in its tokenizer. The
    run stops with what to do, and runs with a longer window when the config gives one."""
    cand = demo_world.candidates["domain-only"]
    piqa = tmp_path / "piqa.yaml"
    piqa.write_text(yaml.safe_dump({"name": "piqa", "tasks": [{"task": "piqa", "role": "forgetting",
                                                               "metric": "acc_norm", "subset": 60}]}))
    with pytest.raises(HarnessError, match=r"task piqa, base: an item's scored text is \d+ tokens, longer than "
                                           r"the model's context of 256 .*set `eval.max_length`"):
        _run(_config(tmp_path, "demo-piqa", demo_world.base, {"domain-only": cand}, piqa, tmp_path / "store",
                     tasks=["piqa"]))
    # with a longer window it runs (every quick task and metric runs on stories260K above)
    _, result = _run(_config(tmp_path, "demo-piqa", demo_world.base, {"domain-only": cand}, piqa,
                             tmp_path / "store", tasks=["piqa"], max_length=1024))
    (cr,) = result.results
    (t,) = cr.tasks
    assert t.task == "piqa" and t.n == 60
    assert np.isfinite([t.base.estimate, t.candidate.estimate, t.delta.low, t.delta.high]).all()
    assert t.delta.low <= t.delta.estimate <= t.delta.high


# --------------------------------------------------------------------------- equal to lm-eval's own


def _lm_eval_task(tmp: Path, task: str, yaml_file: str, rows: list[dict]) -> str:
    """lm-eval's own task YAML (included as it ships), pointed at the same rows as a JSON file."""
    import lm_eval

    data = tmp / f"{task}.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    name = f"{task}_from_file"
    (tmp / f"{name}.yaml").write_text(yaml.safe_dump({
        "include": str(Path(lm_eval.__file__).parent / "tasks" / yaml_file), "task": name, "tag": [],
        "dataset_path": "json", "dataset_name": None, "dataset_kwargs": {"data_files": {"test": str(data)}},
        "test_split": "test", "validation_split": None, "training_split": None}))
    return name


@needs_shared
def test_scores_equal_lm_evals_own_for_the_same_model_and_data(stories, tmp_path):
    """lm-eval's simple_evaluate, with its shipped crows_pairs_english and arc_challenge YAML and
    its HFLM, on the same documents (its own `samples=` selection; the harness shows lm-eval only the
    selected documents instead): the harness's stored per-item scores give the same numbers."""
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    from harness.sources.files import convert

    crows = convert("crows_pairs_csv", DATASETS / TASK_DATA["crows_pairs_english"]["path"], "crows_pairs_english")
    arc = convert("arc_jsonl", DATASETS / TASK_DATA["arc_challenge"]["path"], "arc_challenge")
    names = {"crows_pairs_english": _lm_eval_task(tmp_path, "crows_pairs_english",
                                                  "crows_pairs/crows_pairs_english.yaml", crows["eval"]),
             "arc_challenge": _lm_eval_task(tmp_path, "arc_challenge", "arc/arc_challenge.yaml", arc["eval"])}
    ours = {task: _base_records(stories["loaded"], task) for task in names}
    lm = HFLM(pretrained=str(STORIES), device="cpu", dtype="float32", batch_size=32)
    manager = TaskManager(include_path=str(tmp_path), include_defaults=False)
    out = simple_evaluate(model=lm, tasks=list(names.values()), task_manager=manager,
                          samples={names[t]: sorted(int(i) for i in ours[t].index) for t in names},
                          log_samples=True, bootstrap_iters=0)
    for task, metrics in {"crows_pairs_english": ("pct_stereotype", "likelihood_diff"),
                          "arc_challenge": ("acc", "acc_norm")}.items():
        theirs = out["results"][names[task]]
        per_item = {s["doc_id"]: s for s in out["samples"][names[task]]}
        assert sorted(per_item) == sorted(ours[task].index)
        # float32 sums of token log-probabilities in differently composed batches: each item within
        # the tolerance of its log-likelihoods' magnitudes (conftest.logprob_tolerance); a right-or-wrong
        # metric equal wherever the model's choice wins by more than twice that (acc_norm: per character)
        scores = [np.asarray(x, dtype=float) for x in ours[task]["scores"]]
        tolerance = np.array([logprob_tolerance(STORIES, np.abs(x).sum()) for x in scores])
        chars = [np.array([len(a[1]) for a in per_item[i]["arguments"]], dtype=float) for i in ours[task].index]
        level = {}
        for metric in metrics:
            mine = ours[task][f"metric.{metric}"].to_numpy(dtype=float)
            their_items = np.array([per_item[i][metric] for i in ours[task].index], dtype=float)
            if set(np.unique(their_items)) <= {0.0, 1.0}:
                norm = [x / n if metric == "acc_norm" else x for x, n in zip(scores, chars, strict=True)]
                margin = np.array([np.inf if len(x) < 2 else np.diff(np.sort(x)[-2:])[0] for x in norm])
                unclear = margin <= 2 * tolerance
                assert unclear.mean() < 0.1, (task, metric)  # the check is not emptied by the tolerance
                np.testing.assert_array_equal(mine[~unclear], their_items[~unclear], err_msg=f"{task} {metric}")
                mean_tolerance = unclear.mean()
            else:
                assert np.all(np.abs(mine - their_items) <= tolerance), (task, metric)
                mean_tolerance = tolerance.mean()
            assert abs(mine.mean() - theirs[f"{metric},none"]) <= mean_tolerance + 1e-12, (task, metric)
            level[metric] = mine.mean()
        # and the comparison reports these levels for the suite's metric and its extra metrics
        t = next(t for t in stories["result"].results[0].tasks if t.task == task)
        assert t.base.estimate == pytest.approx(level[t.metric], abs=1e-12)
        for x in t.extra:
            assert x.base.estimate == pytest.approx(level[x.metric], abs=1e-12)


# --------------------------------------------------------------------------- BBQ bias scores


def _bbq_items(n_biased: int, n_anti: int, n_unknown: int, disambiguated: bool, correct: str) -> list:
    """lm-eval's per-item BBQ tuples (acc, n_biased_ans, n_non_unk_ans, mask_disambiguated)."""
    items = []
    for kind, count in (("biased", n_biased), ("anti", n_anti), ("unknown", n_unknown)):
        for _ in range(count):
            items.append([1.0 if kind == correct else 0.0, 1.0 if kind == "biased" else 0.0,
                          0.0 if kind == "unknown" else 1.0, disambiguated])
    return items


def test_bbq_bias_scores_match_the_papers_definition_hand_worked():
    """Parrish et al. (2022), p. 6: s_DIS = 2 * n_biased / n_non_unknown - 1; s_AMB = (1 - acc) * s_DIS.

    Disambiguated: 6 biased, 2 anti-biased, 2 'unknown' answers -> s_DIS = 2 * 6/8 - 1 = 0.5.
    Ambiguous ('unknown' is right): 4 unknown (acc 0.4), 4 biased, 2 anti -> s = 2 * 4/6 - 1 = 1/3,
    s_AMB = 0.6 * 1/3 = 0.2.
    """
    from lm_eval.tasks.bbq import utils as bbq

    from harness.compare import _task_result
    from harness.config import StatsSpec

    disamb = _bbq_items(6, 2, 2, True, correct="anti")
    amb = _bbq_items(4, 2, 4, False, correct="unknown")
    assert bbq.agg_disamb_bias_scores([tuple(x) for x in disamb]) == pytest.approx(0.5)
    assert bbq.agg_amb_bias_scores([tuple(x) for x in amb]) == pytest.approx(0.2)

    # the harness path: per-item tuples stored as JSON, lm-eval's aggregation, jackknife pseudo-values
    def joined(base: list, cand: list) -> pd.DataFrame:
        n = len(base)
        return pd.DataFrame({"metric_json.s_base": [json.dumps(x) for x in base],
                             "metric_json.s_cand": [json.dumps(x) for x in cand],
                             "doc_base": [json.dumps({"category": "Age"})] * n,
                             "response_base": [""] * n, "response_cand": [""] * n})

    st = StatsSpec(resamples=500)
    spec = TaskSpec(task="bbq", role="bias", metric="s", category="category")
    more_biased = _bbq_items(8, 0, 2, True, correct="anti")  # s_DIS = 2 * 8/8 - 1 = 1.0
    r, *_ = _task_result(joined(disamb, more_biased), spec, "bbq_disambig", st, bbq.agg_disamb_bias_scores)
    assert (r.base.estimate, r.candidate.estimate, r.delta.estimate) == pytest.approx((0.5, 1.0, 0.5))
    assert r.delta.low < 0 < r.delta.high  # two flipped answers out of ten prove nothing
    # the same proportions on 100 items (paired: the candidate turns 20 anti-biased answers biased)
    r, *_ = _task_result(joined(disamb * 10, more_biased * 10), spec, "bbq_disambig", st, bbq.agg_disamb_bias_scores)
    assert r.delta.estimate == pytest.approx(0.5) and r.delta.low > 0 and r.categories[0].category == "Age"
    r, *_ = _task_result(joined(amb, amb), spec, "bbq_ambig", st, bbq.agg_amb_bias_scores)
    assert (r.base.estimate, r.delta.estimate, r.delta.low, r.delta.high) == pytest.approx((0.2, 0.0, 0.0, 0.0))


# --------------------------------------------------------------------------- planted skew


@needs_shared
def test_planted_gender_skew_shows_as_amplification_on_the_gender_category(stories, tmp_path):
    """Fine-tuning data that states the stereotyped side of the gender pairs (and both sides of the
    other categories' pairs) amplifies CrowS-Pairs bias on gender, with an interval above zero;
    the zero-weight adapter in the same comparison shows none."""
    from harness.config import TrainSpec
    from harness.sources.tasks import select

    path = DATASETS / TASK_DATA["crows_pairs_english"]["path"]
    with path.open(encoding="utf-8", newline="") as f:
        pairs = list(csv.DictReader(f))
    spec = TaskSpec(task="crows_pairs_english", role="bias", metric="pct_stereotype", category="bias_type",
                    subset=600)
    evaluated = select(len(pairs), spec, "crows_pairs_english", None)
    records = []
    for i in evaluated:
        records.append({"prompt": "", "completion": pairs[i]["sent_more"]})
        if pairs[i]["bias_type"] != "gender":
            records.append({"prompt": "", "completion": pairs[i]["sent_less"]})
    random.Random(0).shuffle(records)
    data = tmp_path / "skewed.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in records))

    from harness.train.lora import train_lora

    train_lora(TrainSpec(base=str(STORIES), data=str(data), out=str(tmp_path / "skewed"), steps=300,
                         batch_size=16, lr=3e-3, warmup_steps=20, lora_r=8, lora_alpha=16, max_length=128))
    suite = tmp_path / "crows.yaml"
    suite.write_text(yaml.safe_dump({"name": "crows", "task_dirs": [str(REPO / "suites" / "tasks" / "bias")],
                                     "tasks": [spec.model_dump(exclude_defaults=True)]}))
    _, result = _run(_config(tmp_path, "skew", STORIES, {"skewed": tmp_path / "skewed", "zero": stories["zero"]},
                             suite, tmp_path / "store", tasks=["crows_pairs_english"]))
    by = {cr.candidate: {c.category: c for c in cr.tasks[0].categories} for cr in result.results}
    gender = by["skewed"]["gender"]
    assert gender.delta.low > 0, gender
    assert max(by["skewed"].values(), key=lambda c: c.delta.estimate).category == "gender"
    assert all(c.delta.estimate == 0 and c.delta.low <= 0 <= c.delta.high for c in by["zero"].values())


# --------------------------------------------------------------------------- local files: errors and subsets


BAD_FILES = [
    ("arc_jsonl", "arc.jsonl", '{"id": "a", "question": {"stem": "q", "choices": [{"text": "x", "label": "A"}]}, '
     '"answerKey": "A"}\n{"id": "b", "question": {"stem": "q", "choices": []}}\n', ":2: missing field 'answerKey'"),
    ("arc_jsonl", "arc.jsonl", '{"id": "a"\n', ":1: not valid JSON"),
    ("boolq_jsonl", "boolq.jsonl", '{"question": "q", "passage": "p", "answer": "yes"}\n',
     ":1: field 'answer' is 'yes', expected true or false"),
    ("crows_pairs_csv", "crows.csv", "sent_more,sent_less,stereo_antistereo\na,b,stereo\n",
     ":2: missing field 'bias_type'"),
    ("winogrande_csv", "wg.csv", "English Sentence,English Option 1,English Option 2,Answer,Split\n"
     "The _ ran.,cat,dog,3,dev\n", ":2: field 'Answer' is 3, expected 1..2"),
    ("hellaswag_txt", "hs.txt", "a: ctx\n0\ne1\ne2\ne3\n", "5 lines, not a multiple of 6"),
    ("stereoset_csv", "intrasentence.csv", "prompt,choices,bias_type,target\nThe BLANK man,\"['a' 'b']\",race,x\n",
     ":2: field 'choices' holds 2 options, expected 3"),
    ("gsm8k_jsonl", "gsm.jsonl", '{"question": "q", "answer": "4"}\n', ":1: field 'answer' has no '#### <number>'"),
]


@pytest.mark.parametrize(("fmt", "name", "text", "message"), BAD_FILES, ids=[f"{b[0]}-{i}" for i, b in
                                                                             enumerate(BAD_FILES)])
def test_malformed_local_file_names_file_row_and_field(tmp_path, fmt, name, text, message):
    from harness.sources.files import convert

    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(HarnessError) as err:
        convert(fmt, path, "task")
    assert str(err.value).startswith(str(path)) and message in str(err.value)


def test_missing_local_file_and_unknown_format_are_clear(tmp_path):
    from harness.sources.files import convert

    with pytest.raises(HarnessError, match=r"arc\.jsonl: data file not found; check the task's `data.path`"):
        convert("arc_jsonl", tmp_path / "arc.jsonl", "arc_challenge")
    (tmp_path / "dev.jsonl").write_text('{"goal": "g", "sol1": "a", "sol2": "b"}\n')
    with pytest.raises(HarnessError, match=r"dev-labels\.lst: PIQA labels file not found"):
        convert("piqa_jsonl", tmp_path / "dev.jsonl", "piqa")
    with pytest.raises(HarnessError, match=r"data.format 'parquet' is unknown \(have: arc_jsonl, bbq"):
        convert("parquet", tmp_path / "dev.jsonl", "piqa")


def test_a_malformed_file_stops_the_run_before_any_model_loads(tiny_world, tmp_path):
    """Through the CLI: exit 2 and the file:row:field message, nothing evaluated or stored."""
    from click.testing import CliRunner

    from harness.cli import main

    data = tmp_path / "arc.jsonl"
    data.write_text('{"id": "a", "question": {"stem": "q", "choices": [{"text": "x", "label": "A"}]}, '
                    '"answerKey": "B"}\n')
    suite = tmp_path / "suite.yaml"
    suite.write_text(yaml.safe_dump({"name": "s", "task_dirs": [str(REPO / "suites" / "tasks" / "bias")],
                                     "tasks": [{"task": "arc_challenge", "role": "forgetting", "metric": "acc"}]}))
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({
        "name": "c", "base": {"path": str(tiny_world.base)}, "candidates": [
            {"name": "x", "adapter": str(tiny_world.candidates["domain-only"])}], "suite": str(suite),
        "task_data": {"arc_challenge": {"format": "arc_jsonl", "path": str(data)}},
        "store": str(tmp_path / "store"), "report_dir": str(tmp_path / "report")}))
    run = CliRunner().invoke(main, ["compare", "--config", str(config)])
    assert run.exit_code == 2, run.output
    assert f"{data}:1: answerKey 'B' is not one of the choice labels ['A']" in run.output
    assert not list((tmp_path / "store").rglob("*.parquet"))


@needs_shared
def test_subsets_are_seeded_and_stable(tmp_path):
    """The same seed draws the same items on every run and machine; another seed draws others."""
    from harness.config import DataSpec, SuiteSpec
    from harness.sources.tasks import load_tasks

    data = DataSpec(format="crows_pairs_csv", path=str(DATASETS / TASK_DATA["crows_pairs_english"]["path"]))

    def draw(seed: int):
        suite = SuiteSpec(name="s", task_dirs=[str(REPO / "suites" / "tasks")], tasks=[TaskSpec(
            task="crows_pairs_english", role="bias", metric="pct_stereotype", subset=150, subset_seed=seed,
            data=data)])
        (task,) = load_tasks(suite, str(tmp_path / "suite.yaml"), cache=tmp_path / "cache")
        return task

    first, again, other = draw(0), draw(0), draw(1)
    assert first.indices == again.indices and len(first.indices) == 150 and first.task_hash == again.task_hash
    assert other.indices != first.indices and other.task_hash != first.task_hash
    # pinned: a change of the sampling scheme would silently change every stored subset
    assert first.indices[:5] == (5, 15, 19, 21, 25)


# --------------------------------------------------------------------------- include and summaries


def _suite_file(folder: Path, name: str, body: dict) -> Path:
    path = folder / name
    path.write_text(yaml.safe_dump({"name": path.stem, **body}))
    return path


def test_include_adds_tasks_and_summaries_and_bad_summaries_are_named(tmp_path):
    from harness.config import load_suite
    from harness.errors import ConfigError

    forgetting = REPO / "suites" / "forgetting.yaml"
    mine = _suite_file(tmp_path, "mine.yaml", {"include": [str(forgetting)], "tasks": [
        {"task": "crows_pairs_english", "role": "bias", "metric": "pct_stereotype"}]})
    suite = load_suite(mine)
    assert [t.task for t in suite.tasks][:3] == ["hellaswag", "arc_challenge", "winogrande"]
    assert suite.tasks[-1].task == "crows_pairs_english" and suite.summaries[0].name == "biderman_avg"

    bad = _suite_file(tmp_path, "bad.yaml", {"include": [str(forgetting)], "tasks": [
        {"task": "crows_pairs_english", "role": "bias", "metric": "pct_stereotype"}], "summaries": [
        {"name": "mixed", "tasks": ["hellaswag", "crows_pairs_english"]},
        {"name": "typo", "tasks": ["hellaswag", "arc_chalenge"]}]})
    with pytest.raises(ConfigError) as err:
        load_suite(bad)
    text = str(err.value)
    assert "'mixed' mixes roles (bias, forgetting)" in text and "'typo' names arc_chalenge" in text
    assert str(bad) in text

    twice = _suite_file(tmp_path, "twice.yaml", {"include": [str(forgetting)], "tasks": [
        {"task": "hellaswag", "role": "forgetting", "metric": "acc"}]})
    with pytest.raises(ConfigError, match="task 'hellaswag' is listed twice"):
        load_suite(twice)
    loop = tmp_path / "loop.yaml"
    loop.write_text(yaml.safe_dump({"name": "loop", "include": ["loop.yaml"]}))
    with pytest.raises(ConfigError, match="the suite includes itself"):
        load_suite(loop)


@needs_shared
def test_summary_feeds_gates_and_the_report(stories):
    from harness.config import GateSpec
    from harness.gates import evaluate_gates
    from harness.report.render import render_html

    result = stories["result"]
    (verdict,) = evaluate_gates(result, [GateSpec(summary="biderman_avg", rule="non_inferior", margin=0.5)])
    assert (verdict.target, verdict.value.estimate, verdict.status) == ("biderman_avg", 0.0, "pass")
    html = render_html(result)
    assert "mean: biderman_avg" in html  # a row of the forgetting forest plot
    (mmlu,) = result.results[0].groups  # the mmlu entry: its 57 tasks pooled into one row
    assert mmlu.name == "mmlu" and len(mmlu.tasks) == 57 and mmlu.n == 114 and mmlu.delta.estimate == 0
    assert "mmlu (57 tasks)" in html and "7 entries (63 tasks)" in html
    assert "Summary <code>biderman_avg</code>" in html
