"""The pairwise judge: after the answers are generated, a judge model reads each (base, candidate) pair
of a judged task in both orders and its log-probabilities of the three labels (answer A better,
answer B better, tie) give the verdict. Deterministic and cheap: one scored token per label.

Judged results are stored like any run (harness.store), keyed by the judge (its weights and prompt
format), the rubric's text, the labels and every pair's content (both answers, in order): a re-run
judges nothing, an edited rubric re-judges everything and nothing else.

Per item the candidate earns, in each order, 1 for a win, 0.5 for a tie, 0 for a loss; its item score
is the mean of the two orders. An order's verdict is in the candidate's terms ("win", "tie",
"loss"), so position bias (the judge preferring the first answer shown) shows as the two orders
disagreeing. The stored records keep the three log-probabilities, so how they are read (raw, or
calibrated: `judge.calibrate`, read_verdicts) is decided at compare time and re-judges nothing.

The judge is a model the harness loads (`judge.model`, with a LoRA `judge.adapter` where given) on the
comparison's backend, or a model behind a chat API (`judge.endpoint`, harness.backends.chat_judge),
whose label log-probabilities come from its reply's top_logprobs. Beside the comparison's pairs it
judges its own labelled validation pairs, and grades answers alone (harness.grading).
"""

from __future__ import annotations

import functools
import hashlib
import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from harness.backends.chat_judge import ChatJudge, LabelReading
from harness.config import HarnessSpec, JudgeEndpointSpec, JudgeSpec
from harness.errors import ConfigError, HarnessError
from harness.execute import Job
from harness.plan import ModelEntry, Plan, PlannedRun, scoring_backend
from harness.records import BASE, JudgedExample, JudgedResult
from harness.sources.fingerprint import adapter_fingerprint, model_fingerprint, resolve_model_dir
from harness.sources.prompts import model_fingerprint_with, resolve_prompt_format
from harness.stats import analyze_paired, kappa_interval, length_controlled_win_rate
from harness.store import JUDGMENT, RunKey, Store
from harness.util.lazy import Lazy
from harness.util.reads import note_read

SLOTS = ("answer_a", "answer_b")  # what a rubric must show the judge; `input` and `reference` it may
ORDERS = ("base_first", "candidate_first")
POINTS = {"win": 1.0, "tie": 0.5, "loss": 0.0}
# of the judged records, in every key (2: the input as the task words the document; tokens. 3: stored as
# judgments, not as runs of a task named `<task>@judge`)
JUDGE_FORMAT = 3


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
    return read_template(Path(judge.rubric), SLOTS, "both answers")


def read_template(path: Path, slots: tuple[str, ...], what: str):
    """A judge's Jinja prompt (text, template), checked to show `slots` (`what` in words) and to use
    nothing else than them, `input` and `reference`."""
    import jinja2
    from jinja2 import meta

    note_read(path)
    text = path.read_text(encoding="utf-8")
    env = _sandbox()
    try:
        names = meta.find_undeclared_variables(env.parse(text))
    except jinja2.TemplateSyntaxError as e:
        raise HarnessError(f"{path}: line {e.lineno}: the rubric does not parse: {e.message}") from None
    missing = [s for s in slots if s not in names]
    if missing:
        raise HarnessError(f"{path}: the rubric never shows {' or '.join('{{ ' + m + ' }}' for m in missing)}: "
                           f"the judge must see {what} (it may also use {{{{ input }}}} and {{{{ reference }}}})")
    unknown = sorted(names - {*slots, "input", "reference"})
    if unknown:
        raise HarnessError(f"{path}: the rubric uses {', '.join(unknown)}, which the judge is not given "
                           f"(it gets input, reference, {', '.join(slots)})")
    return text, Rubric(text)


class Rubric:
    """A checked judge prompt, rendered in Jinja's sandbox (every variable required); compiled on first
    use, and sent to another process (a Ray worker) as its text: a compiled template does not pickle."""

    def __init__(self, text: str):
        self.text, self._template = text, None

    def render(self, **values) -> str:
        if self._template is None:
            self._template = _sandbox().from_string(self.text)
        return self._template.render(**values)

    def __getstate__(self) -> dict:
        return {"text": self.text, "_template": None}


