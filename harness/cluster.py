"""Work spread over a Ray cluster (`eval.executor: ray`): each task yields its items' results as each is
done, and they come back to this process (the driver), which keeps them; nothing on the cluster needs the
driver's filesystem for results.

A task whose worker dies (killed, out of memory, its node lost) is sent again with only the items not yet
back, at most `RaySpec.max_retries` times; what came back before is kept once. A task that no node of the
cluster can hold (more GPUs or CPUs than any node has) is refused before anything runs, naming it and what
it asked for, instead of waiting forever. An error raised by the work itself (a HarnessError: bad input, a
model that cannot load) is raised here as it was raised there, and is not retried.

Ray is imported only here and only when used (`pip install ray`).
"""

from __future__ import annotations

import os
import queue
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from harness.config import RaySpec
from harness.errors import HarnessError

INSTALL = "pip install 'ray>=2.40'"
# passed to every worker as the driver has them: offline hubs, quiet tokenizers, no progress bars
ENV_PASSED = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TOKENIZERS_PARALLELISM", "TRANSFORMERS_OFFLINE",
              "HF_HOME", "VLLM_CPU_KVCACHE_SPACE", "VLLM_ENABLE_V1_MULTIPROCESSING", "TORCH_COMPILE_DISABLE")


@dataclass(frozen=True)
class ClusterTask:
    """Work for one Ray task: `run(items)` yields (item, result) for each of `items` as it is done."""

    name: str  # in the log and in errors: which group of the plan
    items: list[str]
    run: Callable[[list[str]], Iterator[tuple[str, Any]]]
    num_cpus: float = 1
    num_gpus: float = 0


def connect(spec: RaySpec, log: Callable[[str], None]):
    """The `ray` module, connected to the configured cluster (RAY_ADDRESS, else a cluster of this machine)."""
    try:
        import ray
    except ImportError:
        raise HarnessError(f"eval.executor: ray needs Ray in this environment and on every worker: {INSTALL}") \
            from None
    if not ray.is_initialized():
        address = spec.address or os.environ.get("RAY_ADDRESS")
        env = {k: os.environ[k] for k in ENV_PASSED if k in os.environ} | {"HARNESS_PROGRESS": "0"}
        try:
            ray.init(address=address, ignore_reinit_error=True, log_to_driver=False, include_dashboard=False,
                     runtime_env={"env_vars": env})
        except (ConnectionError, RuntimeError, ValueError) as e:
            where = address or "(a new local one)"
            raise HarnessError(f"eval.ray.address: cannot connect to the Ray cluster at {where} ({type(e).__name__}: "
                               f"{e}); check the address (or RAY_ADDRESS) and that `ray status` there shows the "
                               "cluster") from None
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        log(f"ray: connected to {address or 'a new local cluster'}: {len(nodes)} node(s), "
            f"{_total(nodes, 'CPU'):g} CPUs, {_total(nodes, 'GPU'):g} GPUs")
    return ray


def _total(nodes: list[dict], resource: str) -> float:
    return sum(n.get("Resources", {}).get(resource, 0) for n in nodes)


def slots(ray, num_cpus: float, num_gpus: float) -> int:
    """How many tasks asking for these resources the cluster's live nodes hold at once."""
    held = 0
    for node in (n for n in ray.nodes() if n.get("Alive")):
        have = node.get("Resources", {})
        fits = [int(have.get("CPU", 0) // num_cpus)] + ([int(have.get("GPU", 0) // num_gpus)] if num_gpus else [])
        held += max(0, min(fits))
    return held


def _remote(run: Callable[[list[str]], Iterator[tuple[str, Any]]], items: list[str]):
    """The body of every Ray task: the work's results, each with where it ran."""
    import ray

    where = f"{socket.gethostname()} (node {ray.get_runtime_context().get_node_id()[:8]}, pid {os.getpid()})"
    for item, result in run(items):
        yield item, result, where


def run_tasks(tasks: list[ClusterTask], spec: RaySpec, keep: Callable[[ClusterTask, str, Any, str], None],
              log: Callable[[str], None]) -> None:
    """Run every task on the cluster; `keep(task, item, result, where)` is called in this thread for each
    result as it arrives. Returns when every item is back; raises HarnessError when a task fails for good."""
    ray = connect(spec, log)
    for task in tasks:
        if not slots(ray, task.num_cpus, task.num_gpus):
            raise HarnessError(f"ray: {task.name} asks for {task.num_cpus:g} CPU(s) and {task.num_gpus:g} GPU(s) on "
                               "one node and no node of the cluster has them; set eval.ray.num_cpus / num_gpus "
                               "(or the vllm parallel sizes) to what a node has, or add such a node")
    remote = ray.remote(num_returns="streaming")(_remote)
    arrived: queue.Queue = queue.Queue()
    left = {id(t): list(t.items) for t in tasks}
    tries = {id(t): 0 for t in tasks}

    def submit(task: ClusterTask) -> None:
        generator = remote.options(num_cpus=task.num_cpus, num_gpus=task.num_gpus, max_retries=0,
                                   name=f"harness {task.name}"[:100]).remote(task.run, left[id(task)])

        def drain() -> None:
            try:
                for ref in generator:
                    arrived.put((task, ray.get(ref), None))
                arrived.put((task, None, None))
            except BaseException as e:  # noqa: BLE001 (handed to the driver's thread as it is)
                arrived.put((task, None, e))

        threading.Thread(target=drain, daemon=True, name=f"harness-ray-{task.name}").start()

    for task in tasks:
        submit(task)
    running = len(tasks)
    while running:
        task, got, error = arrived.get()
        if got is not None:
            item, result, where = got
            keep(task, item, result, where)
            left[id(task)].remove(item)
            continue
        if error is None or not left[id(task)]:  # this task is done (its worker may die after its last item)
            running -= 1
            continue
        if isinstance(error, ray.exceptions.RayTaskError):  # the work raised: as it was raised there
            cause = error.cause if isinstance(error.cause, Exception) else error
            raise cause from None
        if tries[id(task)] >= spec.max_retries or not isinstance(error, ray.exceptions.RayError):
            raise HarnessError(f"ray: {task.name}: its worker failed {tries[id(task)] + 1} time(s) "
                               f"({type(error).__name__}: {str(error).splitlines()[0][:300]}); "
                               f"{len(task.items) - len(left[id(task)])} of its {len(task.items)} item(s) came "
                               "back and are kept; run the command again to do the rest") from None
        tries[id(task)] += 1
        log(f"ray: {task.name}: its worker died ({type(error).__name__}); sending its "
            f"{len(left[id(task)])} unfinished item(s) again (try {tries[id(task)]} of {spec.max_retries})")
        submit(task)
