"""Benchmarks from local files: the formats people actually have, turned into the documents the
lm-eval task expects (its hub schema), so lm-eval's own prompts, processing and metrics apply.

A suite task names a `data: {format, path}`; `convert` returns the rows per role ("eval", and
"fewshot" where the files hold examples for prompting). Every malformed row is an error that
names the file, the row and the field; nothing is skipped. `local_task_config` points the task's
lm-eval config at the converted rows, written once to a cache keyed by the files' content.
"""

from __future__ import annotations

import ast
import bz2
import csv
import hashlib
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from harness.config import DataSpec
from harness.errors import HarnessError
from harness.util.files import atomic_write, read_jsonl, require_file

Rows = dict[str, list[dict]]
CONVERTER_VERSION = 2  # part of the cache key of converted files


def _need(row: dict, field: str, where: str) -> Any:
    if field not in row or row[field] is None:
        raise HarnessError(f"{where}: missing field '{field}'")
    return row[field]


def _csv(path: Path) -> Iterator[tuple[str, dict]]:
    with require_file(path, "data file").open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        for row in reader:
            yield f"{path}:{reader.line_num}", row


def _int(value: Any, where: str, field: str, allowed: range | None = None) -> int:
    try:
        out = int(str(value).strip())
    except ValueError:
        raise HarnessError(f"{where}: field '{field}' is {value!r}, not an integer") from None
    if allowed is not None and out not in allowed:
        raise HarnessError(f"{where}: field '{field}' is {out}, expected {allowed.start}..{allowed.stop - 1}")
    return out


# --------------------------------------------------------------------------- forgetting benchmarks


def arc_jsonl(path: Path, leaf: str) -> Rows:
    """AI2 ARC JSONL ({id, question: {stem, choices: [{text, label}]}, answerKey}) -> ai2_arc."""
    rows = []
    for where, r in read_jsonl(path):
        q = _need(r, "question", where)
        choices = _need(q, "choices", f"{where} question")
        labels = [_need(c, "label", f"{where} question.choices") for c in choices]
        key = _need(r, "answerKey", where)
        if key not in labels:
            raise HarnessError(f"{where}: answerKey {key!r} is not one of the choice labels {labels}")
        rows.append({"id": _need(r, "id", where), "question": _need(q, "stem", f"{where} question"),
                     "choices": {"text": [_need(c, "text", f"{where} question.choices") for c in choices],
                                 "label": labels}, "answerKey": key})
    return {"eval": rows}


def hellaswag_txt(path: Path, leaf: str) -> Rows:
    """llama.cpp's HellaSwag text (6 lines per item: 'activity: context', label, 4 endings; .bz2 ok)."""
    opener = bz2.open if path.suffix == ".bz2" else open
    with opener(require_file(path, "data file"), "rt", encoding="utf-8") as f:
        lines = f.read().split("\n")
    while lines and lines[-1] == "":
        lines.pop()
    if len(lines) % 6:
        raise HarnessError(f"{path}: {len(lines)} lines, not a multiple of 6 (context, label, 4 endings)")
    rows = []
    for i in range(0, len(lines), 6):
        where = f"{path}:{i + 1}"
        activity, sep, ctx = lines[i].partition(": ")
        if not sep:
            raise HarnessError(f"{where}: expected 'activity label: context'")
        label = _int(lines[i + 1], f"{path}:{i + 2}", "label", range(4))
        # the file keeps the whole context in one field: ctx_a = context, ctx_b = "" (lm-eval joins them)
        rows.append({"ind": i // 6, "activity_label": activity, "ctx_a": ctx, "ctx_b": "", "ctx": ctx,
                     "endings": lines[i + 2:i + 6], "label": str(label), "split": "val", "split_type": "indomain",
                     "source_id": ""})
    return {"eval": rows}


