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


def test_remembered_tasks_skip_lm_eval_until_their_files_change(tmp_path):
    """A suite built once is remembered by its recipe (task YAML and includes, the modules beside
    them, data files' content, limit, versions): the next load returns the same names, hashes and
    documents without building any lm-eval task, each built only when asked for; a changed data file,
    task file or limit is built again and hashes anew."""
    from harness.sources.tasks import DeferredTask, Remember
    from harness.util.files import sha256_file

    copy = tmp_path / "suites"
    shutil.copytree(REPO / "suites", copy)
    suite = load_suite(copy / "demo.yaml")
    hashed: list = []
    remember = Remember(tmp_path / "checks", lambda p: hashed.append(p) or sha256_file(p))

    def load(limit=None):
        return load_tasks(suite, "demo.yaml", limit=limit, remember=remember)

    def ids(tasks):
        return [(t.name, t.task_hash, t.n_docs, t.indices, t.leaf, t.spec) for t in tasks]

    first = load()
    assert not any(isinstance(t.task, DeferredTask) for t in first)  # built, then remembered
    again = load()
    assert all(isinstance(t.task, DeferredTask) for t in again) and ids(again) == ids(first)
    data = copy / "tasks" / "demo" / "data" / "capitals.jsonl"
    assert data.resolve() in {p.resolve() for p in hashed}  # the data files are part of the recipe
    capitals = next(t for t in again if t.name == "demo_capitals")
    doc = capitals.task.eval_docs[0]  # asked for: built, the same task
    assert capitals.task.doc_to_text(doc) == next(t for t in first if t.name == "demo_capitals").task.doc_to_text(doc)

    lines = data.read_text().splitlines(keepends=True)
    data.write_text("".join(lines[:-1]) + lines[-1].replace('"question": "', '"question": "Today, '))
    changed = load()
    assert not any(isinstance(t.task, DeferredTask) for t in changed)  # a new recipe: built
    assert {a[0] for a, b in zip(ids(first), ids(changed), strict=True) if a != b} == {"demo_capitals"}
    assert all(isinstance(t.task, DeferredTask) for t in load())  # and remembered in turn

    included = copy / "tasks" / "demo" / "_fact_mc.yaml"  # the file the fact tasks include
    assert "version: 1.0" in included.read_text()
    included.write_text(included.read_text().replace("version: 1.0", "version: 2.0"))
    rebuilt = load()
    assert not any(isinstance(t.task, DeferredTask) for t in rebuilt)
    assert {a[0] for a, b in zip(ids(changed), ids(rebuilt), strict=True) if a != b} == {
        "demo_capitals", "demo_elements", "demo_arithmetic", "demo_everyday"}
    limited = load(limit=5)
    assert not any(isinstance(t.task, DeferredTask) for t in limited) and {t.n_docs for t in limited} == {5}
