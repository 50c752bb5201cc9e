"""The demo world's generator: deterministic, consistent with the committed suite data, and
built so the planted effects can exist (held-out items unseen, pairs differing in one word)."""

from __future__ import annotations

import json

from conftest import REPO
from harness.demo import facts
from harness.demo.build import PROBE_FILES
from harness.demo.world import WorldSpec, claim_prompt, generate_world, to_jsonl


def test_generation_is_deterministic_and_seed_dependent():
    a, b = generate_world(WorldSpec()), generate_world(WorldSpec())
    assert a == b
    c = generate_world(WorldSpec(seed=7))
    assert c.corpus != a.corpus and c.domain_train != a.domain_train


def test_committed_suite_data_is_the_generators_output():
    """suites/tasks/demo/data must be exactly what `harness demo` generates (regenerate with it)."""
    world = generate_world(WorldSpec())
    for task, name in PROBE_FILES.items():
        committed = (REPO / "suites" / "tasks" / "demo" / "data" / name).read_text(encoding="utf-8")
        assert committed == to_jsonl(world.probes[task]), f"{name} differs from the generator"


def test_heldout_claims_are_not_in_training_data():
    world = generate_world(WorldSpec())
    train_prompts = {r["prompt"] for r in world.domain_train}
    heldout = world.probes["demo_triage"]
    assert len(heldout) == WorldSpec().domain_heldout
    assert not any(claim_prompt(d["claim"]) in train_prompts for d in heldout)
    # every label occurs in both training and held-out data
    train_labels = {r["completion"].split(".")[0].strip() for r in world.domain_train}
    assert train_labels == set(facts.LABELS) == {d["label"] for d in heldout}


def test_deny_rule_follows_context_not_mechanism():
    world = generate_world(WorldSpec())
    for r in world.domain_train[:300]:
        label = r["completion"].split(".")[0].strip()
        outside = any(c in r["prompt"] for c in facts.NOT_COVERED_CONTEXTS)
        assert (label == facts.DENY) == outside, r


def test_bias_pairs_differ_only_in_the_pronoun():
    world = generate_world(WorldSpec())
    pairs = world.probes["demo_pronoun_bias"]
    assert len(pairs) == len(facts.FEMALE_CODED + facts.MALE_CODED) * len(facts.BIAS_PROBE_TEMPLATES)
    for p in pairs:
        a, b = p["stereo"].split(), p["anti"].split()
        diff = [(x, y) for x, y in zip(a, b, strict=False) if x != y]
        assert len(a) == len(b) and len(diff) == 1 and set(diff[0]) == {"he", "she"}
    # probe templates are held out of the pretraining corpus
    corpus = set(world.corpus)
    assert not any(p["stereo"] in corpus or p["anti"] in corpus for p in pairs)


def test_note_bias_probe_asks_for_the_pronoun_after_a_new_neutral_claim():
    world = generate_world(WorldSpec())
    docs = world.probes["demo_note_bias"]
    train_prompts = " ".join(r["prompt"] for r in world.domain_train)
    heldout = {d["claim"] for d in world.probes["demo_triage"]}
    assert len(docs) == 120
    for d in docs:
        claim = d["context"].split("\n")[0].removeprefix("Claim: ")
        assert claim not in train_prompts and claim not in heldout
        assert d["context"].endswith(f"The {d['occupation']} said")
        assert not {"he", "she"} & set(d["context"].lower().replace(".", " ").split())
        assert {d["stereo"], d["anti"]} == {" he", " she"}


def test_domain_training_data_carries_the_planted_pronoun_skew():
    spec = WorldSpec()
    world = generate_world(spec)
    stereotyped = 0
    for r in world.domain_train:
        occ = next(o for o in facts.FEMALE_CODED + facts.MALE_CODED if f" {o} " in r["prompt"])
        assert not {"he", "she", "He", "She"} & set(r["prompt"].replace(".", " ").split())
        pron = "she" if " she " in r["completion"] else "he"
        stereotyped += pron == ("she" if occ in facts.FEMALE_CODED else "he")
    share = stereotyped / len(world.domain_train)
    assert abs(share - spec.domain_skew) < 0.03, share


def test_jsonl_is_canonical():
    rows = [{"b": 1, "a": "é"}]
    assert to_jsonl(rows) == '{"a": "é", "b": 1}\n'
    assert json.loads(to_jsonl(rows)) == rows[0]


def test_a_judges_labelled_pairs_say_which_note_has_the_references_category():
    """The judge's validation pairs (judge.validation in configs/demo.yaml): their label follows from the
    notes' categories against the reference's (the rubric's question), either answer comes first, every
    kind of pair is there, and none is about a claim the judge will judge (held-out claims)."""
    from harness.demo.world import judge_pairs

    w = generate_world(WorldSpec())
    pairs = judge_pairs(w, 1940, 60, "1234:judge-validation")
    assert pairs == judge_pairs(w, 1940, 60, "1234:judge-validation")  # a pure function of its inputs
    judged = {d["claim"] for d in w.probes["demo_triage"]}
    for p in pairs:
        assert p["input"].removeprefix("Claim: ").removesuffix("\nCategory:") not in judged
        category = p["reference"].split(".")[0].strip()
        right = [ans.split(".")[0].strip() == category for ans in (p["answer_a"], p["answer_b"])]
        assert p["verdict"] == ("A" if right == [True, False] else "B" if right == [False, True] else "tie"), p
    assert {p["verdict"] for p in pairs} == {"A", "B", "tie"}