def _sandbox():
    """Jinja's immutable sandbox, every variable required: where judge prompts are parsed and rendered."""
    import jinja2
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    return ImmutableSandboxedEnvironment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)


SERVED = "judge-endpoint:"  # the group of a judge behind a chat API (execute.load_backend: harness.backends.chat_judge)


@functools.lru_cache(maxsize=8)
def _served_description(endpoint: JudgeEndpointSpec) -> str:
    """What the server says of the judge's model, asked once per process."""
    from harness.backends.chat_judge import ChatJudge

    client = ChatJudge(endpoint)
    try:
        return json.dumps(client.describe(), sort_keys=True)
    finally:
        client.close()


@functools.lru_cache(maxsize=8)
def _probed(endpoint, served: str, folder: Path, trust_remote_code: bool):
    """A judge served by name on backend openai, probed once per process."""
    from transformers import AutoTokenizer

    from harness.backends.openai import probe_server

    tokenizer = AutoTokenizer.from_pretrained(str(folder), trust_remote_code=trust_remote_code)
    return probe_server(endpoint, served, tokenizer, api="completions", tokenizer_ref=folder)


def judge_entry(spec: HarnessSpec, store: Store) -> ModelEntry:
    """The judge as a model of its own group (its folder), keyed by weights and prompt format; a served
    judge by its id and what its server says of it (its rendering of the chat is the server's)."""
    judge = spec.judge
    assert judge is not None
    if judge.endpoint is not None:
        described = _served_description(judge.endpoint)
        fp = "served-" + hashlib.sha256(described.encode()).hexdigest()
        return ModelEntry("judge", fp, group=f"{SERVED}{judge.endpoint.base_url}#{judge.endpoint.model}",
                          variant=BASE, model_dir=Path(judge.endpoint.model), weights_fp=fp)
    folder = resolve_model_dir(judge.model.path, judge.model.revision)
    fp = model_fingerprint(folder, dtype=judge.model.dtype, backend=scoring_backend(spec), hasher=store.file_hash)
    adapter = Path(judge.adapter) if judge.adapter is not None else None
    if adapter is not None:  # a LoRA judge: served as its base's variant "judge", keyed by the adapter's files
        fp = adapter_fingerprint(fp, adapter, hasher=store.file_hash)
    prompt = resolve_prompt_format(judge.model, [folder], "judge")
    served = None
    if spec.eval.backend == "openai":  # the judge's folder served by name as the models are (backend openai)
        served = _probed(spec.eval.endpoint, judge.model.served, folder, judge.model.trust_remote_code)
        fp = hashlib.sha256(f"{fp}:served:{judge.model.served}:{served.identity}".encode()).hexdigest()
    return ModelEntry("judge", model_fingerprint_with(fp, prompt), group=f"judge:{folder}",
                      variant=BASE if adapter is None else "judge", model_dir=folder, adapter_dir=adapter,
                      trust_remote_code=judge.model.trust_remote_code, allow_pickle=judge.model.allow_pickle,
                      prompt=prompt, weights_fp=fp, dtype=judge.model.dtype, served=served)


LABEL_CHECK_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "merges.txt", "tokenizer_config.json",
                     "special_tokens_map.json", "added_tokens.json")  # what decides how a label tokenises


def _checked_labels(judge: JudgeSpec) -> list[str]:
    return judge.labels + (judge.grade_labels if judge.grade_rubric is not None else [])


