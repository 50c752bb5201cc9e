"""Fingerprints and the store: one model's records are never served for another."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest
from safetensors.torch import load_file, save_file

from harness.config import load_config, load_suite
from harness.errors import HarnessError
from harness.pipeline import load, run_comparison
from harness.plan import plan_runs
from harness.sources.fingerprint import adapter_fingerprint, model_fingerprint
from harness.store import MIGRATIONS, RunKey, RunManifest, Store
from harness.util.files import sha256_file


def _perturb_one_weight(folder):
    path = folder / "adapter_model.safetensors"
    tensors = load_file(path)
    name = sorted(tensors)[0]
    tensors[name][0, 0] += 1e-3
    save_file(tensors, path, metadata={"format": "pt"})


def test_changing_one_adapter_weight_changes_the_fingerprint(tiny_world, copy_adapter):
    base_fp = model_fingerprint(tiny_world.base, dtype="float32", backend="hf")
    adapter = copy_adapter("domain-only")
    before = adapter_fingerprint(base_fp, adapter)
    assert before == adapter_fingerprint(base_fp, tiny_world.candidates["domain-only"])
    _perturb_one_weight(adapter)
    assert adapter_fingerprint(base_fp, adapter) != before
    # same adapter on a different base (or dtype) is a different model too
    assert adapter_fingerprint(model_fingerprint(tiny_world.base, dtype="bfloat16", backend="hf"),
                               tiny_world.candidates["domain-only"]) != before


def test_store_does_not_serve_a_changed_adapters_records(tiny_world, tiny_config, copy_adapter, tmp_path):
    """Plan with an adapter, pretend its runs are stored, change one weight: all runs missing."""
    adapter = copy_adapter("domain-only")
    config = load_config(tiny_config(candidates={"cand": adapter}))
    suite = load_suite(config.suite)
    store = Store(config.store)
    plan = plan_runs(config, suite, store)
    cand_runs = [r for r in plan.runs if r.model.label == "cand"]
    for r in cand_runs:
        store.write(r.key, pd.DataFrame({"doc_id": [0]}), RunManifest(
            model_fp=r.key.model_fp, task=r.key.task, task_hash=r.key.task_hash, harness_version="x",
            lm_eval_version="x", label="cand", backend="hf", n_items=1, n_requests=1, wall_s=0,
            created_at="now"))
    assert all(r.cached for r in plan_runs(config, suite, store).runs if r.model.label == "cand")
    _perturb_one_weight(adapter)
    replanned = plan_runs(config, suite, store)
    assert not any(r.cached for r in replanned.runs if r.model.label == "cand")
    assert {r.key.model_fp for r in replanned.runs if r.model.label == "cand"} != {r.key.model_fp for r in cand_runs}


def test_a_run_without_its_manifest_does_not_exist(tmp_path):
    store = Store(tmp_path)
    key = RunKey(model_fp="a" * 64, task="t", task_hash="b" * 64)
    records = pd.DataFrame({"doc_id": [0, 1], "metric.acc": [1.0, 0.0]})
    manifest = RunManifest(model_fp=key.model_fp, task="t", task_hash=key.task_hash, harness_version="x",
                           lm_eval_version="x", label="m", backend="hf", n_items=2, n_requests=2,
                           wall_s=0.1, created_at="now")
    written = store.write(key, records, manifest)
    assert store.has(key)
    pd.testing.assert_frame_equal(store.read(key), records)
    parquet = tmp_path / f"{key.stem}.parquet"
    assert store.read_manifest(key) == written == manifest.model_copy(update={"files": {
        parquet.name: sha256_file(parquet)}})
    assert [r["task"] for r in store.runs()] == ["t"]
    (tmp_path / f"{key.stem}.json").unlink()  # as if killed between the two writes
    assert not store.has(key)
    with pytest.raises(HarnessError, match="no stored run for t"):
        store.read(key)
    assert not list(tmp_path.rglob("*.tmp"))


def test_store_from_a_newer_harness_is_refused(tmp_path):
    import sqlite3

    Store(tmp_path)
    with sqlite3.connect(tmp_path / "index.sqlite") as db:
        db.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    with pytest.raises(HarnessError, match="written by a newer harness"):
        Store(tmp_path)


def _open_store(root, start):
    start.wait()
    Store(root)


def test_processes_opening_one_new_store_at_once_all_succeed(tmp_path):
    # two `harness compare` runs started together on a fresh store both create its index; before
    # the migration lock one failed with "duplicate column name" (exit 3)
    import multiprocessing
    import sqlite3

    ctx = multiprocessing.get_context("fork")
    for attempt in range(5):
        root = tmp_path / f"s{attempt}"
        start = ctx.Event()
        procs = [ctx.Process(target=_open_store, args=(root, start)) for _ in range(6)]
        for p in procs:
            p.start()
        start.set()
        for p in procs:
            p.join(60)
        assert [p.exitcode for p in procs] == [0] * 6
        with sqlite3.connect(root / "index.sqlite") as db:
            assert db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)


def test_file_hash_cache_follows_content(tmp_path):
    store = Store(tmp_path / "s")
    f = tmp_path / "w.bin"
    f.write_bytes(b"one")
    first = store.file_hash(f)
    assert store.file_hash(f) == first
    f.write_bytes(b"two!")
    assert store.file_hash(f) != first


def test_model_folder_without_weights_is_a_clear_error(tiny_world, tmp_path):
    shutil.copy(tiny_world.base / "config.json", tmp_path / "config.json")
    with pytest.raises(HarnessError, match="no weights found"):
        model_fingerprint(tmp_path, dtype="float32", backend="hf")


def _manifest(key: RunKey, **update) -> RunManifest:
    return RunManifest(model_fp=key.model_fp, task=key.task, task_hash=key.task_hash, harness_version="x",
                       lm_eval_version="x", label="m", backend="hf", n_items=2, n_requests=2, wall_s=0.1,
                       created_at="now", **update)


def _flip_one_byte(path) -> bytes:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    return bytes(data)


def test_a_corrupt_run_is_named_set_aside_and_scored_again(tiny_config, capsys):
    """One bit flipped in a stored run's Parquet: the next compare says which file is corrupt, keeps
    it aside, scores that run again (and only that one), and comes to the same result."""
    config = load_config(tiny_config())
    first_log: list[str] = []
    first = run_comparison(load(tiny_config()), log=first_log.append)
    store = Store(config.store)
    plan = plan_runs(config, load_suite(config.suite), store)
    run = next(r for r in plan.runs if r.model.label == "domain-only" and r.task.spec.role == "target")
    before = store.read(run.key)
    parquet = store.root / f"{run.key.stem}.parquet"
    corrupt = _flip_one_byte(parquet)
    capsys.readouterr()

    log: list[str] = []
    again = run_comparison(load(tiny_config()), log=log.append)
    said = "\n".join(log)  # the comparison's own log says it, beside its other lines
    assert f"store: {parquet} is corrupt (its sha256 does not match its manifest's)" in said
    assert (parquet.parent / f"{parquet.name}.corrupt").read_bytes() == corrupt  # kept, not deleted
    assert (parquet.parent / f"{parquet.stem}.json.corrupt").is_file()
    assert any(f"{len(plan.distinct) - 1} stored, 1 to evaluate" in line for line in log), log
    assert [line.split()[1:3] for line in log if " requests in " in line] == [["domain-only", run.task.name]]
    assert [cr.model_dump() for cr in again.results] == [cr.model_dump() for cr in first.results]
    assert [v.model_dump() for v in again.gates] == [v.model_dump() for v in first.gates]
    fresh = Store(config.store)
    assert fresh.has(run.key)
    pd.testing.assert_frame_equal(fresh.read(run.key).drop(columns="scores"), before.drop(columns="scores"))


def test_corruption_found_at_read_is_an_error_naming_the_file(tmp_path, capsys):
    store = Store(tmp_path)
    key = RunKey(model_fp="a" * 64, task="t", task_hash="b" * 64)
    store.write(key, pd.DataFrame({"doc_id": range(50), "metric.acc": [1.0, 0.0] * 25}), _manifest(key))
    parquet = tmp_path / f"{key.stem}.parquet"
    _flip_one_byte(parquet)
    with pytest.raises(HarnessError, match=f"{parquet}: corrupt .*moved aside to t.{'b' * 16}.json.corrupt, "
                                           f"t.{'b' * 16}.parquet.corrupt; run the command again"):
        Store(tmp_path).read(key)
    assert not Store(tmp_path).has(key) and not store.runs()  # missing now, its index row gone


def test_each_read_hashes_the_records_once(tmp_path, monkeypatch):
    """Looked up at plan time, read at compare time: one sha256 of the file per process."""
    import hashlib

    from harness import store as store_module

    key = RunKey(model_fp="a" * 64, task="t", task_hash="b" * 64)
    Store(tmp_path).write(key, pd.DataFrame({"doc_id": [0, 1]}), _manifest(key))
    calls, sha256 = [], hashlib.sha256
    monkeypatch.setattr(store_module.hashlib, "sha256", lambda data: calls.append(1) or sha256(data))
    store = Store(tmp_path)
    assert store.has(key) and store.has(key)
    store.read(key)
    store.read(key)
    assert len(calls) == 1


def test_runs_stored_before_checksums_are_read_unchecked(tmp_path):
    """Format-1 manifests hold no checksum: their runs stay usable (not scored again)."""
    store = Store(tmp_path)
    key = RunKey(model_fp="a" * 64, task="t", task_hash="b" * 64)
    records = pd.DataFrame({"doc_id": [0, 1], "metric.acc": [1.0, 0.0]})
    store.write(key, records, _manifest(key))
    manifest = tmp_path / f"{key.stem}.json"
    old = _manifest(key, version=1).model_dump(exclude={"files"})
    manifest.write_text(json.dumps(old))
    fresh = Store(tmp_path)
    assert fresh.has(key) and fresh.read_manifest(key).version == 1
    pd.testing.assert_frame_equal(fresh.read(key), records)

