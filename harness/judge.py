"""The pairwise judge: after the answers are generated, a judge model reads each (base, candidate) pair
of a judged task in both orders and its log-probabilities of the three labels (answer A better,
answer B better, tie) give the verdict. Deterministic and cheap: one scored token per label.

Judged results are stored like any run (harness.store), keyed by the judge (its weights and prompt
format), the rubric's text, the labels and every pair's content (both answers, in order): a re-run
judges nothing, an edited rubric re-judges everything and nothing else.

Per item the candidate earns, in each order, 1 for a win, 0.5 for a tie, 0 for a loss; its item score
is the mean of the two orders. An order's verdict is in the candidate's terms ("win", "tie",
"loss"), so position bias (the judge preferring the first answer shown) shows as the two orders
disagreeing.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

import harness
from harness.config import HarnessSpec, JudgeSpec
from harness.errors import ConfigError, HarnessError
from harness.plan import ModelEntry, Plan, PlannedRun
from harness.records import BASE
from harness.sources.fingerprint import model_fingerprint, resolve_model_dir
from harness.sources.prompts import model_fingerprint_with, resolve_prompt_format
from harness.store import RunKey, RunManifest, Store
from harness.util.files import now_iso

SLOTS = ("answer_a", "answer_b")  # what a rubric must show the judge; `input` and `reference` it may
ORDERS = ("base_first", "candidate_first")
POINTS = {"win": 1.0, "tie": 0.5, "loss": 0.0}
JUDGE_FORMAT = 1  # of the judged records; part of every judged key


@dataclass(frozen=True)
class JudgedPair:
    """One (base, candidate) pairing of a judged task, and where its verdicts are stored."""

    candidate: str
    task: str
    base_run: PlannedRun
    candidate_run: PlannedRun
    key: RunKey


def read_rubric(judge: JudgeSpec):
    """The rubric as a Jinja template (sandboxed, every variable required), checked to show both
    answers: refused with the file and the missing slot before any model loads."""
    import jinja2
    from jinja2 import meta
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    path = Path(judge.rubric)
    text = path.read_text(encoding="utf-8")
    env = ImmutableSandboxedEnvironment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    try:
        names = meta.find_undeclared_variables(env.parse(text))
    except jinja2.TemplateSyntaxError as e:
        raise HarnessError(f"{path}: line {e.lineno}: the rubric does not parse: {e.message}") from None
    missing = [s for s in SLOTS if s not in names]
    if missing:
        raise HarnessError(f"{path}: the rubric never shows {' or '.join('{{ ' + m + ' }}' for m in missing)}: "
                           "the judge must see both answers (it may also use {{ input }} and {{ reference }})")
    unknown = sorted(names - {*SLOTS, "input", "reference"})
    if unknown:
        raise HarnessError(f"{path}: the rubric uses {', '.join(unknown)}, which the judge is not given "
                           "(it gets input, reference, answer_a, answer_b)")
    return text, env.from_string(text)


def judge_entry(spec: HarnessSpec, store: Store) -> ModelEntry:
    """The judge as a model of its own group (its folder), keyed by weights and prompt format."""
    judge = spec.judge
    assert judge is not None
    folder = resolve_model_dir(judge.model.path, judge.model.revision)
    fp = model_fingerprint(folder, dtype=judge.model.dtype, backend=spec.eval.backend, hasher=store.file_hash)
    prompt = resolve_prompt_format(judge.model, [folder], "judge")
    return ModelEntry("judge", model_fingerprint_with(fp, prompt), group=f"judge:{folder}", variant=BASE,
                      model_dir=folder, trust_remote_code=judge.model.trust_remote_code,
                      allow_pickle=judge.model.allow_pickle, prompt=prompt, weights_fp=fp)


def check_labels(judge: JudgeSpec, folder: Path) -> None:
    """Each label one token for the judge's tokenizer (its log-probability is one next-token
    probability); loads the tokenizer only."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(folder), trust_remote_code=judge.model.trust_remote_code)
    for label in judge.labels:
        ids = tok(label, add_special_tokens=False)["input_ids"]
        if len(ids) != 1:
            raise ConfigError([f"judge.labels: '{label}' is {len(ids)} tokens for the judge's tokenizer "
                               f"({folder}); give labels of one token each (e.g. A, B, C)"])


