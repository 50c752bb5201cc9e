"""The demo build: bit-for-bit reproducible, and cached by content hash."""

from __future__ import annotations

import pytest

from conftest import tiny_spec
from harness.demo.build import build_demo

pytestmark = pytest.mark.e2e  # builds the demo world twice to compare the bytes

BYTE_IDENTICAL = [
    "base/model.safetensors", "base/tokenizer.json", "base/config.json",
    "data/domain_train.jsonl", "data/replay.jsonl",
    "candidates/domain-only/adapter_model.safetensors",
    "candidates/with-replay/adapter_model.safetensors",
]


def test_rebuild_from_the_same_seed_is_bit_for_bit_identical(tiny_world, tmp_path):
    again = build_demo(tmp_path / "demo", tiny_spec(), probe_dir=tmp_path / "probes", log=lambda m: None)
    for rel in BYTE_IDENTICAL:
        assert (again.root / rel).read_bytes() == (tiny_world.root / rel).read_bytes(), rel


def test_second_build_reuses_every_stage_and_a_change_rebuilds_downstream(tiny_world, tmp_path):
    import shutil

    root = tmp_path / "demo"
    shutil.copytree(tiny_world.root, root)
    logs = []
    again = build_demo(root, tiny_spec(), probe_dir=tmp_path / "probes", log=logs.append)
    assert again.stage_s["pretrain"] == 0.0
    assert all(again.stage_s[f"train:{n}"] == 0.0 for n in again.candidates)
    assert any("base model up to date" in line for line in logs)

    # a tampered adapter is noticed by its hash and rebuilt, the base is not touched
    weights = root / "candidates" / "with-replay" / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-8] + b"\0" * 8)
    rebuilt = build_demo(root, tiny_spec(), probe_dir=tmp_path / "probes", log=lambda m: None)
    assert rebuilt.stage_s["pretrain"] == 0.0 and rebuilt.stage_s["train:domain-only"] == 0.0
    assert rebuilt.stage_s["train:with-replay"] > 0
    assert weights.read_bytes() == (tiny_world.root / "candidates/with-replay/adapter_model.safetensors").read_bytes()