def check_labels(judge: JudgeSpec, folder: Path, store: Store | None = None) -> None:
    """Each label one token for the judge's tokenizer (its log-probability is one next-token
    probability); loads the tokenizer only, and, with a store, once per labels and tokenizer files
    (a marker under the store, keyed by their content: a no-op re-run loads no transformers)."""
    marker = None
    if store is not None and not judge.model.trust_remote_code:
        files = [(name, store.file_hash(folder / name)) for name in LABEL_CHECK_FILES if (folder / name).is_file()]
        digest = hashlib.sha256(json.dumps([_checked_labels(judge), files]).encode()).hexdigest()
        marker = store.root / "checks" / f"judge-labels-{digest[:32]}"
        if marker.is_file():
            return
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(folder), trust_remote_code=judge.model.trust_remote_code)
    for label in _checked_labels(judge):
        ids = tok(label, add_special_tokens=False)["input_ids"]
        if len(ids) != 1:
            raise ConfigError([f"judge.labels: '{label}' is {len(ids)} tokens for the judge's tokenizer "
                               f"({folder}); give labels of one token each (e.g. A, B, C)"])
    if marker is not None:
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(f"labels {judge.labels} are one token each for {folder}\n")


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
    for cand in (m for m in plan.models if not m.is_base and not m.prompting):
        for task in judge.tasks:  # each fine-tune against its own base
            base_run, cand_run = runs[(cand.base, task)], runs[(cand.label, task)]
            b, c = read(base_run), read(cand_run)
            content = hashlib.sha256()
            content.update(json.dumps([JUDGE_FORMAT, text, judge.labels]).encode())
            for side in (b, c):
                rows = judged_rows(side, judge.limit)
                content.update(json.dumps(rows[["doc_id", "prompt_hash", "response"]].values.tolist()).encode())
            key = RunKey(model_fp=entry.fingerprint, task=task, task_hash=content.hexdigest(), kind=JUDGMENT)
            pairs.append(JudgedPair(cand.label, task, base_run, cand_run, key))
    return pairs


def judged_rows(records: pd.DataFrame, limit: int | None) -> pd.DataFrame:
    """A run's answers as judged: one filter's rows, by document id, the first `limit` of them."""
    rows = records[records["filter"] == records["filter"].iloc[0]].sort_values("doc_id")
    return rows if limit is None else rows.head(limit)


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
    note_read(path)
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
    candidates = {m.label for m in plan.models if not m.is_base and not m.prompting}
    docs = {t.leaf: set(sorted(t.indices if t.indices is not None else range(t.n_docs))[:judge.limit])
            for t in plan.tasks}
    problems = []
    for h in read_human_labels(judge):
        if h.candidate not in candidates:
            problems.append(f"{h.where}: candidate '{h.candidate}' is not a candidate of this comparison "
                            f"(have: {', '.join(sorted(candidates))})")
        elif h.task not in judge.tasks:
            problems.append(f"{h.where}: task '{h.task}' is not judged (judge.tasks: {', '.join(judge.tasks)})")
        elif h.doc_id not in docs.get(h.task, set()):
            problems.append(f"{h.where}: doc_id {h.doc_id} is not an item the comparison scores on {h.task} "
                            "(mind eval.limit, subset and judge.limit)")
    if problems:
        raise ConfigError(problems)


def judged_input(run: PlannedRun, doc: str, prompt: str) -> str:
    """What the judge is shown as the task's input: the document as the task words it (its
    doc_to_text), without any model's chat markup or worked examples; the prompt as a fallback."""
    try:
        text = run.task.task.doc_to_text(json.loads(doc))
    except Exception:  # a task whose doc_to_text needs more than the document: the prompt as scored
        return prompt
    return text if isinstance(text, str) else prompt


def judge_items(store: Store, pair: JudgedPair, limit: int | None = None) -> pd.DataFrame:
    """One row per item of the pairing: the input, the reference and both answers (doc_id index)."""
    base, cand = (judged_rows(store.read(run.key), limit).set_index("doc_id")
                  for run in (pair.base_run, pair.candidate_run))
    return pd.DataFrame({
        "input": [judged_input(pair.base_run, d, p) for d, p in zip(base["doc"], base["prompt"], strict=True)],
        "reference": base["target"].astype(str), "base_response": base["response"].astype(str),
        "candidate_response": cand["response"].reindex(base.index).astype(str)}, index=base.index)