def winogrande_csv(path: Path, leaf: str) -> Rows:
    """WinoGrande CSV with English Sentence / Option 1 / Option 2 / Answer / Split; dev rows only."""
    rows = []
    for where, r in _csv(path):
        if _need(r, "Split", where) != "dev":
            continue  # the README's rule for this copy: only dev rows are the benchmark
        sentence = _need(r, "English Sentence", where)
        if "_" not in sentence:
            raise HarnessError(f"{where}: field 'English Sentence' has no '_' blank")
        answer = str(_int(_need(r, "Answer", where), where, "Answer", range(1, 3)))
        rows.append({"sentence": sentence, "option1": _need(r, "English Option 1", where),
                     "option2": _need(r, "English Option 2", where), "answer": answer})
    if not rows:
        raise HarnessError(f"{path}: no rows with Split == 'dev'")
    return {"eval": rows}


def mmlu_csv(path: Path, leaf: str) -> Rows:
    """MMLU CSV folder: test/<subject>_test.csv and dev/<subject>_dev.csv, 0-based answers."""
    subject = leaf.removeprefix("mmlu_")

    def read(split: str) -> list[dict]:
        out = []
        for where, r in _csv(path / split / f"{subject}_{split}.csv"):
            choices = [_need(r, f"choice{k}", where) for k in range(4)]
            out.append({"question": _need(r, "question", where), "subject": subject, "choices": choices,
                        "answer": _int(_need(r, "answer", where), where, "answer", range(4))})
        return out

    return {"eval": read("test"), "fewshot": read("dev") if (path / "dev").is_dir() else []}


def boolq_jsonl(path: Path, leaf: str) -> Rows:
    """Official BoolQ JSONL ({question, passage, answer: bool}) -> super_glue/boolq."""
    rows = []
    for i, (where, r) in enumerate(read_jsonl(path)):
        answer = _need(r, "answer", where)
        if not isinstance(answer, bool):
            raise HarnessError(f"{where}: field 'answer' is {answer!r}, expected true or false")
        rows.append({"question": _need(r, "question", where), "passage": _need(r, "passage", where),
                     "idx": i, "label": int(answer)})
    return {"eval": rows}


def piqa_jsonl(path: Path, leaf: str) -> Rows:
    """PIQA dev JSONL with its labels in a sibling '<stem>-labels.lst' (one 0/1 per line)."""
    labels_path = require_file(path.with_name(f"{path.stem}-labels.lst"), "PIQA labels file")
    labels = [line.strip() for line in labels_path.read_text(encoding="utf-8").split("\n") if line.strip()]
    rows = list(read_jsonl(path))
    if len(rows) != len(labels):
        raise HarnessError(f"{labels_path}: {len(labels)} labels for {len(rows)} rows in {path}")
    return {"eval": [{"goal": _need(r, "goal", w), "sol1": _need(r, "sol1", w), "sol2": _need(r, "sol2", w),
                      "label": _int(lab, f"{labels_path}:{i + 1}", "label", range(2))}
                     for i, ((w, r), lab) in enumerate(zip(rows, labels, strict=True))]}


def gsm8k_jsonl(path: Path, leaf: str) -> Rows:
    """GSM8K JSONL ({question, answer with '#### n'})."""
    rows = []
    for where, r in read_jsonl(path):
        answer = _need(r, "answer", where)
        if "####" not in answer:
            raise HarnessError(f"{where}: field 'answer' has no '#### <number>' final answer")
        rows.append({"question": _need(r, "question", where), "answer": answer})
    return {"eval": rows}


# --------------------------------------------------------------------------- bias benchmarks


def crows_pairs_csv(path: Path, leaf: str) -> Rows:
    """CrowS-Pairs CSV (sent_more, sent_less, stereo_antistereo, bias_type)."""
    rows = []
    for where, r in _csv(path):
        row = {k: _need(r, k, where) for k in ("sent_more", "sent_less", "stereo_antistereo", "bias_type")}
        rows.append(row)
    return {"eval": rows}  # lm-eval's per-type tasks (crows_pairs_english_gender, ...) filter these


_NUMPY_ARRAY = re.compile(r"array\((\[.*?\])(?:, dtype=object)?\)", re.S)


