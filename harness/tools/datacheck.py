"""`harness data check`: look at training data before anyone trains on it.

    harness data check train.jsonl [--suite suites/demo.yaml] [--json check.json] [--html check.html]

Finds, each with the lines it concerns: lines that are not valid records; exact duplicates (after
normalising case and spaces) and near duplicates (MinHash over word 5-grams, verified by exact
Jaccard similarity); empty records; records that look cut off (no closing punctuation where
nearly all others have one); length outliers (robust z-score of the word count); the balance of
labels when completions are few distinct values (a classification set); and, with a suite,
train/eval contamination: every training record against every item its tasks score, by word
n-grams (13 by default, as lm-eval's decontamination). lm-eval calls an item contaminated when any
one of its n-grams appears in the training data; on templated data that flags nearly every item,
so a pair is listed here when a training record holds at least `min_overlap` of the item's n-grams
(items shorter than n words: the whole item). Exit 1 when the share of contaminated eval items
exceeds `max_contaminated`, so the check can gate a training job.
"""

from __future__ import annotations

import hashlib
import json
import re
import statistics
from collections import Counter, defaultdict
from pathlib import Path

from harness.errors import HarnessError
from harness.persisted import ContaminatedPair, DataCheckResult, Problem

WORD = re.compile(r"[a-z0-9]+")


def words(text: str) -> list[str]:
    return WORD.findall(text.lower())


def ngrams(tokens: list[str], n: int) -> set[str]:
    if len(tokens) < n:
        return {" ".join(tokens)} if tokens else set()
    return {" ".join(tokens[i:i + n]) for i in range(len(tokens) - n + 1)}


def record_text(row: dict) -> tuple[str, str]:
    """(the whole text, the part that is learned) of a prompt/completion or chat record."""
    if isinstance(row.get("messages"), list):
        turns = [m.get("content", "") for m in row["messages"] if isinstance(m, dict)]
        learned = [m.get("content", "") for m in row["messages"]
                   if isinstance(m, dict) and m.get("role") == "assistant"]
        return "\n".join(str(t) for t in turns), "\n".join(str(t) for t in learned)
    return f"{row.get('prompt', '')}{row.get('completion', '')}", str(row.get("completion", ""))


def read_lines(path: Path) -> tuple[list[tuple[int, dict]], list[Problem]]:
    """Every record with its line; unreadable lines become problems (nothing stops the check)."""
    if not path.is_file():
        raise HarnessError(f"{path}: training data file not found")
    rows, problems = [], []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            problems.append(Problem(kind="invalid", lines=[n], detail=f"not valid JSON ({e.msg})"))
            continue
        if not isinstance(row, dict) or not ("messages" in row or "completion" in row):
            problems.append(Problem(kind="invalid", lines=[n], detail="not a prompt/completion or chat record"))
            continue
        rows.append((n, row))
    return rows, problems


def _duplicates(texts: dict[int, str], near: float) -> list[Problem]:
    from datasketch import MinHash, MinHashLSH

    out, first = [], {}
    groups: dict[str, list[int]] = defaultdict(list)
    for line, text in texts.items():
        groups[" ".join(text.lower().split())].append(line)
    for lines in groups.values():
        first[lines[0]] = lines
        if len(lines) > 1:
            out.append(Problem(kind="duplicate", lines=lines, detail=f"the same record {len(lines)} times"))
    # near duplicates among the distinct records: LSH finds candidates, exact Jaccard decides
    shingles = {line: ngrams(words(texts[line]), 5) for line in first}
    lsh, hashes = MinHashLSH(threshold=near, num_perm=128), {}
    for line, sh in shingles.items():
        m = MinHash(num_perm=128, seed=1)
        m.update_batch([s.encode() for s in sh])
        lsh.insert(str(line), m)
        hashes[line] = m
    seen = set()
    for line, m in hashes.items():
        for other in map(int, lsh.query(m)):
            pair = (min(line, other), max(line, other))
            if other == line or pair in seen:
                continue
            seen.add(pair)
            a, b = shingles[pair[0]], shingles[pair[1]]
            jaccard = len(a & b) / len(a | b) if a | b else 1.0
            if jaccard >= near:
                out.append(Problem(kind="near_duplicate", lines=list(pair),
                                   detail=f"Jaccard {jaccard:.2f} on word 5-grams"))
    return sorted(out, key=lambda p: (p.kind, p.lines))