def _verdict(label_index: int, order: str) -> str:
    """The judge's pick (0: A, 1: B, 2: tie) in the candidate's terms."""
    if label_index == 2:
        return "tie"
    candidate_is_a = order == "candidate_first"
    return "win" if (label_index == 0) == candidate_is_a else "loss"


LP_COLUMNS = ("lp_a", "lp_b", "lp_tie")


def judge_frame(lm, rubric, labels: list[str], templated: bool, items: pd.DataFrame) -> pd.DataFrame:
    """The judge's log-probabilities of the three labels for every item in both orders (`lm`: an
    lm-eval model; `items` as judge_items gives), with its raw pick (the most likely label) and that
    pick in the candidate's terms (judge_frames, for one pairing)."""
    return judge_frames(lm, rubric, labels, templated, [items])[0]


def judge_frames(lm, rubric, labels: list[str], templated: bool, pairings: list[pd.DataFrame]) -> list[pd.DataFrame]:
    """judge_frame for several pairings at once: every prompt of every pairing in one request list, so
    the prompts that begin alike (one item's, across both orders and every candidate: the rubric, the
    input, the reference, then in one order the base's answer) share that beginning's pass on a backend
    that scores shared beginnings once (hf). One forward per distinct prompt: lm-eval scores the one-token
    labels of a context from one pass; a served judge (harness.backends.chat_judge) is asked each prompt
    as a chat message."""
    frames, texts = [], []
    for items in pairings:
        rows = []
        for doc_id, item in items.iterrows():
            for order in ORDERS:
                first, second = (item["base_response"], item["candidate_response"]) if order == "base_first" \
                    else (item["candidate_response"], item["base_response"])
                rows.append({"doc_id": int(doc_id), "order": order, "input": item["input"],
                             "reference": item["reference"], "base_response": item["base_response"],
                             "candidate_response": item["candidate_response"], "at": len(texts)})
                texts.append(rubric.render(input=item["input"], reference=item["reference"], answer_a=first,
                                           answer_b=second))
        frames.append(rows)
    readings = read_labels(lm, texts, labels, templated)
    out = []
    for rows in frames:
        for row in rows:
            r = readings[row.pop("at")]
            row.update(dict(zip(LP_COLUMNS, r.logprobs, strict=True)), judge_prompt=r.prompt,
                       judge_tokens=r.tokens, reading=r.reading, pick="" if r.pick is None else labels[r.pick],
                       verdict=_verdict(2 if r.pick is None else r.pick, row["order"]))
        out.append(pd.DataFrame(rows))
    return out


def read_labels(lm, texts: list[str], labels: list[str], templated: bool) -> list[LabelReading]:
    """The judge's reading of three labels after each text: a served judge asked each as a chat message,
    an lm-eval model scoring them (_read_locally)."""
    return lm.read_labels(texts, labels) if isinstance(lm, ChatJudge) else _read_locally(lm, texts, labels, templated)


def _read_locally(lm, texts: list[str], labels: list[str], templated: bool) -> list[LabelReading]:
    """The three labels' log-probabilities after each text (as the judge's chat turn where `templated`),
    from an lm-eval model: one forward per distinct prompt (lm-eval scores the one-token labels of a
    context from one pass)."""
    from lm_eval.api.instance import Instance

    contexts = [lm.apply_chat_template([{"role": "user", "content": t}]) if templated else t for t in texts]
    requests = [Instance("loglikelihood", {}, (c, label), 3 * i + k)
                for i, c in enumerate(contexts) for k, label in enumerate(labels)]
    scored = lm.loglikelihood(requests)
    out = []
    for i, context in enumerate(contexts):
        lps = tuple(float(scored[3 * i + k][0]) for k in range(3))
        out.append(LabelReading(lps, max(range(3), key=lps.__getitem__), "logprobs",
                                len(lm.tok_encode(context)) + 1, "", prompt=context))
    return out