def bbq(path: Path, leaf: str) -> Rows:
    """BBQ: a folder of the official per-category JSONL files, plus any '*.csv' reformatting whose
    dict fields hold Python/numpy repr text (as the Gender_identity copy does)."""
    files = (sorted(path.glob("*.jsonl")) + sorted(path.glob("*.csv")) if path.is_dir()
             else [require_file(path, "BBQ file")])
    if not files:
        raise HarnessError(f"{path}: no BBQ .jsonl or .csv files")
    rows = []
    for file in files:
        source = read_jsonl(file) if file.suffix == ".jsonl" else _csv(file)
        for where, r in source:
            row = dict(r)
            for field in ("answer_info", "additional_metadata"):
                value = _need(row, field, where)
                if isinstance(value, str):
                    try:
                        value = ast.literal_eval(_NUMPY_ARRAY.sub(r"\1", value))
                    except (ValueError, SyntaxError):
                        raise HarnessError(f"{where}: field '{field}' is not a readable mapping") from None
                row[field] = value
            for field in ("example_id", "label"):
                row[field] = _int(_need(row, field, where), where, field)
            row["question_index"] = str(_need(row, "question_index", where))
            for field in ("context", "question", "ans0", "ans1", "ans2", "category", "context_condition",
                          "question_polarity"):
                _need(row, field, where)
            rows.append(row)
    return {"eval": rows}


_BRACKETS = re.compile(r"\[([^\]]*)\]")


def winobias_txt(path: Path, leaf: str) -> Rows:
    """WinoBias: the folder with {pro,anti}_stereotyped_type{1,2}.txt.{dev,test}; each pro line
    paired with the anti line of the same number (the same sentence, the other pronoun). The test
    files are the benchmark (as the paper reports); the dev files are kept as the few-shot split."""
    folder = path if path.is_dir() else path.parent
    if not (folder / "pro_stereotyped_type1.txt.dev").is_file() and (folder / "data").is_dir():
        folder = folder / "data"  # the repository's layout: WinoBias/wino/data/
    occupations = {}
    for gender in ("male", "female"):
        occ_file = folder / f"{gender}_occupations.txt"
        if occ_file.is_file():
            occupations |= {line.strip().lower(): gender for line in occ_file.read_text().splitlines() if line.strip()}
    rows: Rows = {"eval": [], "fewshot": []}
    for kind in (1, 2):
        for split in ("dev", "test"):
            pro_file = require_file(folder / f"pro_stereotyped_type{kind}.txt.{split}", "WinoBias file")
            anti_file = require_file(folder / f"anti_stereotyped_type{kind}.txt.{split}", "WinoBias file")
            pro = [x for x in pro_file.read_text(encoding="utf-8").splitlines() if x.strip()]
            anti = [x for x in anti_file.read_text(encoding="utf-8").splitlines() if x.strip()]
            if len(pro) != len(anti):
                raise HarnessError(f"{anti_file}: {len(anti)} lines, but {pro_file} has {len(pro)}")
            for n, (p, a) in enumerate(zip(pro, anti, strict=True), start=1):
                where = f"{pro_file}:{n}"
                brackets = _BRACKETS.findall(p)
                if len(brackets) < 2:
                    raise HarnessError(f"{where}: expected '[occupation] ... [pronoun]' brackets")
                referent = re.sub(r"^(the|a|an)\s+", "", brackets[0].strip(), flags=re.I).lower()

                def clean(s: str) -> str:
                    return " ".join(_BRACKETS.sub(r"\1", s.split(" ", 1)[1]).split())

                rows["eval" if split == "test" else "fewshot"].append(
                    {"pro": clean(p), "anti": clean(a), "type": f"type{kind}", "split": split, "line": n,
                     "occupation": referent, "occupation_gender": occupations.get(referent, "unknown")})
    return rows


_QUOTED = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"")


def stereoset_csv(path: Path, leaf: str) -> Rows:
    """StereoSet CSV (prompt, choices as numpy repr text in the order stereotype, anti-stereotype,
    unrelated, bias_type, target). Intrasentence files fill the prompt's BLANK with each choice."""
    intra = "intra" in path.name
    rows = []
    for where, r in _csv(path):
        choices = [ast.literal_eval(q) for q in _QUOTED.findall(_need(r, "choices", where))]
        if len(choices) != 3:
            raise HarnessError(f"{where}: field 'choices' holds {len(choices)} options, expected 3")
        prompt = _need(r, "prompt", where)
        if intra:
            if "BLANK" not in prompt:
                raise HarnessError(f"{where}: field 'prompt' has no BLANK to fill")
            sentences, context = [prompt.replace("BLANK", c) for c in choices], ""
        else:
            sentences, context = [" " + c.strip() for c in choices], prompt
        rows.append({"context": context, "stereotype": sentences[0], "anti_stereotype": sentences[1],
                     "unrelated": sentences[2], "bias_type": _need(r, "bias_type", where),
                     "target": _need(r, "target", where)})
    return {"eval": rows}


