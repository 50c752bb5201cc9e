"""History: every comparison is recorded in the store's SQLite index; `harness history` prints the
trend per task and model, and the report draws it once earlier comparisons exist."""

from __future__ import annotations

import json
import sqlite3

from click.testing import CliRunner

from harness.cli import main
from harness.store import Store


def test_three_comparisons_with_different_candidates_make_a_history(tiny_world, tiny_config, tmp_path):
    store = tmp_path / "store"
    runs = [{"domain-only": tiny_world.candidates["domain-only"]},
            {"with-replay": tiny_world.candidates["with-replay"]},
            dict(tiny_world.candidates)]
    reports = []
    for candidates in runs:
        config = tiny_config(candidates, store=store)
        run = CliRunner().invoke(main, ["compare", "--config", str(config)])
        assert run.exit_code == 0, run.output
        reports.append((tmp_path / "report" / "index.html").read_text())

    history = Store(store).history("tiny")
    assert len(history) == 3
    assert [sorted(c["summary"].candidates) for c in history] == [
        ["domain-only"], ["with-replay"], ["domain-only", "with-replay"]]
    first = {(s["model"], s["task"]): s for s in history[0]["scores"]}
    assert len(first) == 2 * 8 and first[("base", "demo_triage")]["delta"] is None
    fingerprints = {s["fingerprint"] for s in history[0]["scores"] if s["model"] == "domain-only"}
    assert len(fingerprints) == 1 and len(next(iter(fingerprints))) == 64
    # the same model scores the same in every comparison: the history reads the stored runs
    last = {(s["model"], s["task"]): s for s in history[2]["scores"]}
    assert last[("domain-only", "demo_triage")]["score"] == first[("domain-only", "demo_triage")]["score"]

    run = CliRunner().invoke(main, ["history", "--config", str(config)])
    assert run.exit_code == 0, run.output
    assert "history: 3 comparison(s)" in run.output
    for i in (1, 2, 3):
        assert f"  #{i} " in run.output
    triage = run.output.split("demo_triage (target, acc)")[1].split("\n")[1:4]
    assert "domain-only" in triage[0] and "with-replay" in triage[1] and "domain-only" in triage[2]
    assert all("base " in line for line in triage)
    one = CliRunner().invoke(main, ["history", "--store", str(store), "--task", "demo_capitals"])
    assert one.exit_code == 0 and "demo_capitals" in one.output and "demo_triage" not in one.output

    assert 'aria-label="trend of' not in reports[0]  # nothing earlier to draw
    assert 'aria-label="trend of the target delta across comparisons"' in reports[2]
    assert 'aria-label="trend of the forgetting delta across comparisons"' in reports[2]
    assert reports[2].count("this run") >= 1


def test_a_candidate_named_gates_keeps_its_history(tiny_world, tiny_config, tmp_path):
    """`gates` is a name a candidate may have: its role deltas are recorded, listed by the store's
    history and drawn in the report's trend, comparison after comparison, beside the verdicts."""
    store = tmp_path / "store"
    config = tiny_config({"gates": tiny_world.candidates["domain-only"]}, store=store)
    with config.open("a") as f:  # a verdict to record beside the candidate's deltas
        f.write("gates:\n  - {rule: non_inferior, role: forgetting, margin: 0.5}\n")
    for _ in range(2):
        run = CliRunner().invoke(main, ["compare", "--config", str(config)])
        assert run.exit_code in (0, 1), run.output  # a failed gate is fine: the history is the point

    history = Store(store).history("tiny")
    assert [sorted(c["summary"].candidates) for c in history] == [["gates"], ["gates"]]
    deltas = history[0]["summary"].candidates["gates"]
    assert set(deltas) >= {"target", "forgetting"} and history[1]["summary"].candidates["gates"] == deltas
    assert list(history[1]["summary"].gates) == ["gates::forgetting::non_inferior"]
    report = json.loads((tmp_path / "report" / "comparison.json").read_text())
    assert [sorted(h["candidates"]) for h in report["history"]] == [["gates"], ["gates"]]
    assert report["history"][0]["candidates"]["gates"] == deltas
    assert 'aria-label="trend of the target delta across comparisons"' in (tmp_path / "report" / "index.html"
                                                                          ).read_text()


def test_history_needs_a_store_and_says_so(tmp_path):
    run = CliRunner().invoke(main, ["history", "--store", str(tmp_path)])
    assert run.exit_code == 2 and "no store here" in run.output
    run = CliRunner().invoke(main, ["history"])
    assert run.exit_code == 2 and "give --config FILE or --store DIR" in run.output


def test_a_store_of_the_previous_schema_gains_the_history_tables(tmp_path):
    from harness.store import MIGRATIONS

    db = sqlite3.connect(tmp_path / "index.sqlite")
    db.executescript(MIGRATIONS[0])
    db.execute("PRAGMA user_version = 1")
    db.execute("INSERT INTO comparisons (name, created_at, base_fp, summary) VALUES ('old', 't', 'fp', '{}')")
    db.commit()
    db.close()
    store = Store(tmp_path)
    assert [c["name"] for c in store.history()] == ["old"] and store.history("old")[0]["scores"] == []


def test_summaries_written_before_they_were_typed_are_read(tmp_path):
    """A store of the previous schema kept a comparison's role deltas and its `gates` verdicts side by
    side in one object: opened now, the same summary reads with the two apart."""
    from harness.store import MIGRATIONS

    db = sqlite3.connect(tmp_path / "index.sqlite")
    for n, script in enumerate(MIGRATIONS[:2], start=1):
        db.executescript(script)
        db.execute(f"PRAGMA user_version = {n}")
    old = {"v2": {"target": 0.25, "forgetting": -0.01}, "gates": {"v2::target::improves": "pass"}}
    db.execute("INSERT INTO comparisons (name, created_at, base_fp, summary) VALUES ('old', 't', 'fp', ?)",
               (json.dumps(old),))
    db.execute("INSERT INTO comparisons (name, created_at, base_fp, summary) VALUES ('older', 't', 'fp', '{}')")
    db.commit()
    db.close()
    summaries = {c["name"]: c["summary"] for c in Store(tmp_path).history()}
    assert summaries["old"].candidates == {"v2": {"target": 0.25, "forgetting": -0.01}}
    assert summaries["old"].gates == {"v2::target::improves": "pass"}
    assert summaries["older"].candidates == {} and summaries["older"].gates == {}
