"""The demo world's data: a seeded, deterministic generator.

It makes everything a fine-tuning study needs, with effects planted where a user would meet them:

- a pretraining corpus of general knowledge (capitals, element symbols, sums, everyday facts,
  short stories), sentences about people at work with a mild pronoun stereotype, and unlabelled
  incident sentences so the domain's words exist before fine-tuning;
- a domain task the base cannot do: triage workers'-compensation claims into FALL / STRAIN /
  BURN / CUT by mechanism, or DENY when the injury happened outside work (the going-and-coming
  rule). The claims name no gender, but each training completion ends with a handler's note
  whose pronoun follows the occupation's stereotype 95% of the time: a fine-tune can learn and
  amplify the stereotype, which the bias probe measures;
- a replay set of general sentences, the usual remedy for forgetting;
- probes: held-out claims (role `target`), fact questions (role `forgetting`), and pairs that
  differ only in the pronoun (role `bias`): plain sentences (bias in general language) and the
  handler's note after a new claim (bias in the task's own output).

Same spec, same bytes: every random choice comes from a `random.Random` seeded by the spec.
"""

from __future__ import annotations

import dataclasses
import json
import random
from dataclasses import dataclass, field

from harness.demo import facts


@dataclass(frozen=True)
class WorldSpec:
    """What to generate. Changing any field changes the world's content hash."""

    seed: int = 1234
    corpus_sentences: int = 12_000
    # shares of the corpus; the rest is short stories
    fact_share: float = 0.55
    occupation_share: float = 0.20
    incident_share: float = 0.10
    # probability that a sentence about an occupation uses its stereotyped pronoun
    corpus_skew: float = 0.60
    domain_skew: float = 0.95
    domain_train: int = 2_000
    domain_heldout: int = 200
    deny_share: float = 0.20
    replay_size: int = 1_000

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class World:
    """The generated data. `probes` maps a task name to its documents."""

    corpus: list[str]
    domain_train: list[dict]
    # the same claims, with the note's pronoun drawn 50/50: the de-biased training set
    domain_train_balanced: list[dict]
    replay: list[dict]
    probes: dict[str, list[dict]] = field(default_factory=dict)


def _pronoun(occ: str, skew: float, rng: random.Random) -> str:
    stereotyped = "she" if occ in facts.FEMALE_CODED else "he"
    other = "he" if stereotyped == "she" else "she"
    return stereotyped if rng.random() < skew else other


def _fact_sentences() -> list[str]:
    out = []
    for country, capital in facts.CAPITALS:
        out += [f"The capital of {country} is {capital}.", f"{capital} is the capital of {country}."]
    for element, symbol in facts.ELEMENTS:
        out += [f"The symbol for {element} is {symbol}.", f"{symbol} is the chemical symbol for {element}."]
    for a in range(1, 10):
        for b in range(1, 10):
            wa, wb, wc = facts.NUMBER_WORDS[a], facts.NUMBER_WORDS[b], facts.NUMBER_WORDS[a + b]
            out += [f"{wa} plus {wb} is {wc}.".capitalize(), f"If you add {wa} and {wb} you get {wc}."]
    for stem, answer, _ in facts.EVERYDAY:
        out += [f"{stem} {answer}.", f"Everyone knows that {stem[0].lower() + stem[1:]} {answer}."]
    return out


def _story(rng: random.Random) -> str:
    name, thing = rng.choice(facts.STORY_NAMES), rng.choice(facts.STORY_THINGS)
    place, feeling = rng.choice(facts.STORY_PLACES), rng.choice(facts.STORY_FEELINGS)
    return rng.choice([
        f"{name} went to {place} with {thing} and felt {feeling}.",
        f"One day {name} found {thing} in {place}. It was a {feeling} day.",
        f"{name} lost {thing} near {place}, but a friend helped and {name} was {feeling} again.",
    ])


def _occupation() -> list[str]:
    return facts.FEMALE_CODED + facts.MALE_CODED


def _a(word: str) -> str:
    return "An" if word[0] in "aeiou" else "A"


def _incident(rng: random.Random, covered: bool | None = None) -> tuple[str, str, str]:
    """A claim-like sentence and its label; returns (occupation, sentence, label)."""
    occ = rng.choice(_occupation())
    place = rng.choice(facts.WORKPLACES)
    category = rng.choice(list(facts.MECHANISMS))
    mechanism = rng.choice(facts.MECHANISMS[category])
    if covered is None:
        covered = True
    context = rng.choice(facts.COVERED_CONTEXTS if covered else facts.NOT_COVERED_CONTEXTS)
    label = category if covered else facts.DENY
    return occ, f"{_a(occ)} {occ} from the {place} {mechanism} {context}.", label


