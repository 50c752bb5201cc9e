"""A judge that sees, trained in the demo: SmolLM2-135M-Instruct with a LoRA adapter `harness train`'s
trainer fits on labelled pairs of the demo's notes, asked the question configs/demo.yaml's judge asks.

    harness demo --world judge     # into .harness/demo/judge (after `harness demo`); `make report` runs it

The demo world labels pairs of notes honestly (world.judge_pairs: the reference note against a note of
the right category, of another category, or unrelated text). The training pairs come from the first
training claims, each shown in both orders; the judge's validation pairs (build.py) come from the last
ones and the judged notes from held-out claims, so the judge is measured and used on pairs it never saw.
Each pair is rendered with the config's own rubric (judge.rubric) into a chat turn, and the label the
config reads (judge.labels: the better answer's letter, or the third label for a tie) is the
assistant's reply, in the chat template the config's fallback asks it in (configs/judge-chat.jinja:
SmolLM2's own without its default system prompt, 19 of a prompt's ~100 tokens): the judge learns the
format it is asked in. Nothing here knows how it will score:
configs/demo.yaml lists it as a fallback of SmolLM2, and the comparison measures both on the validation
pairs and lets the first that passes judge.

Cached as the demo's other stages: by its inputs' content and the source of the code that makes it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from harness.config import JudgeSpec, TrainSpec
from harness.demo import world
from harness.demo.build import JUDGE_VALIDATION_PAIRS, _adapter_key, _build_lock, _key, _source_hash, _Stamps
from harness.demo.smollm2 import smollm2_folder
from harness.errors import HarnessError
from harness.sources.gguf import STAMP as GGUF_STAMP
from harness.train import data, loop, lora
from harness.util.files import sha256_file


@dataclass(frozen=True)
class JudgeTrainSpec:
    """What the demo's judge is trained on and how: sized for `make report` on 2 CPU cores (README,
    "Generated text": the measured frontier of agreement against training time)."""

    world: world.WorldSpec = world.WorldSpec()
    # labelled pairs from the first training claims, each in both orders (960 records): the 480 records
    # the steps draw are then mostly distinct pairs, which generalises better than 240 pairs seen in
    # both orders (kappa 0.90 against 0.70 on the validation pairs, the same steps); fewer records
    # drawn (240 to 360) learnt the labels' prior, not the comparison (kappa near 0)
    pairs: int = 480
    steps: int = 60
    batch_size: int = 8
    lr: float = 2e-3
    warmup_steps: int = 4
    lora_r: int = 16
    lora_alpha: int = 32
    # every linear map of the top 10 of SmolLM2's 30 layers: gradients stop at layer 20, so a step costs
    # about half of one through every layer (README, "Generated text": the measured frontier of kappa
    # against training time; layers 15-29 reach kappa 1.00 in 92 s, these 0.90 in 77 s natively)
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
    layers: tuple[int, ...] | None = tuple(range(20, 30))
    max_length: int = 192
    precision: str = "auto"  # bf16 where the machine computes it faster, float32 elsewhere
    seed: int = 0


def judge_records(pairs: list[dict], rubric, labels: list[str]) -> list[dict]:
    """Each labelled pair as two chat records, one per order: the rubric rendered as the user's turn,
    the label of the better answer (labels[2] for a tie) as the assistant's."""
    label = {"A": labels[0], "B": labels[1], "tie": labels[2]}
    swap = {"A": "B", "B": "A", "tie": "tie"}
    out = []
    for p in pairs:
        for a, b, verdict in ((p["answer_a"], p["answer_b"], p["verdict"]),
                              (p["answer_b"], p["answer_a"], swap[p["verdict"]])):
            text = rubric.render(input=p["input"], reference=p["reference"], answer_a=a, answer_b=b)
            out.append({"messages": [{"role": "user", "content": text},
                                     {"role": "assistant", "content": label[verdict]}]})
    return out