def plan_judgments(plan: Plan, spec: HarnessSpec, store: Store,
                   read: Callable[[PlannedRun], pd.DataFrame] | None = None) -> list[JudgedPair]:
    """Every (fine-tune, judged task) pair, keyed by the judge, the rubric and both sides' answers
    (so it needs the answers stored: call after execute). `read` gives a run's records (default: the
    store's; compare passes those it has read already)."""
    read = read or (lambda run: store.read(run.key))
    judge = spec.judge
    if judge is None:
        return []
    text, _ = read_rubric(judge)
    entry = judge_entry(spec, store)
    runs = {(r.model.label, r.task.leaf): r for r in plan.runs}
    pairs = []
    for cand in (m for m in plan.models if m.label != BASE and not m.prompting):
        for task in judge.tasks:
            base_run, cand_run = runs[(BASE, task)], runs[(cand.label, task)]
            b, c = read(base_run), read(cand_run)
            content = hashlib.sha256()
            content.update(json.dumps([JUDGE_FORMAT, text, judge.labels]).encode())
            for side in (b, c):
                rows = side[side["filter"] == side["filter"].iloc[0]].sort_values("doc_id")
                content.update(json.dumps(rows[["doc_id", "prompt_hash", "response"]].values.tolist()).encode())
            key = RunKey(model_fp=entry.fingerprint, task=f"{task}@judge", task_hash=content.hexdigest())
            pairs.append(JudgedPair(cand.label, task, base_run, cand_run, key))
    return pairs


HUMAN_VERDICTS = ("candidate", "base", "tie")


@dataclass(frozen=True)
class HumanLabel:
    where: str  # file:line
    candidate: str
    task: str
    doc_id: int
    verdict: str  # candidate | base | tie: which answer people found better


def read_human_labels(judge: JudgeSpec) -> list[HumanLabel]:
    """People's verdicts on some pairs (judge.human_labels), every line checked; none without a file."""
    if judge.human_labels is None:
        return []
    path = Path(judge.human_labels)
    labels, problems = [], []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path}:{n}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            problems.append(f"{where}: not JSON ({e.msg})")
            continue
        keys = {"candidate", "task", "doc_id", "verdict"}
        if not isinstance(row, dict) or set(row) != keys:
            got = ", ".join(sorted(row)) if isinstance(row, dict) else type(row).__name__
            problems.append(f"{where}: give exactly {', '.join(sorted(keys))} (got {got})")
            continue
        if row["verdict"] not in HUMAN_VERDICTS or not isinstance(row["doc_id"], int):
            problems.append(f"{where}: verdict must be one of {', '.join(HUMAN_VERDICTS)} and doc_id an integer")
            continue
        labels.append(HumanLabel(where, str(row["candidate"]), str(row["task"]), row["doc_id"], row["verdict"]))
    if problems:
        raise ConfigError(problems)
    return labels


def check_human_labels(judge: JudgeSpec, plan: Plan) -> None:
    """Every human label names a judged fine-tune, a judged task and an item that task scores."""
    candidates = {m.label for m in plan.models if m.label != BASE and not m.prompting}
    docs = {t.leaf: set(t.indices) if t.indices is not None else set(range(t.n_docs)) for t in plan.tasks}
    problems = []
    for h in read_human_labels(judge):
        if h.candidate not in candidates:
            problems.append(f"{h.where}: candidate '{h.candidate}' is not a candidate of this comparison "
                            f"(have: {', '.join(sorted(candidates))})")
        elif h.task not in judge.tasks:
            problems.append(f"{h.where}: task '{h.task}' is not judged (judge.tasks: {', '.join(judge.tasks)})")
        elif h.doc_id not in docs.get(h.task, set()):
            problems.append(f"{h.where}: doc_id {h.doc_id} is not an item the comparison scores on {h.task} "
                            "(mind eval.limit and subset)")
    if problems:
        raise ConfigError(problems)


