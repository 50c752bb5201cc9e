"""`eval.executor: ray` on a real Ray cluster of this machine: a head node and one more worker node on
loopback (one CPU each, bounded object stores), started and stopped by these tests. The tiny world's
comparison is scored on it; every finished run comes back to this process, which stores it."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from conftest import logprob_tolerance
from harness.pipeline import load, run_comparison
from harness.store import Store

pytestmark = pytest.mark.e2e
ray = pytest.importorskip("ray", reason="Ray is not installed (`make install` installs it: pip install ray)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def cluster():
    """A head and a worker node (separate raylets, one CPU each) on 127.0.0.1; stopped afterwards."""
    exe = str(Path(sys.executable).parent / "ray")
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # short: Ray's socket paths must stay under 107 bytes
    port = _free_port()
    common = ["--num-cpus=1", "--num-gpus=0", "--object-store-memory=100000000", "--disable-usage-stats"]
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"} | {"RAY_USAGE_STATS_ENABLED": "0"}
    try:
        subprocess.run([exe, "start", "--head", f"--port={port}",
                        "--include-dashboard=false", f"--temp-dir={temp}", *common],
                       check=True, env=env, capture_output=True, timeout=120)
        subprocess.run([exe, "start", f"--address=127.0.0.1:{port}", *common],
                       check=True, env=env, capture_output=True, timeout=120)
        yield f"127.0.0.1:{port}"
    finally:
        ray.shutdown()
        subprocess.run([exe, "stop", "--force"], env=env, capture_output=True, timeout=120)
        shutil.rmtree(temp, ignore_errors=True)


def _ray_config(path: Path, address: str, store: Path) -> Path:
    text = path.read_text().replace("eval: {", f"eval: {{executor: ray, ray: {{address: '{address}'}}, ")
    text = text.replace(f"store: {path.parent / 'store'}", f"store: {store}")
    out = store.parent / f"{store.name}.yaml"
    out.write_text(text)
    return out


def _records(store: Path) -> dict[str, pd.DataFrame]:
    """Every stored run's and judgment's records, by path in the store."""
    return {str(p.relative_to(store)): pd.read_parquet(p) for p in sorted(store.glob("*/**/*.parquet"))}


RUBRIC = """Task: {{ input }}
Reference answer: {{ reference }}
Answer A: {{ answer_a }}
Answer B: {{ answer_b }}
Which answer is closer to the reference, A or B (or C for a tie)? Better answer:"""
JUDGE = """judge:
  model: {{path: {base}}}
  rubric: rubric.jinja
  labels: [' A', ' B', ' C']
  tasks: [demo_triage_note]
  calibrate: false