def asked_in(judge: JudgeSpec, adapter: Path) -> Path | None:
    """The chat template file the config asks the judge with `adapter` in (the judge fallback that names
    it: its model's chat_template, resolved and checked by load_config), so that it is trained in the
    same; None: the tokenizer's own."""
    fallback = next((f for f in judge.fallbacks if f.adapter and Path(f.adapter).resolve() == adapter.resolve()),
                    None)
    template = fallback.model.chat_template if fallback is not None and fallback.model is not None else "auto"
    if template == "none":
        raise HarnessError("judge.fallbacks: chat_template none asks the trained judge in plain text, but it "
                           "learns chat turns; give `auto` or a template file")
    return None if template == "auto" else Path(template)


def build_judge(root: Path, models: Path, eval_config: Path, spec: JudgeTrainSpec = JudgeTrainSpec(),
                log: Callable[[str], None] = print) -> Path:
    """Train (or reuse) the demo's judge adapter into root/judge; returns its folder."""
    with _build_lock(root, log):
        return _build(Path(root), Path(models), Path(eval_config), spec, log)


def _build(root: Path, models: Path, eval_config: Path, spec: JudgeTrainSpec, log: Callable[[str], None]) -> Path:
    from harness.config import load_config
    from harness.judge import read_rubric

    judge = load_config(eval_config, candidates=False).judge
    if judge is None:
        raise HarnessError(f"{eval_config}: no judge to train one for; the demo's judge is trained to ask "
                           "judge.rubric's question and answer in judge.labels")
    t = time.perf_counter()
    w = world.generate_world(spec.world)
    claims = len(w.domain_train) - JUDGE_VALIDATION_PAIRS
    if spec.pairs > claims:
        raise HarnessError(f"JudgeTrainSpec.pairs {spec.pairs}: the training claims before the judge's "
                           f"validation pairs are {claims}; ask for at most that many")
    pairs = world.judge_pairs(w, 0, spec.pairs, f"{spec.world.seed}:judge-train")
    path = root / "data" / "judge_train.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    text = world.to_jsonl(judge_records(pairs, read_rubric(judge)[1], judge.labels))
    if not path.is_file() or path.read_text(encoding="utf-8") != text:
        path.write_text(text, encoding="utf-8")
    log(f"demo: {2 * len(pairs)} judge training records ({len(pairs)} pairs, both orders) in "
        f"{time.perf_counter() - t:.1f} s")

    base = smollm2_folder(models, log=log)
    base_key = (base / GGUF_STAMP).read_text(encoding="utf-8")
    out = root / "judge"
    precision = lora.resolve_precision(spec.precision, "cuda" if torch.cuda.is_available() else "cpu")[0]
    template = asked_in(judge, out)
    train = TrainSpec(base=str(base), data=str(path), out=str(out), steps=spec.steps, batch_size=spec.batch_size,
                      lr=spec.lr, warmup_steps=spec.warmup_steps, lora_r=spec.lora_r, lora_alpha=spec.lora_alpha,
                      target_modules=list(spec.target_modules),
                      layers=list(spec.layers) if spec.layers is not None else None, max_length=spec.max_length,
                      precision=precision, seed=spec.seed, chat_template=template and str(template))
    stamps = _Stamps(root)
    # keyed by the template's name and content, not where this clone keeps it
    key = _key(_adapter_key(train.model_copy(update={"chat_template": template and template.name}), base_key),
               template and sha256_file(template), _source_hash(lora, loop, data))
    if stamps.fresh("judge", key, out):
        log(f"demo: the judge's adapter up to date ({out})")
        return out
    log(f"demo: training the judge, SmolLM2-135M-Instruct + LoRA ({spec.steps} steps of {spec.batch_size} "
        f"records, precision {precision}) ...")
    manifest = lora.train_lora(train, log=lambda m: log(f"  judge {m}"))
    stamps.record("judge", key, out, ["adapter_model.safetensors", "adapter_config.json"], manifest.wall_s)
    log(f"demo: the judge trained in {manifest.wall_s:.0f} s, final loss {manifest.final_loss:.3f}")
    (out / "judge_spec.json").write_text(json.dumps(asdict(spec), indent=1, default=str), encoding="utf-8")
    return out