def _answers(store: Store, run: PlannedRun) -> pd.DataFrame:
    df = store.read(run.key)
    return df[df["filter"] == df["filter"].iloc[0]].set_index("doc_id").sort_index()


def _verdict(label_index: int, order: str) -> str:
    """The judge's pick (0: A, 1: B, 2: tie) in the candidate's terms."""
    if label_index == 2:
        return "tie"
    candidate_is_a = order == "candidate_first"
    return "win" if (label_index == 0) == candidate_is_a else "loss"


def run_judge(pairs: list[JudgedPair], spec: HarnessSpec, store: Store,
              log: Callable[[str], None] = print) -> list[str]:
    """Judge the pairs the store lacks (one judge model load for all); returns what was judged."""
    import lm_eval
    from lm_eval.api.instance import Instance

    from harness.execute import device_name, load_backend

    todo = [p for p in pairs if not store.has(p.key)]
    if not todo:
        return []
    judge = spec.judge
    assert judge is not None
    _, rubric = read_rubric(judge)
    entry = judge_entry(spec, store)  # its labels were checked before any model loaded (pipeline)
    log(f"judge: loading {entry.model_dir.name} to judge {len(todo)} pairing(s) in both orders")
    backend = load_backend(spec, [entry], dtype=judge.model.dtype)
    done = []
    try:
        with backend.activate(BASE, entry.prompt, "judge") as lm:
            for pair in todo:
                start = time.perf_counter()
                base, cand = _answers(store, pair.base_run), _answers(store, pair.candidate_run)
                rows, requests = [], []
                for doc_id in base.index:
                    b, c = base.loc[doc_id], cand.loc[doc_id]
                    for order in ORDERS:
                        a_text, b_text = (b["response"], c["response"]) if order == "base_first" else \
                            (c["response"], b["response"])
                        text = rubric.render(input=b["prompt"], reference=b["target"], answer_a=a_text,
                                             answer_b=b_text)
                        context = lm.apply_chat_template([{"role": "user", "content": text}]) \
                            if entry.prompt.template is not None else text
                        rows.append({"doc_id": int(doc_id), "order": order, "judge_prompt": context,
                                     "base_response": b["response"], "candidate_response": c["response"]})
                        requests += [Instance("loglikelihood", {}, (context, label), len(requests))
                                     for label in judge.labels]
                scored = lm.loglikelihood(requests)
                for i, row in enumerate(rows):
                    lps = [float(scored[3 * i + k][0]) for k in range(3)]
                    pick = max(range(3), key=lps.__getitem__)
                    row.update(lp_a=lps[0], lp_b=lps[1], lp_tie=lps[2], pick=judge.labels[pick],
                               verdict=_verdict(pick, row["order"]))
                records = pd.DataFrame(rows)
                wall = time.perf_counter() - start
                store.write(pair.key, records, RunManifest(
                    model_fp=pair.key.model_fp, task=pair.key.task, task_hash=pair.key.task_hash,
                    harness_version=harness.__version__, lm_eval_version=lm_eval.__version__,
                    label=f"judge:{pair.candidate}", backend=backend.name, n_items=len(base),
                    n_requests=len(requests), wall_s=round(wall, 3), created_at=now_iso(),
                    device=device_name(spec.eval.device)))
                log(f"judge: {pair.candidate:>12} {pair.task:<22} {len(base)} items x 2 orders in {wall:5.1f} s")
                done.append(f"{pair.candidate}/{pair.task}")
    finally:
        backend.close()
    return done
