"""`harness monitor` on the demo: a fresh sample of the same claims stays quiet; claims of a kind
the model never saw (a new category of injury) are flagged, by performance and by drift."""

from __future__ import annotations

import json
import random

from click.testing import CliRunner

from harness.cli import main
from harness.demo import facts
from harness.demo.world import WorldSpec, generate_world
from harness.persisted import MonitorResult, read_record

NEW_KIND = ["received an electric shock from a faulty socket", "was stung by wasps near the bins",
            "inhaled toxic fumes from a cleaning drum", "was bitten by a guard dog on patrol"]


def _samples(path, docs):
    path.write_text("".join(json.dumps(d) + "\n" for d in docs))
    return path


def _new_kind(n: int) -> list[dict]:
    """Covered claims of a mechanism the training data never had; a handler files them as BURN."""
    rng = random.Random(7)
    docs = []
    for _ in range(n):
        occ = rng.choice(facts.FEMALE_CODED + facts.MALE_CODED)
        claim = (f"{'An' if occ[0] in 'aeiou' else 'A'} {occ} from the {rng.choice(facts.WORKPLACES)} "
                 f"{rng.choice(NEW_KIND)} {rng.choice(facts.COVERED_CONTEXTS)} and {rng.choice(facts.CONSEQUENCES)}.")
        docs.append({"claim": claim, "label": "BURN", "gold": facts.LABELS.index("BURN"), "occupation": occ})
    return docs


def _monitor(config, samples, *extra):
    return CliRunner().invoke(main, ["monitor", "--config", str(config), "--samples", str(samples),
                                     "--candidate", "balanced-replay", *extra])


def test_fresh_sample_of_the_same_distribution_is_quiet(demo_report, demo_config, tmp_path):
    fresh = generate_world(WorldSpec(seed=4321)).probes["demo_triage"]
    run = _monitor(demo_config, _samples(tmp_path / "fresh.jsonl", fresh), "--json", str(tmp_path / "m.json"))
    assert run.exit_code == 0, run.output
    assert "no re-fine-tune due" in run.output
    r = json.loads((tmp_path / "m.json").read_text())
    assert not r["drop"] and not r["drift"] and r["samples"] == 200 and not r["paired"]
    assert r["change"]["estimate"] > -0.05 and abs(r["novelty_new"] - r["novelty_reference"]) < 0.05


def test_a_new_kind_of_claim_is_flagged(demo_report, demo_config, tmp_path):
    run = _monitor(demo_config, _samples(tmp_path / "shift.jsonl", _new_kind(200)), "--json", str(tmp_path / "m.json"))
    assert run.exit_code == 1, run.output
    r = json.loads((tmp_path / "m.json").read_text())
    assert r["drift"] and r["novelty_new"] > r["novelty_reference"] + 0.05
    assert r["drop"] and r["change"]["high"] < 0
    assert "RE-FINE-TUNE DUE: performance" in run.output and "RE-FINE-TUNE DUE: drift" in run.output


def test_the_accepted_items_again_are_paired_and_quiet(demo_report, demo_config, tmp_path):
    same = generate_world(WorldSpec()).probes["demo_triage"]
    run = _monitor(demo_config, _samples(tmp_path / "same.jsonl", same), "--json", str(tmp_path / "m.json"))
    assert run.exit_code == 0, run.output
    r = json.loads((tmp_path / "m.json").read_text())
    assert r["paired"] and r["change"]["estimate"] == 0.0 and r["new_score"] == r["accepted_score"]
    assert read_record(tmp_path / "m.json", MonitorResult).model_dump() == r  # the versioned record