def _shape(rows: list[tuple[int, dict]]) -> tuple[list[Problem], dict[str, int] | None, float]:
    """Empty, cut-off and outlying records; the label counts of classification data."""
    out = []
    learned = {n: record_text(r)[1].strip() for n, r in rows}
    lengths = {n: len(words(record_text(r)[0])) for n, r in rows}
    empty = [n for n, text in learned.items() if not text]
    if empty:
        out.append(Problem(kind="empty", lines=empty, detail="nothing to learn (empty completion or assistant turns)"))
    ended = {n: text[-1] in ".!?\"')]}>" for n, text in learned.items() if text}
    if ended and sum(ended.values()) >= 0.9 * len(ended):
        cut = [n for n, ok in ended.items() if not ok]
        if cut:
            out.append(Problem(kind="truncated", lines=cut, detail=f"no closing punctuation, where "
                               f"{sum(ended.values()) / len(ended):.0%} of the records end with one"))
    values = list(lengths.values())
    median = statistics.median(values) if values else 0.0
    mad = statistics.median(abs(v - median) for v in values) if values else 0.0
    if mad > 0:
        far = [n for n, v in lengths.items() if abs(0.6745 * (v - median) / mad) > 3.5]
        if far:
            out.append(Problem(kind="length_outlier", lines=far, detail=f"word count far from the median {median:g} "
                               f"(robust z > 3.5; MAD {mad:g})"))
    heads = Counter(text.split(".")[0].split("\n")[0].strip() for text in learned.values() if text)
    labels = dict(heads.most_common()) if heads and len(heads) <= max(2, min(50, len(learned) // 10)) else None
    return out, labels, float(median)


def eval_items(suite_path: Path) -> list[tuple[str, int, str]]:
    """(task, doc_id, text) of every item the suite's tasks score: prompt and correct answer."""
    from harness.config import load_suite
    from harness.sources.tasks import load_tasks

    suite = load_suite(suite_path)
    items = []
    for lt in load_tasks(suite, str(suite_path)):
        task = lt.task
        docs = list(task.eval_docs)
        for doc_id in (lt.indices if lt.indices is not None else range(len(docs))):
            doc = docs[doc_id]
            text, target = task.doc_to_text(doc), task.doc_to_target(doc)
            choices = task.doc_to_choice(doc) if task.config.output_type == "multiple_choice" else None
            if choices is not None and isinstance(target, int) and 0 <= target < len(choices):
                target = choices[target]
            items.append((lt.name, int(doc_id), f"{text} {target}" if isinstance(target, str) else str(text)))
    return items


def _contamination(rows: list[tuple[int, dict]], items: list[tuple[str, int, str]], n: int,
                   min_overlap: float) -> list[ContaminatedPair]:
    index: dict[str, list[int]] = defaultdict(list)
    grams = []
    for i, (_, _, text) in enumerate(items):
        g = ngrams(words(text), n)
        grams.append(g)
        for gram in g:
            index[gram].append(i)
    pairs = []
    for line, row in rows:
        hits: Counter[int] = Counter()
        for gram in ngrams(words(record_text(row)[0]), n):
            hits.update(index.get(gram, ()))
        for i, shared in hits.items():
            if grams[i] and shared / len(grams[i]) >= min_overlap:
                task, doc_id, text = items[i]
                pairs.append(ContaminatedPair(line=line, task=task, doc_id=doc_id,
                                              overlap=round(shared / len(grams[i]), 4), item=text))
    return sorted(pairs, key=lambda p: (p.line, p.task, p.doc_id))


def check_data(path: Path, suite: Path | None = None, ngram: int = 13, min_overlap: float = 0.8,
               near: float = 0.8, max_contaminated: float = 0.0) -> DataCheckResult:
    """Every check on one training file (and, with a suite, against its evaluation items)."""
    if ngram < 1 or not 0 < min_overlap <= 1 or not 0 < near <= 1 or not 0 <= max_contaminated <= 1:
        raise HarnessError("data check: --ngram must be >= 1, --min-overlap and --near in (0, 1], "
                           "--max-contaminated in [0, 1]")
    rows, problems = read_lines(path)
    texts = {n: record_text(r)[0] for n, r in rows}
    problems += _duplicates(texts, near)
    shape, labels, median = _shape(rows)
    problems += shape
    items = eval_items(suite) if suite is not None else []
    pairs = _contamination(rows, items, ngram, min_overlap) if items else []
    contaminated = len({(p.task, p.doc_id) for p in pairs})
    share = contaminated / len(items) if items else 0.0
    return DataCheckResult(
        file=str(path), sha256=hashlib.sha256(path.read_bytes()).hexdigest(), records=len(rows),
        problems=sorted(problems, key=lambda p: (p.lines[0], p.kind)), labels=labels, words_median=median,
        suite=str(suite) if suite else None, ngram=ngram, min_overlap=min_overlap, eval_items=len(items),
        contaminated_items=contaminated, contamination=pairs, max_contaminated=max_contaminated,
        passed=share <= max_contaminated)