"""


def test_the_tiny_comparison_on_a_two_node_cluster_equals_the_local_one(cluster, tiny_config, tiny_world, tmp_path):
    """The tiny world's comparison with its notes judged: scored on the cluster (the one load group split
    over both nodes, then the judge's), the runs and the judgments are the local executor's
    (log-likelihoods to float32's tolerance, the same picks and texts), each stored once; a second run
    sends nothing to the cluster."""
    (tmp_path / "rubric.jinja").write_text(RUBRIC)
    local = tiny_config()
    local.write_text(local.read_text() + JUDGE.format(base=tiny_world.base))
    logs: list[str] = []
    run_comparison(load(local), log=logs.append, record=False)
    config = _ray_config(local, cluster, tmp_path / "ray-store")
    logs = []
    result = run_comparison(load(config), log=logs.append, record=False)
    text = "\n".join(logs)
    assert "ray: connected to 127.0.0.1" in text and "2 node(s)" in text, text
    assert "part 1/2" in text and "part 2/2" in text, text  # one group, two free slots: split in two
    ran = [line for line in logs if line.startswith("execute:") and " requests in " in line]
    assert len(ran) == 24 and len({line.split(" on ")[1].split(" (")[1] for line in ran}) == 2, ran  # both nodes
    judged = [line for line in logs if line.startswith("judge:") and " requests in " in line and " on " in line]
    assert 1 <= len(judged) <= 2, logs  # a pairing per candidate (alike answers share one)
    ours, theirs = _records(tmp_path / "store"), _records(tmp_path / "ray-store")
    assert list(ours) == list(theirs) and len(ours) == 24 + len(judged)
    for key, a in ours.items():
        b = theirs[key]
        same = [c for c in ("doc_id", "prompt_hash", "response", "order", "pick") if c in a]
        assert a[same].equals(b[same]), key
        numbers = ["scores"] if "scores" in a else ["lp_a", "lp_b", "lp_tie"]  # a run's, or a judgment's
        for col in numbers:  # one thread a worker against two here: sums grouped otherwise
            for x, y in zip(a[col], b[col], strict=True):
                x, y = (x, y) if col == "scores" else ([x], [y])
                assert all(abs(u - v) <= logprob_tolerance(tiny_world.base, u) for u, v in zip(x, y, strict=True))
    assert len(Store(tmp_path / "ray-store").runs()) == 24 + len(judged)  # the index: runs and judgments
    assert result.results[0].tasks
    logs = []
    run_comparison(load(config), log=logs.append, record=False)
    assert any("24 stored, 0 to evaluate" in line for line in logs), logs
    assert not any("ray" in line for line in logs), logs  # nothing scheduled: not even a connection


def test_a_worker_killed_mid_comparison_is_sent_again_and_every_run_is_stored_once(cluster, tiny_config, tmp_path):
    """SIGKILL to the worker process of one of the Ray tasks once runs have come back: its unfinished runs
    are sent again, the comparison completes, and every run is stored once."""
    config = _ray_config(tiny_config(limit=40), cluster, tmp_path / "ray-store")
    logs: list[str] = []
    outcome: dict = {}

    def compare() -> None:
        try:
            outcome["result"] = run_comparison(load(config), log=logs.append, record=False)
        except BaseException as e:  # noqa: BLE001 (the test thread reports it)
            outcome["error"] = e

    thread = threading.Thread(target=compare)
    thread.start()
    killed = None
    deadline = time.monotonic() + 240
    while thread.is_alive() and killed is None and time.monotonic() < deadline:
        # the worker that sent the first run back (the log says where each ran), killed at once
        pids = [int(m.group(1)) for line in list(logs) if (m := re.search(r", pid (\d+)\)", line))]
        if pids:
            os.kill(pids[0], signal.SIGKILL)
            killed = pids[0]
        time.sleep(0.01)
    thread.join(timeout=300)
    assert killed is not None, "no Ray task was caught running after its first result: " + "\n".join(logs)
    assert "error" not in outcome, f"{outcome.get('error')}\n" + "\n".join(logs)
    assert any("its worker died" in line and "sending its" in line for line in logs), logs
    runs = Store(tmp_path / "ray-store").runs()
    assert len(runs) == 24 and len({(r["model_fp"], r["task"]) for r in runs}) == 24
    assert len(list((tmp_path / "ray-store").glob("runs/**/*.parquet"))) == 24
    assert sum(" requests in " in line for line in logs) == 24  # each run scored into the store once


def test_a_task_no_node_can_hold_is_refused_naming_its_group_not_waited_for(cluster, tiny_config, tmp_path):
    """One GPU per task on a cluster without GPUs: an error naming the group and what it asked for, before
    anything is scored (Ray alone would wait for such a node forever)."""
    from harness.errors import HarnessError

    config = _ray_config(tiny_config(), cluster, tmp_path / "ray-store")
    config.write_text(config.read_text().replace("ray: {address:", "ray: {num_gpus: 1, address:"))
    started = time.monotonic()
    with pytest.raises(HarnessError, match=r"ray: base \(base, domain-only, with-replay\).* asks for 1 CPU\(s\) "
                                           r"and 1 GPU\(s\) on one node and no node of the cluster has them"):
        run_comparison(load(config), log=lambda m: None, record=False)
    assert time.monotonic() - started < 60
    assert not list((tmp_path / "ray-store").glob("runs/**/*.parquet"))
