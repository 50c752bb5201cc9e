"""Suite tasks: found in the suite's folders, data paths relative to the task YAML, and a task
hash that follows the content, not the location."""

from __future__ import annotations

import shutil

from conftest import REPO
from harness.config import load_suite
from harness.sources.tasks import load_tasks


def _hashes(suite_path):
    return {t.name: t.task_hash for t in load_tasks(load_suite(suite_path), str(suite_path))}


def test_task_hash_follows_content_not_location(tmp_path):
    original = _hashes(REPO / "suites" / "demo.yaml")
    copy = tmp_path / "elsewhere" / "suites"
    shutil.copytree(REPO / "suites", copy)
    assert _hashes(copy / "demo.yaml") == original  # a moved checkout reuses stored runs

    data = copy / "tasks" / "demo" / "data" / "capitals.jsonl"
    lines = data.read_text().splitlines(keepends=True)
    data.write_text("".join(lines[:-1]) + lines[-1].replace('"question": "', '"question": "Today, '))
    changed = _hashes(copy / "demo.yaml")
    assert {n for n in original if changed[n] != original[n]} == {"demo_capitals"}


def test_limit_is_part_of_the_task_identity():
    suite = load_suite(REPO / "suites" / "demo.yaml")
    full = {t.name: (t.task_hash, t.n_docs) for t in load_tasks(suite, "demo.yaml")}
    limited = {t.name: (t.task_hash, t.n_docs) for t in load_tasks(suite, "demo.yaml", limit=5)}
    assert all(limited[n][1] == 5 and limited[n][0] != full[n][0] for n in full)
