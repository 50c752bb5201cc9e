"""The real-model world: SmolLM2-135M-Instruct (a real pretrained instruct model, from PyPI) fine-tuned
with LoRA on chat records of the demo's domain task, for `configs/real.yaml`.

    harness demo --world real     # builds into .harness/real/ (the model into .harness/models/)
    harness compare --config configs/real.yaml

The training records are the demo world's own claims (`world.generate_world`, the same spec as the
probe files the suite reads), written as chat turns: the user sends the claim, the assistant answers
with its category and the handler's note, whose pronoun follows the occupation's stereotype 95% of
the time (or, for `balanced-replay`, either pronoun alike). The replay records are the demo's
general sentences as assistant turns. Nothing here knows what the comparison will find: the
effects on the report come from this training and the evaluation of the probes.

Each stage is cached as the demo's are (harness/demo/build.py): by its inputs' content and the source
of the code that makes it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from harness.config import TrainSpec
from harness.demo import world
from harness.demo.build import DemoBuild, _adapter_key, _build_lock, _key, _source_hash, _Stamps
from harness.demo.smollm2 import smollm2_folder
from harness.sources.gguf import STAMP as GGUF_STAMP
from harness.train import data, loop, lora

REPLAY_PROMPT = "Write a sentence."


@dataclass(frozen=True)
class RealRecipe:
    """How one candidate of the real world is fine-tuned."""

    balanced: bool = False  # the de-biased notes (either pronoun alike) instead of the skewed ones
    replay_ratio: float = 0.0


@dataclass(frozen=True)
class RealSpec:
    """What the real world trains: a few hundred chat records, a short LoRA run per candidate (sized
    for 2 CPU cores: ~80 s each in bf16 on an AMX CPU)."""

    world: world.WorldSpec = world.WorldSpec()
    records: int = 400  # the first claims of the demo's training set
    replay_records: int = 400
    steps: int = 40
    batch_size: int = 8
    lr: float = 1e-3
    warmup_steps: int = 4
    lora_r: int = 8
    lora_alpha: int = 16
    max_length: int = 96
    # chosen by the machine: bf16 autocast where it is faster (AMX: 257 tokens/s against 178 in
    # float32, losses alike), float32 elsewhere (AVX2 computes bf16 ~160x slower); README, "A real
    # instruct model"
    precision: str = "auto"
    candidates: dict[str, RealRecipe] = field(default_factory=lambda: {
        "domain-only": RealRecipe(),
        "balanced-replay": RealRecipe(balanced=True, replay_ratio=0.2),
    })


def chat_records(rows: list[dict]) -> list[dict]:
    """Prompt/completion rows as chat records: the prompt is the user's turn (a replay row's empty
    prompt becomes REPLAY_PROMPT), the completion the assistant's."""
    return [{"messages": [{"role": "user", "content": r["prompt"] or REPLAY_PROMPT},
                          {"role": "assistant", "content": r["completion"].strip()}]} for r in rows]


def build_real(root: Path, models: Path, spec: RealSpec = RealSpec(),
               log: Callable[[str], None] = print) -> DemoBuild:
    """Build (or reuse) the real world under `root`, the base model under `models`."""
    with _build_lock(root, log):
        return _build(Path(root), Path(models), spec, log)


def _build(root: Path, models: Path, spec: RealSpec, log: Callable[[str], None]) -> DemoBuild:
    stamps = _Stamps(root)
    stage_s: dict[str, float] = {}
    t = time.perf_counter()
    base = smollm2_folder(models, log=log)
    stage_s["base"] = round(time.perf_counter() - t, 3)
    base_key = (base / GGUF_STAMP).read_text(encoding="utf-8")  # the GGUF file's sha256 and the converter

    t = time.perf_counter()
    w = world.generate_world(spec.world)
    data_dir = root / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    files = {"domain_chat.jsonl": chat_records(w.domain_train[: spec.records]),
             "domain_chat_balanced.jsonl": chat_records(w.domain_train_balanced[: spec.records]),
             "replay_chat.jsonl": chat_records(w.replay[: spec.replay_records])}
    for name, rows in files.items():
        path, text = data_dir / name, world.to_jsonl(rows)
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
    stage_s["data"] = round(time.perf_counter() - t, 3)

    candidates = {}
    knobs = {k: v for k, v in asdict(spec).items() if k not in ("world", "records", "replay_records", "candidates")}
    # the precision this machine trains in (auto resolved here): it keys the adapters, so a store moved to
    # a machine of another class trains them again rather than reuse ones trained otherwise
    knobs["precision"] = lora.resolve_precision(spec.precision, "cuda" if torch.cuda.is_available() else "cpu")[0]
    for name, recipe in spec.candidates.items():
        out = root / "candidates" / name
        records = "domain_chat_balanced.jsonl" if recipe.balanced else "domain_chat.jsonl"
        train = TrainSpec(base=str(base), out=str(out), seed=0, **knobs, data=str(data_dir / records),
                          replay=str(data_dir / "replay_chat.jsonl") if recipe.replay_ratio > 0 else None,
                          replay_ratio=recipe.replay_ratio, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"])
        key = _key(_adapter_key(train, base_key), _source_hash(lora, loop, data))
        candidates[name] = out
        if stamps.fresh(f"candidate:{name}", key, out):
            log(f"real: candidate {name} up to date ({out})")
            stage_s[f"train:{name}"] = 0.0
            continue
        log(f"real: fine-tuning {name} on SmolLM2-135M-Instruct ({spec.steps} steps of {spec.batch_size} chat "
            f"records, precision {knobs['precision']}, replay {recipe.replay_ratio}) ...")
        manifest = lora.train_lora(train, log=lambda m, n=name: log(f"  {n} {m}"))
        stage_s[f"train:{name}"] = manifest.wall_s
        stamps.record(f"candidate:{name}", key, out, ["adapter_model.safetensors", "adapter_config.json"],
                      manifest.wall_s)
        log(f"real: {name} trained in {manifest.wall_s:.0f} s, final loss {manifest.final_loss:.3f}")
    (root / "spec.json").write_text(json.dumps(asdict(spec), indent=1, default=str), encoding="utf-8")
    return DemoBuild(root=root, base=base, candidates=candidates, stage_s=stage_s)
