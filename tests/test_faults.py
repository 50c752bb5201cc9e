"""Faults: a `harness compare` killed at any point loses at most the run in flight and the re-run
finishes as an uninterrupted run does; two compares on one store split the work."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from conftest import Forked, forked_harness
from harness.pipeline import load, run_comparison

pytestmark = pytest.mark.e2e  # processes killed at every stage and two compares racing: minutes of CLI runs

# Where the CLI dies in the kill sequence (see conftest.Forked).
PLANT = r'''
if point == "model_load":  # the base is loaded, its adapters not yet
    from harness.backends import hf
    attach = hf.HFBackend._attach
    def slow_attach(model, adapters):
        hit()
        return attach(model, adapters)
    hf.HFBackend._attach = staticmethod(slow_attach)
elif point == "mid_task":  # between two batches of a run: lm-eval's forward calls, the packed path's rows
    from lm_eval.models.huggingface import HFLM
    from harness.backends import hf_lm
    call = HFLM._model_call
    def model_call(self, *args, **kwargs):
        hit()
        return call(self, *args, **kwargs)
    HFLM._model_call = model_call
    shared = hf_lm.packed_scores
    def counted(model, requests, batch_size, device, done=None, **kwargs):
        def step(n):
            hit()
            if done is not None:
                done(n)
        return shared(model, requests, batch_size, device, step, **kwargs)
    hf_lm.packed_scores = counted
elif point in ("records_write", "manifest_write"):  # temp file written, not yet renamed
    from harness import store
    atomic_write = store.atomic_write
    suffix = ".parquet" if point == "records_write" else ".json"
    def faulty_write(path, write):
        def then_die(tmp):
            write(tmp)
            if path.suffix == suffix:
                hit()
        return atomic_write(path, then_die)
    store.atomic_write = faulty_write
elif point == "index_write":  # the run's index row inserted, the transaction not committed
    from harness.store import Store
    connect = Store._connect
    class Connection:
        def __init__(self, db):
            self.db = db
        def execute(self, sql, *args):
            cursor = self.db.execute(sql, *args)
            if sql.startswith("INSERT OR REPLACE INTO runs"):
                hit()
            return cursor
        def __getattr__(self, name):
            return getattr(self.db, name)
        def __enter__(self):
            self.db.__enter__()
            return self
        def __exit__(self, *exc):
            return self.db.__exit__(*exc)
    Store._connect = lambda self: Connection(connect(self))
'''


def _cli(*args: str, fault: tuple[str, int] = ("none", 0)) -> subprocess.CompletedProcess:
    return forked_harness(*args, plant=PLANT, fault=fault)


def _stored(store: Path) -> dict:
    """What a store holds: complete runs, stray files, index rows."""
    runs = sorted(f"{p.parent.name}/{p.stem}" for p in store.glob("runs/*/*/*.json"))
    with sqlite3.connect(store / "index.sqlite") as db:
        rows = [r[0] for r in db.execute("SELECT task || '/' || model_fp FROM runs")]
    return {"runs": runs, "parquet": sorted(f"{p.parent.name}/{p.stem}" for p in store.glob("runs/*/*/*.parquet")),
            "partial": [p.name for p in store.rglob("*.tmp")], "index_rows": rows}


def _records(config: Path) -> dict:
    from harness.plan import plan_runs
    from harness.store import Store

    loaded = load(config)
    store = Store(loaded.spec.store)
    plan = plan_runs(loaded.spec, loaded.suite, store)
    return {r.key: store.read(r.key).sort_values(["doc_id", "filter"]).reset_index(drop=True) for r in plan.distinct}


def _verdicts(result) -> list:
    return [cr.model_dump() for cr in result.results] + [v.model_dump() for v in result.gates]


def _scored(output: str) -> int:
    return sum(" requests in " in line for line in output.splitlines())


def test_killed_at_every_stage_the_rerun_matches_an_uninterrupted_run(tiny_config, tmp_path):
    reference = tiny_config(store=tmp_path / "reference")
    expected = run_comparison(load(reference), log=lambda m: None)
    expected_records = _records(reference)
    n_runs = len(expected_records)

    config = tmp_path / "faulty.yaml"
    config.write_text(reference.read_text().replace(str(tmp_path / "reference"), str(tmp_path / "store")))
    store = tmp_path / "store"
    done = 0
    for point, nth in [("model_load", 1), ("mid_task", 8), ("records_write", 3), ("manifest_write", 2),
                       ("index_write", 2)]:
        killed = _cli("compare", "--config", str(config), fault=(point, nth))
        assert killed.returncode == -signal.SIGKILL, (point, killed.stderr[-2000:])
        held = _stored(store)
        scored_now = _scored(killed.stdout)
        # every run this process finished is stored, whole; nothing else is (killed in the index
        # transaction, the run's files were complete: it is stored, its log line never printed)
        assert len(held["runs"]) == done + scored_now + (point == "index_write"), (point, held)
        done = len(held["runs"])
        assert done < n_runs
    assert done >= 4  # the kills came at different depths of the work

    # Ctrl-C (in this process: KeyboardInterrupt between two batches, where SIGINT raises it)
    from click.testing import CliRunner
    from lm_eval.models.huggingface import HFLM

    from harness.backends import hf_lm
    from harness.cli import main

    calls = []
    model_call, shared = HFLM._model_call, hf_lm.packed_scores

    def interrupt_on_the_fourth_batch():
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt

    def interrupting(self, *args, **kwargs):
        interrupt_on_the_fourth_batch()
        return model_call(self, *args, **kwargs)

    def interrupting_shared(model, requests, batch_size, device, done=None, **kwargs):
        interrupt_on_the_fourth_batch()
        return shared(model, requests, batch_size, device, done, **kwargs)

    HFLM._model_call, hf_lm.packed_scores = interrupting, interrupting_shared
    try:
        interrupted = CliRunner().invoke(main, ["compare", "--config", str(config)])
    finally:
        hf_lm.packed_scores = shared
        HFLM._model_call = model_call
    assert interrupted.exit_code == 130, interrupted.output
    scored_now = _scored(interrupted.stdout)
    assert "interrupted while " in interrupted.stderr
    assert f"{scored_now} run(s) finished and saved in {store}" in interrupted.stderr
    assert len(_stored(store)["runs"]) == done + scored_now
    done += scored_now

    resumed = _cli("compare", "--config", str(config))
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert _scored(resumed.stdout) == n_runs - done  # only what no earlier process finished
    assert f"{done} stored, {n_runs - done} to evaluate" in resumed.stdout

    held = _stored(store)
    assert held["partial"] == []  # temp files of the killed writes cleaned up
    assert len(held["runs"]) == len(set(held["runs"])) == len(held["parquet"]) == n_runs
    assert len(held["index_rows"]) == len(set(held["index_rows"])) == n_runs  # the lost index row rebuilt
    records = _records(config)
    assert records.keys() == expected_records.keys()
    for key, frame in expected_records.items():
        pd.testing.assert_frame_equal(records[key].drop(columns="scores"), frame.drop(columns="scores"))
        assert list(map(list, records[key]["scores"])) == list(map(list, frame["scores"]))
    again = run_comparison(load(config), log=lambda m: None)
    assert _verdicts(again) == _verdicts(expected)


def test_two_compares_on_one_store_split_the_work(tiny_config, tmp_path):
    first = tiny_config(store=tmp_path / "store")
    second = tmp_path / "second.yaml"
    second.write_text(first.read_text().replace(f"report_dir: {tmp_path / 'report'}",
                                                f"report_dir: {tmp_path / 'report2'}"))
    procs = [Forked("compare", "--config", str(c)) for c in (first, second)]
    done = [p.wait() for p in procs]
    for p in done:
        assert p.returncode == 0, p.stderr[-2000:]
    outs = [(p.stdout, p.stderr) for p in done]

    n_runs = len(_records(first))
    split = [_scored(out) for out, _ in outs]
    assert sum(split) == n_runs, split  # no run scored twice, none skipped
    held = _stored(tmp_path / "store")
    assert len(held["runs"]) == len(set(held["runs"])) == n_runs and held["partial"] == []
    assert len(held["index_rows"]) == len(set(held["index_rows"])) == n_runs
    summaries = [[line for line in out.splitlines() if line.startswith("compare:")] for out, _ in outs]
    assert summaries[0] == summaries[1] and summaries[0]  # both report the same results


@pytest.mark.parametrize("wait", [False, True])
def test_a_run_held_by_another_process_is_not_claimed(tmp_path, wait):
    """Another process holds a run's lock until told to let go: without waiting the claim is refused
    at once; waiting, it is granted only after the holder has let go. No sleeps, no clocks."""
    import threading

    from harness.store import RunKey, Store

    store = Store(tmp_path / "store")
    key = RunKey(model_fp="f" * 64, task="t", task_hash="h" * 64)
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys\nfrom harness.store import RunKey, Store\n"
        f"s = Store({str(store.root)!r})\n"
        f"with s.claim(RunKey(model_fp={'f' * 64!r}, task='t', task_hash={'h' * 64!r})):\n"
        "    print('held', flush=True)\n    sys.stdin.readline()\n    print('letting go', flush=True)\n")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    if not wait:
        with store.claim(key, wait=False) as mine:
            assert mine is False  # refused while the holder has it
    else:
        granted, result = threading.Event(), []

        def claim():
            with store.claim(key, wait=True) as mine:
                result.append(mine)
                granted.set()

        waiter = threading.Thread(target=claim)
        waiter.start()
        assert not granted.is_set()  # it cannot be: the holder has not let go yet
        holder.stdin.write("go\n")
        holder.stdin.flush()
        assert holder.stdout.readline().strip() == "letting go"
        waiter.join(timeout=60)
        assert result == [True]
    holder.stdin.close()  # (without waiting: lets the holder go)
    holder.wait(timeout=30)