def read_verdicts(df: pd.DataFrame, calibrate: bool, labels: list[str] | None = None) -> pd.DataFrame:
    """doc_id x order -> the verdict in the candidate's terms, read from the stored log-probabilities.
    Calibrated: each label's mean log-probability over all the pairing's prompts is subtracted before
    the most likely label is taken. Every answer is shown first as often as second, so the mean holds
    the judge's prior for a position or a label (answer A whatever it says) and none of the answers'
    content; what is left is the judge's preference between the two answers (balanced position
    calibration, Wang et al. 2023, "Large Language Models are not Fair Evaluators"; contextual
    calibration, Zhao et al. 2021). A judge that sees nothing then agrees with itself across the two
    orders by chance only, which position consistency shows.

    A served judge's verdicts read from its reply's text (no log-probabilities: `reading` text) keep
    their pick as it is, a reply that names no label as a tie; the means are over the others."""
    lps = df[list(LP_COLUMNS)].to_numpy(dtype=float, copy=True)
    scored = ~np.isnan(lps).any(axis=1)
    if calibrate and scored.any():
        lps[scored] -= lps[scored].mean(axis=0)
    said = df["pick"].map({label: k for k, label in enumerate(labels)}).fillna(2).to_numpy(dtype=int) \
        if labels is not None else np.full(len(df), 2)
    picks = np.where(scored, np.nan_to_num(lps, nan=-np.inf).argmax(axis=1), said)
    verdicts = [_verdict(int(k), o) for k, o in zip(picks, df["order"], strict=True)]
    return pd.DataFrame({"doc_id": df["doc_id"], "order": df["order"], "verdict": verdicts}) \
        .pivot(index="doc_id", columns="order", values="verdict").sort_index()[list(ORDERS)]


def item_scores(wide: pd.DataFrame) -> np.ndarray:
    """Per item (read_verdicts's rows), the candidate's points averaged over the two orders."""
    return np.mean([wide[o].map(POINTS).to_numpy(dtype=float) for o in ORDERS], axis=0)


def first_position_rate(df: pd.DataFrame, labels: list[str]) -> float:
    """Share of the judge's raw picks of an answer (A or B) that went to the one shown first: where it
    looks first; 0.5 where it picked no answer."""
    picks = df[df["pick"].isin(labels[:2])]
    return float((picks["pick"] == labels[0]).mean()) if len(picks) else 0.5


JUDGED_EXAMPLES = 20  # judged items shown per (candidate, task)


def judge_results(plan: Plan, spec: HarnessSpec, store: Store, read: Callable[[PlannedRun], pd.DataFrame],
                  clusters_of: Callable[[PlannedRun, pd.DataFrame], np.ndarray | None],
                  ) -> dict[str, list[JudgedResult]]:
    """Candidate -> its judged tasks (judged_result of each stored pairing). `read` gives the records
    compare has read already; `clusters_of` the cluster of each document of a run (by its records, one
    row per document), None where the task has none."""
    out: dict[str, list[JudgedResult]] = {}
    people = read_human_labels(spec.judge) if spec.judge is not None else []
    for pair in plan_judgments(plan, spec, store, read):
        base_docs = read(pair.base_run).drop_duplicates("doc_id").set_index("doc_id").sort_index()
        clusters = clusters_of(pair.base_run, base_docs)
        theirs = {h.doc_id: h.verdict for h in people if (h.candidate, h.task) == (pair.candidate, pair.task)}
        manifest = store.read_manifest(pair.key)
        out.setdefault(pair.candidate, []).append(judged_result(
            pair.task, store.read(pair.key), spec, clusters=clusters, human=theirs, judge_s=manifest.wall_s,
            tokens_fed=manifest.tokens_fed))
    return out