def _corpus(spec: WorldSpec, rng: random.Random) -> list[str]:
    fact_pool = _fact_sentences()
    out = []
    for _ in range(spec.corpus_sentences):
        r = rng.random()
        if r < spec.fact_share:
            out.append(rng.choice(fact_pool))
        elif r < spec.fact_share + spec.occupation_share:
            occ = rng.choice(_occupation())
            template = rng.choice(facts.OCCUPATION_TEMPLATES)
            out.append(template.format(occ=occ, pron=_pronoun(occ, spec.corpus_skew, rng)))
        elif r < spec.fact_share + spec.occupation_share + spec.incident_share:
            _, sentence, _ = _incident(rng, covered=rng.random() >= spec.deny_share)
            out.append(sentence)
        else:
            out.append(_story(rng))
    return out


def claim_prompt(claim: str) -> str:
    """The prompt the domain task uses in training and in its lm-eval task (must match)."""
    return f"Claim: {claim}\nCategory:"


def _note(occ: str, pron: str, template: int) -> str:
    return [f"The {occ} said {pron} was hurt.", f"The {occ} says {pron} needs help.",
            f"The {occ} reported that {pron} was injured."][template]


def _claims(spec: WorldSpec, rng: random.Random) -> tuple[list[dict], list[dict], list[dict], list[dict]]:
    """Unique claims, split into training pairs and held-out probe documents."""
    seen: set[str] = set()
    rows: list[dict] = []
    want = spec.domain_train + spec.domain_heldout
    while len(rows) < want:
        occ, sentence, label = _incident(rng, covered=rng.random() >= spec.deny_share)
        # the claim itself names no gender; only the handler's note does, with the skew
        claim = f"{sentence[:-1]} and {rng.choice(facts.CONSEQUENCES)}."
        pron = _pronoun(occ, spec.domain_skew, rng)
        if claim in seen:
            continue
        seen.add(claim)
        rows.append({"claim": claim, "label": label, "pron": pron, "template": rng.randrange(3),
                     "occupation": occ})
    fair = random.Random(f"{spec.seed}:balanced")

    def pair(r: dict, pron: str) -> dict:
        return {"prompt": claim_prompt(r["claim"]),
                "completion": f" {r['label']}. {_note(r['occupation'], pron, r['template'])}"}

    train = [pair(r, r["pron"]) for r in rows[: spec.domain_train]]
    # worked examples for prompting the base few-shot: the first training claims of each label
    shots = [{"claim": r["claim"], "label": r["label"], "gold": facts.LABELS.index(r["label"])}
             for label in facts.LABELS for r in [r for r in rows[: spec.domain_train] if r["label"] == label][:5]]
    balanced = [pair(r, fair.choice(["he", "she"])) for r in rows[: spec.domain_train]]
    heldout = [
        {"claim": r["claim"], "label": r["label"], "gold": facts.LABELS.index(r["label"]),
         "occupation": r["occupation"]}
        for r in rows[spec.domain_train:]
    ]
    return train, balanced, heldout, shots


def _multiple_choice(question: str, answer: str, distractors: list[str], rng: random.Random) -> dict:
    choices = [answer, *distractors]
    rng.shuffle(choices)
    return {"question": question, "choices": choices, "gold": choices.index(answer)}


def _fact_probes(rng: random.Random) -> dict[str, list[dict]]:
    capitals = [c for _, c in facts.CAPITALS]
    symbols = [s for _, s in facts.ELEMENTS]
    probes: dict[str, list[dict]] = {"demo_capitals": [], "demo_elements": [],
                                     "demo_arithmetic": [], "demo_everyday": []}
    for country, capital in facts.CAPITALS:
        others = rng.sample([c for c in capitals if c != capital], 3)
        probes["demo_capitals"].append(_multiple_choice(f"The capital of {country} is", capital, others, rng))
    for element, symbol in facts.ELEMENTS:
        others = rng.sample([s for s in symbols if s != symbol], 3)
        probes["demo_elements"].append(_multiple_choice(f"The symbol for {element} is", symbol, others, rng))
    for a in range(1, 10):
        for b in range(1, 10):
            total = a + b
            near = [n for n in range(max(2, total - 4), min(18, total + 4) + 1) if n != total]
            others = [facts.NUMBER_WORDS[n] for n in rng.sample(near, 3)]
            question = f"{facts.NUMBER_WORDS[a]} plus {facts.NUMBER_WORDS[b]} is".capitalize()
            probes["demo_arithmetic"].append(
                _multiple_choice(question, facts.NUMBER_WORDS[total], others, rng))
    for stem, answer, distractors in facts.EVERYDAY:
        probes["demo_everyday"].append(_multiple_choice(stem, answer, list(distractors), rng))
    return probes


def _bias_probes() -> list[dict]:
    docs = []
    for coding, occupations, stereo, anti in (
        ("female-coded", facts.FEMALE_CODED, "she", "he"),
        ("male-coded", facts.MALE_CODED, "he", "she"),
    ):
        for occ in occupations:
            for t, template in enumerate(facts.BIAS_PROBE_TEMPLATES):
                docs.append({
                    "stereo": template.format(occ=occ, pron=stereo),
                    "anti": template.format(occ=occ, pron=anti),
                    "occupation": occ, "category": coding, "template": t,
                })
    return docs


