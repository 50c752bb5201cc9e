"""The minimal LoRA trainer. Read it top to bottom.

    harness train --base .harness/demo/base --data train.jsonl --out adapters/v1 \\
        [--replay general.jsonl --replay-ratio 0.1] [--steps 800] [--seed 0]

Data: JSONL, one {"prompt": ..., "completion": ...} per line. The loss covers completion tokens
only (plus EOS); a replay file is mixed in at `replay_ratio` of the batch slots, its records
usually with an empty prompt so the whole text is learned. Writes the adapter (safetensors) and
`train_manifest.json` (data hashes, steps, tokens, wall seconds, loss curve).
"""

from __future__ import annotations

import json
import platform
from collections.abc import Callable
from pathlib import Path

import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerBase

import harness
from harness.config import TrainSpec
from harness.errors import HarnessError
from harness.fingerprint import sha256_file
from harness.train.loop import IGNORE, LoopSettings, deterministic, pad_batch, run_loop
from harness.train.manifest import TRAIN_MANIFEST

MANIFEST = TRAIN_MANIFEST


def read_pairs(path: Path) -> list[dict[str, str]]:
    """Read prompt/completion JSONL; a bad line is an error naming the file and line."""
    from harness.datasets import read_jsonl

    rows = []
    for where, row in read_jsonl(path, "training data file", "check --data"):
        if not isinstance(row.get("prompt"), str) or not isinstance(row.get("completion"), str):
            raise HarnessError(f"{where}: expected an object with string fields 'prompt' and 'completion'")
        if not row["completion"]:
            raise HarnessError(f"{where}: empty 'completion': nothing to learn from this line")
        rows.append({"prompt": row["prompt"], "completion": row["completion"]})
    if not rows:
        raise HarnessError(f"{path}: no records")
    return rows


def encode_pair(tok: PreTrainedTokenizerBase, prompt: str, completion: str) -> tuple[list[int], list[int]]:
    """Token ids and labels: prompt tokens (with the tokenizer's BOS) are masked from the loss."""
    prompt_ids = tok(prompt)["input_ids"]
    completion_ids = tok(completion, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    return prompt_ids + completion_ids, [IGNORE] * len(prompt_ids) + completion_ids


def train_lora(spec: TrainSpec, log: Callable[[str], None] | None = None) -> dict:
    """Fine-tune a LoRA adapter on `spec.base`; returns the manifest it writes."""
    base, out = Path(spec.base), Path(spec.out)
    if not (base / "config.json").is_file():
        raise HarnessError(f"{base}: not a model folder (no config.json); pass --base a model folder")
    tok = AutoTokenizer.from_pretrained(base)
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token

    # 1. data: encode every record once; a too-long record is an error, not a silent cut
    def encode_file(path: Path) -> list[tuple[list[int], list[int]]]:
        encoded = []
        for n, r in enumerate(read_pairs(path), start=1):
            ids, labels = encode_pair(tok, r["prompt"], r["completion"])
            if len(ids) > spec.max_length:
                raise HarnessError(f"{path}: record {n} is {len(ids)} tokens, over max_length "
                                   f"{spec.max_length}; shorten it or raise --max-length")
            encoded.append((ids, labels))
        return encoded

    domain = encode_file(Path(spec.data))
    replay = encode_file(Path(spec.replay)) if spec.replay else []

    with deterministic(spec.seed):
        # 2. model: the base in float32 with LoRA on the target modules; only LoRA trains
        model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32, use_safetensors=True)
        lora = LoraConfig(r=spec.lora_r, lora_alpha=spec.lora_alpha, lora_dropout=spec.lora_dropout,
                          target_modules=list(spec.target_modules), task_type="CAUSAL_LM")
        model = get_peft_model(model, lora)

        # 3. batches: each slot is a replay record with probability replay_ratio, otherwise the
        #    next domain record of a shuffled pass; one seeded generator decides everything
        gen = torch.Generator().manual_seed(spec.seed)
        order: list[int] = []

        def next_batch(step: int) -> dict[str, torch.Tensor]:
            rows = []
            for _ in range(spec.batch_size):
                if replay and float(torch.rand(1, generator=gen)) < spec.replay_ratio:
                    rows.append(replay[int(torch.randint(len(replay), (1,), generator=gen))])
                    continue
                if not order:
                    order.extend(torch.randperm(len(domain), generator=gen).tolist())
                rows.append(domain[order.pop()])
            return pad_batch(rows, tok.pad_token_id)

        settings = LoopSettings(steps=spec.steps, lr=spec.lr, warmup_steps=spec.warmup_steps,
                                weight_decay=spec.weight_decay)
        result = run_loop(model, next_batch, settings, log=log)

    # 4. write the adapter (safetensors) and the manifest
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    manifest = {
        "version": 1,
        "harness_version": harness.__version__,
        "torch_version": torch.__version__,
        "machine": platform.machine(),
        "base": str(base),
        "data_sha256": sha256_file(Path(spec.data)),
        "replay_sha256": sha256_file(Path(spec.replay)) if spec.replay else None,
        "records": len(domain),
        "replay_records": len(replay),
        "spec": spec.model_dump(),
        "steps": spec.steps,
        "tokens": result.tokens,
        "loss_tokens": result.loss_tokens,
        "wall_s": result.wall_s,
        "loss_curve": result.loss_curve,
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    return manifest