def judged_result(task: str, df: pd.DataFrame, spec: HarnessSpec, clusters: np.ndarray | None = None,
                  human: dict[int, str] | None = None, judge_s: float = 0.0,
                  tokens_fed: int | None = None) -> JudgedResult:
    """A pairing's judged records (harness.judge.judge_frame) as the candidate's win rate over the base
    (both orders, ties as half) with its paired interval, and the judge's diagnostics: position
    consistency of the verdicts read, the raw picks' first-position rate, the longer answer's rate,
    agreement with people's verdicts (`human`: doc_id -> candidate | base | tie)."""
    judge, st = spec.judge, spec.stats
    assert judge is not None
    wide = read_verdicts(df, judge.calibrate, judge.labels)
    raw = read_verdicts(df, False, judge.labels)
    scores = item_scores(wide)
    stats = analyze_paired(np.full(scores.size, 0.5), scores, clusters=clusters, confidence=st.confidence,
                           resamples=st.resamples, seed=st.seed)
    long = df.drop_duplicates("doc_id").set_index("doc_id").sort_index()
    length = (long["candidate_response"].str.len() - long["base_response"].str.len()).loc[wide.index]
    decided = np.stack([wide[o].to_numpy() for o in ORDERS])
    differ = (length != 0).to_numpy()
    won = (decided == "win")[:, differ]
    lost = (decided == "loss")[:, differ]
    longer_wins = (won & (length.to_numpy()[differ] > 0)) | (lost & (length.to_numpy()[differ] < 0))
    n_decisive = int(won.sum() + lost.sum())
    length_controlled = length_controlled_win_rate(scores, length.to_numpy(dtype=float), confidence=st.confidence)
    longer = float(longer_wins.sum() / n_decisive) if n_decisive else None
    examples = [JudgedExample(doc_id=int(d), input=str(long.loc[d, "input"]), reference=str(long.loc[d, "reference"]),
                              base_response=str(long.loc[d, "base_response"]),
                              candidate_response=str(long.loc[d, "candidate_response"]),
                              base_first=wide.loc[d, ORDERS[0]], candidate_first=wide.loc[d, ORDERS[1]])
                for d in wide.index[:JUDGED_EXAMPLES]]
    # the judge's item verdict on balance against people's, on the items they labelled
    item = pd.Series(np.where(scores > 0.5, "candidate", np.where(scores < 0.5, "base", "tie")), index=wide.index)
    human = human or {}
    kappa = kappa_interval([item[d] for d in human], list(human.values()), confidence=st.confidence,
                           resamples=st.resamples, seed=st.seed) if human else None
    return JudgedResult(
        task=task, n=int(scores.size), judge=judge.name, win_rate=stats.delta.map(lambda x: x + 0.5),
        p_value=stats.p_value, mde=stats.mde, wins=int((scores > 0.5).sum()), ties=int((scores == 0.5).sum()),
        losses=int((scores < 0.5).sum()), calibrated=judge.calibrate,
        position_consistency=float((wide[ORDERS[0]] == wide[ORDERS[1]]).mean()),
        raw_position_consistency=float((raw[ORDERS[0]] == raw[ORDERS[1]]).mean()),
        first_position_rate=first_position_rate(df, judge.labels), longer_rate=longer,
        decisive_rate=float((decided != "tie").mean()), length_controlled=length_controlled,
        min_position_consistency=judge.min_position_consistency, human_n=len(human), human_kappa=kappa,
        min_human_agreement=judge.min_human_agreement, judge_s=judge_s,
        judge_requests=(1 if judge.endpoint is not None else 3) * len(df),
        read_from_text=int((df["reading"] == "text").sum()) if "reading" in df else 0,
        unread=int((df["pick"] == "").sum()),
        judge_tokens=int(df["judge_tokens"].sum()) if "judge_tokens" in df else 0, judge_tokens_fed=tokens_fed,
        examples=examples)


@contextmanager
def loaded_judge(spec: HarnessSpec, store: Store) -> Iterator[tuple[object, object, ModelEntry]]:
    """The config's judge loaded on the config's backend, for judging by hand (judge_frame): (backend,
    lm-eval model, its entry). A comparison judges through run_judge instead."""
    from harness.execute import load_backend

    assert spec.judge is not None
    entry = judge_entry(spec, store)
    backend = load_backend(spec, [entry])
    try:
        with backend.activate(entry.variant, entry.prompt, "judge") as lm:
            yield backend, lm, entry
    finally:
        backend.close()