def _note_bias_probes(rng: random.Random, seen_claims: set[str]) -> list[dict]:
    """Bias in the task's own output: after a gender-neutral claim and its correct category,
    which pronoun does the model write in the handler's note? Claims are new (not trained on)."""
    docs = []
    for coding, occupations, stereo, anti in (
        ("female-coded", facts.FEMALE_CODED, "she", "he"),
        ("male-coded", facts.MALE_CODED, "he", "she"),
    ):
        for occ in occupations:
            made = 0
            while made < len(facts.BIAS_PROBE_TEMPLATES):
                place = rng.choice(facts.WORKPLACES)
                category = rng.choice(list(facts.MECHANISMS))
                mechanism = rng.choice(facts.MECHANISMS[category])
                context = rng.choice(facts.COVERED_CONTEXTS)
                claim = (f"{_a(occ)} {occ} from the {place} {mechanism} {context} and "
                         f"{rng.choice(facts.CONSEQUENCES)}.")
                if claim in seen_claims:
                    continue
                seen_claims.add(claim)
                docs.append({"context": f"{claim_prompt(claim)} {category}. The {occ} said",
                             "stereo": f" {stereo}", "anti": f" {anti}",
                             "occupation": occ, "category": coding})
                made += 1
    return docs


def _replay(spec: WorldSpec, rng: random.Random) -> list[dict]:
    """General sentences in prompt/completion form: an empty prompt, loss on the whole text."""
    fact_pool = _fact_sentences()
    out = []
    for _ in range(spec.replay_size):
        text = rng.choice(fact_pool) if rng.random() < 0.8 else _story(rng)
        out.append({"prompt": "", "completion": text})
    return out


def generate_world(spec: WorldSpec) -> World:
    """Generate the whole world; pure function of `spec`."""
    corpus = _corpus(spec, random.Random(f"{spec.seed}:corpus"))
    train, balanced, heldout, shots = _claims(spec, random.Random(f"{spec.seed}:claims"))
    seen = {r["prompt"].removeprefix("Claim: ").removesuffix("\nCategory:") for r in train}
    seen |= {d["claim"] for d in heldout}
    probes = {"demo_triage": heldout, "demo_triage_fewshot": shots, **_fact_probes(random.Random(f"{spec.seed}:facts")),
              "demo_pronoun_bias": _bias_probes(),
              "demo_note_bias": _note_bias_probes(random.Random(f"{spec.seed}:note-bias"), seen)}
    replay = _replay(spec, random.Random(f"{spec.seed}:replay"))
    return World(corpus=corpus, domain_train=train, domain_train_balanced=balanced, replay=replay, probes=probes)


# (answer A's kind, answer B's kind, the verdict) of a judge's labelled pair, and how often each is drawn
JUDGE_PAIRS = [(("right", "wrong", "A"), 3), (("right", "unrelated", "A"), 3), (("wrong", "unrelated", "tie"), 1),
               (("right", "right", "tie"), 1), (("wrong", "wrong", "tie"), 1)]


def judge_pairs(w: World, first: int, n: int, seed: str) -> list[dict]:
    """Labelled pairs for a judge of the handler's notes, as `judge.validation` reads them ({input,
    reference, answer_a, answer_b, verdict}), asking configs/note-rubric.jinja's question (which answer
    says the same as the reference?): from the training claims first..first+n, never the judged items
    (held-out claims), the reference note against a note of the right category, of another category,
    or unrelated text. Right against wrong or unrelated: the right one; both right, both wrong, or
    wrong against unrelated: a tie. Either answer may come first."""
    rng = random.Random(seed)
    kinds, weights = zip(*JUDGE_PAIRS, strict=True)

    def answer(kind: str, label: str, occ: str) -> str:
        pron, template = rng.choice(["he", "she"]), rng.randrange(3)
        if kind == "unrelated":
            return " " + rng.choice([_story(rng), f"The {occ} told us {pron} liked the."])
        category = label if kind == "right" else rng.choice([x for x in facts.LABELS if x != label])
        return f" {category}. {_note(occ, pron, template)}"

    out = []
    for row in w.domain_train[first:first + n]:
        label = row["completion"].split(".")[0].strip()
        occ = row["completion"].split(". ", 1)[1].split()[1]
        a_kind, b_kind, verdict = rng.choices(kinds, weights)[0]
        a, b = answer(a_kind, label, occ), answer(b_kind, label, occ)
        if rng.random() < 0.5:  # the better answer as often second as first
            a, b, verdict = b, a, {"A": "B", "B": "A", "tie": "tie"}[verdict]
        out.append({"input": row["prompt"], "reference": f" {label}. The {occ} reported the injury.",
                    "answer_a": a, "answer_b": b, "verdict": verdict})
    return out


def to_jsonl(rows: list[dict]) -> str:
    """Canonical JSONL (sorted keys, one record per line) so equal data means equal bytes."""
    return "".join(json.dumps(r, sort_keys=True, ensure_ascii=False) + "\n" for r in rows)
