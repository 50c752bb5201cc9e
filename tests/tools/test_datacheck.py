"""`harness data check` on the demo world's training data: planted evaluation items and planted
duplicates are found exactly, the clean file passes, every finding names its lines."""

from __future__ import annotations

import json
import random

import pytest
from click.testing import CliRunner

from conftest import REPO
from harness.cli import main
from harness.demo.world import WorldSpec, generate_world, to_jsonl
from harness.persisted import DataCheckResult, read_record
from harness.tools.datacheck import check_data, ngrams, words

SUITE = REPO / "suites" / "demo.yaml"


@pytest.fixture(scope="module")
def world():
    return generate_world(WorldSpec())


def _write(path, rows):
    path.write_text(to_jsonl(rows) if rows and isinstance(rows[0], dict) else "".join(rows))
    return path


def test_clean_demo_data_passes(world, tmp_path):
    result = check_data(_write(tmp_path / "train.jsonl", world.domain_train), SUITE)
    assert result.passed and result.contaminated_items == 0 and result.eval_items > 600
    assert not result.problems, result.problems
    assert set(result.labels) == {"FALL", "STRAIN", "BURN", "CUT", "DENY"} and sum(result.labels.values()) == 2000


def test_planted_held_out_items_are_flagged_exactly(world, tmp_path):
    """5% of the held-out triage items (10 of 200), written as training records at random lines."""
    heldout = world.probes["demo_triage"]
    planted = sorted(random.Random(0).sample(range(len(heldout)), len(heldout) // 20))
    rows = list(world.domain_train)
    lines = {}
    for doc_id in planted:
        doc = heldout[doc_id]
        at = random.Random(doc_id).randrange(len(rows) + 1)
        rows.insert(at, {"prompt": f"Claim: {doc['claim']}\nCategory:", "completion": f" {doc['label']}. Noted."})
    for i, r in enumerate(rows, start=1):
        for doc_id in planted:
            if r["prompt"] == f"Claim: {heldout[doc_id]['claim']}\nCategory:":
                lines[doc_id] = i
    path = _write(tmp_path / "train.jsonl", rows)
    result = check_data(path, SUITE)
    assert {(p.task, p.doc_id) for p in result.contamination} == {("demo_triage", d) for d in planted}
    assert {p.line for p in result.contamination} == set(lines.values())
    assert result.contaminated_items == 10 and not result.passed
    assert all(p.overlap == 1.0 for p in result.contamination)
    # the CLI: exit 1 with the pairs listed; a threshold above 10/621 lets it pass
    run = CliRunner().invoke(main, ["data", "check", str(path), "--suite", str(SUITE),
                                    "--json", str(tmp_path / "c.json")])
    assert run.exit_code == 1, run.output
    assert "contamination: 10 of" in run.output and "FAIL" in run.output
    assert all(f"line {lines[d]:>6}  demo_triage item {d}" in run.output for d in planted), run.output
    assert json.loads((tmp_path / "c.json").read_text())["contaminated_items"] == 10
    assert read_record(tmp_path / "c.json", DataCheckResult) == result  # the versioned record, as checked
    run = CliRunner().invoke(main, ["data", "check", str(path), "--suite", str(SUITE), "--max-contaminated", "0.02"])
    assert run.exit_code == 0, run.output


def test_planted_duplicates_empty_and_cut_records_are_found_at_their_lines(world, tmp_path):
    rows = [json.dumps(r) + "\n" for r in world.domain_train[:300]]
    rows.insert(40, rows[9])  # exact duplicate of line 10, now at line 41
    near = dict(world.domain_train[20])
    near["prompt"] = near["prompt"].replace("Claim: ", "Claim:  ").upper()  # a duplicate once normalised
    rows.insert(100, json.dumps(near) + "\n")  # line 101 duplicates line 21
    reworded = dict(world.domain_train[30])
    reworded["completion"] += " The report was filed."
    rows.insert(150, json.dumps(reworded) + "\n")  # line 151: near duplicate of line 31
    rows.insert(200, json.dumps({"prompt": "Claim: a cut\nCategory:", "completion": "  "}) + "\n")  # line 201
    cut = {"prompt": "Claim: a fall\nCategory:", "completion": " FALL. The worker"}
    rows.insert(250, json.dumps(cut) + "\n")  # line 251
    rows.insert(260, '{"prompt": "broken\n')  # line 261
    rows.insert(270, json.dumps({"prompt": "Claim: " + "very " * 200, "completion": " CUT. Done."}) + "\n")  # 271
    result = check_data(_write(tmp_path / "train.jsonl", rows))
    found = {(p.kind, tuple(p.lines)) for p in result.problems}
    assert ("duplicate", (10, 41)) in found and ("duplicate", (21, 101)) in found
    assert ("near_duplicate", (31, 151)) in found
    assert ("empty", (201,)) in found and ("truncated", (251,)) in found and ("invalid", (261,)) in found
    assert ("length_outlier", (201, 251, 271)) in found  # 200 extra words; and the two 5-word records
    assert result.count("duplicate") == 2 and result.count("near_duplicate") == 1, result.problems
    assert result.passed  # no suite: nothing to be contaminated with


def test_html_page_escapes_the_data(world, tmp_path):
    rows = list(world.domain_train[:50]) + [{"prompt": "<script>alert(1)</script>", "completion": " <b>x</b>"}]
    html = tmp_path / "check.html"
    run = CliRunner().invoke(main, ["data", "check", str(_write(tmp_path / "t.jsonl", rows)), "--html", str(html)])
    assert run.exit_code == 0, run.output
    text = html.read_text()
    assert "<script>alert" not in text and "Training data check" in text


def test_ngrams_of_short_items_are_the_whole_item():
    assert ngrams(words("Paris is the capital"), 13) == {"paris is the capital"}
    assert len(ngrams(words(" ".join(f"w{i}" for i in range(20))), 13)) == 8
