"""Fingerprints and the store: one model's records are never served for another."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest
from safetensors.torch import load_file, save_file

from harness.config import load_config, load_suite
from harness.errors import HarnessError
from harness.plan import plan_runs
from harness.sources.fingerprint import adapter_fingerprint, model_fingerprint
from harness.store import MIGRATIONS, RunKey, RunManifest, Store


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
    store.write(key, records, manifest)
    assert store.has(key)
    pd.testing.assert_frame_equal(store.read(key), records)
    assert store.read_manifest(key) == manifest
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