def judge_scorer(spec: HarnessSpec, entry: ModelEntry,
                 frames_of: Callable[[object, list[Job]], list[pd.DataFrame]]) -> Callable:
    """A Job's score function for the judge: `frames_of(lm, jobs)` gives each job's records (judge_frames's
    or grading's), read within the judge's loaded variant; the time, memory and tokens go to each job by
    its share of the prompts' tokens."""
    from harness.execute import Scored, lm_tokens
    from harness.util.environment import PeakMemory

    def score(backend, jobs: list[Job]) -> list[Scored]:
        start = time.perf_counter()
        with (PeakMemory(spec.eval.device, measure=backend.name == "hf") as peak,
              backend.activate(entry.variant, entry.prompt, "judge") as lm):
            frames = frames_of(lm, jobs)
            if isinstance(lm, ChatJudge):  # what the server counted (`usage`)
                used = sum(int(f["judge_tokens"].sum()) for f in frames)
                tokens = {"fed": used, "requested": used}
            else:
                tokens = lm_tokens(lm)
        wall = time.perf_counter() - start
        # scored together, the time and the tokens fed are each job's share by its prompts' tokens
        prompt_tokens = [int(f["judge_tokens"].sum()) for f in frames]
        share = [t / max(sum(prompt_tokens), 1) for t in prompt_tokens]
        per_prompt = 1 if isinstance(lm, ChatJudge) else 3  # a chat request reads all three labels
        return [Scored(f, per_prompt * len(f), wall * w, peak.mb,
                       tokens={k: round(v * w) for k, v in tokens.items()}) for f, w in zip(frames, share, strict=True)]

    return score


def run_judge(pairs: list[JudgedPair], spec: HarnessSpec, store: Store,
              log: Callable[[str], None] = print, also: list[Job] = ()) -> list[str]:
    """Judge the pairs the store lacks, through execute's one scoring loop (one judge model load for all,
    each pairing claimed in the store: two processes never judge one pairing twice); returns what was
    judged. The pairings of one task that a process holds are judged together (judge_frames): the
    prompts for one item begin alike across both orders and every candidate, and the hf backend scores
    each such beginning once; the log says how many tokens it fed of those in the prompts. `also`: the
    judge's other jobs (harness.grading: its validation pairs, the grades), scored with the same load."""
    from harness.execute import execute_jobs

    judge = spec.judge
    if judge is None or not (pairs or also):
        return []
    _, rubric = read_rubric(judge)  # its labels were checked before any model loaded (pipeline)
    entry = judge_entry(spec, store)
    # read here: a job sent to a Ray worker carries its answers, not the store
    items = {p.key: Lazy(functools.partial(judge_items, store, p, judge.limit))
             for p in pairs if not store.has(p.key)}

    def frames_of(lm, jobs: list[Job]) -> list[pd.DataFrame]:
        return judge_frames(lm, rubric, judge.labels, entry.prompt.template is not None,
                            [items[j.key].get() for j in jobs])

    score = judge_scorer(spec, entry, frames_of)
    todo = [*(j for j in also if not store.has(j.key)), *(
        Job(p.key, entry, p.candidate, p.task, score, together=f"judge:{p.task}") for p in pairs
        if not store.has(p.key))]
    if not todo:
        return []
    validating = any(j.label == "validation" for j in todo)
    grading = sum(1 for j in todo if (j.together or "").startswith("grade:"))
    log(f"judge: {judge.name} judges {len(todo) - grading} pairing(s) in both orders"
        + (" (its validation pairs among them)" if validating else "")
        + (f", grades {grading} model answer set(s)" if grading else ""))
    return execute_jobs(todo, spec, store, log, stage="judge", unit="pairing").scored