def jsonl(path: Path, leaf: str) -> Rows:
    """Rows already in the task's schema, one JSON object per line."""
    return {"eval": [r for _, r in read_jsonl(path)]}


FORMATS: dict[str, Callable[[Path, str], Rows]] = {
    "arc_jsonl": arc_jsonl, "hellaswag_txt": hellaswag_txt, "winogrande_csv": winogrande_csv,
    "mmlu_csv": mmlu_csv, "boolq_jsonl": boolq_jsonl, "piqa_jsonl": piqa_jsonl, "gsm8k_jsonl": gsm8k_jsonl,
    "crows_pairs_csv": crows_pairs_csv, "bbq": bbq, "winobias_txt": winobias_txt,
    "stereoset_csv": stereoset_csv, "jsonl": jsonl,
}


def convert(fmt: str, path: Path, leaf: str) -> Rows:
    if fmt not in FORMATS:
        raise HarnessError(f"data.format '{fmt}' is unknown (have: {', '.join(sorted(FORMATS))})")
    rows = FORMATS[fmt](path, leaf)
    if not rows["eval"]:
        raise HarnessError(f"{path}: no items for task {leaf}")
    return rows


# --------------------------------------------------------------------------- a task on converted files


def _write_cached(rows: list[dict], key: str, cache: Path) -> Path:
    path = cache / f"{key}.jsonl"
    if not path.is_file():
        cache.mkdir(parents=True, exist_ok=True)
        text = "".join(json.dumps(r, sort_keys=True, ensure_ascii=False) + "\n" for r in rows)
        atomic_write(path, lambda p: p.write_text(text, encoding="utf-8"))
    return path


def local_task_config(cfg: dict, leaf: str, data: DataSpec, cache: Path) -> dict:
    """Point a task config at converted local files: the split it evaluates, and few-shot
    examples where the files have them (otherwise the task gets no few-shot source)."""
    source = Path(data.path)
    folder = source if source.is_dir() else source.parent
    # what the converters read: a folder's whole tree; beside a file, its siblings and a data/
    # folder (winobias_txt looks there), never the rest of the tree (a file in /tmp or a home)
    read = folder.rglob("*") if source.is_dir() else [*folder.iterdir(), *(folder / "data").glob("*")]
    stamp = [(str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(read) if p.is_file()]
    key = hashlib.sha256(json.dumps([data.format, str(source), leaf, CONVERTER_VERSION, stamp]).encode()).hexdigest()
    index = cache / f"{key}.splits.json"
    if index.is_file():
        files = json.loads(index.read_text())
    else:
        rows = convert(data.format, source, leaf)
        files = {role: str(_write_cached(r, f"{key}-{role}", cache)) for role, r in rows.items() if r}
        atomic_write(index, lambda p: p.write_text(json.dumps(files)))
    eval_split = cfg.get("test_split") or cfg.get("validation_split") or "test"
    data_files = {eval_split: files["eval"]}
    cfg = {k: v for k, v in cfg.items() if k not in ("tag", "dataset_name")}
    if "fewshot" in files:
        shot_split = cfg.get("fewshot_split") or cfg.get("training_split") or "train"
        data_files[shot_split] = files["fewshot"]
        cfg["fewshot_split"] = shot_split
    else:
        cfg["fewshot_split"] = None
        if cfg.get("num_fewshot") and not (cfg.get("fewshot_config") or {}).get("samples"):
            raise HarnessError(f"task {leaf} asks for {cfg['num_fewshot']} few-shot examples, but its local "
                               f"data ({data.format}) has none; use a zero-shot variant of the task")
    for split in ("training_split", "validation_split", "test_split"):
        if cfg.get(split) and cfg[split] not in data_files:
            cfg[split] = None
    return cfg | {"dataset_path": "json", "dataset_kwargs": {"data_files": data_files}}
