"""GPU check of the vllm backend, with no hub: one engine for a base and N LoRA adapters, against
one engine per adapter (what running lm-eval once per checkpoint does), on a random-weight model of
a realistic shape built locally.

    make bench-gpu                     # Llama-1B-like, 4 adapters of rank 16
    python bench/gpu_lora.py --layers 16 --hidden 2048 --adapters 8 --out bench-gpu.json

It prints, for the same requests (log-likelihood of a continuation, and greedy generation):
  base only (one engine, no LoRA), base + N adapters in one engine, one engine per adapter
(start-up included, as a per-checkpoint run pays it), and the ratios. Results go to --out.
Random weights make the text meaningless; the work per token is what a real model of this shape does.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path


def build_tokenizer(folder: Path, vocab: int) -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    rng = random.Random(0)
    words = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 9))) for _ in range(5000)]
    corpus = [" ".join(rng.choice(words) for _ in range(40)) for _ in range(4000)]
    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=vocab, special_tokens=["<s>", "</s>"],
                                                        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>").save_pretrained(folder)


def build(root: Path, args) -> tuple[Path, dict[str, Path]]:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    base = root / "base"
    if not (base / "config.json").is_file():
        torch.manual_seed(0)
        config = LlamaConfig(vocab_size=args.vocab, hidden_size=args.hidden, intermediate_size=args.intermediate,
                             num_hidden_layers=args.layers, num_attention_heads=args.heads,
                             num_key_value_heads=args.kv_heads, max_position_embeddings=2048,
                             bos_token_id=0, eos_token_id=1, tie_word_embeddings=True)
        LlamaForCausalLM(config).to(torch.bfloat16).save_pretrained(base, safe_serialization=True)
        build_tokenizer(base, args.vocab)
    adapters = {}
    for i in range(args.adapters):
        folder = root / f"adapter-{i}"
        if not (folder / "adapter_config.json").is_file():
            torch.manual_seed(100 + i)
            model = LlamaForCausalLM.from_pretrained(base, dtype=torch.bfloat16)
            peft = get_peft_model(model, LoraConfig(r=args.rank, lora_alpha=2 * args.rank, task_type="CAUSAL_LM",
                                                    target_modules=["q_proj", "k_proj", "v_proj", "o_proj"]))
            for name, p in peft.named_parameters():
                if "lora_B" in name:  # a trained adapter is not zero
                    torch.nn.init.normal_(p, std=0.02)
            peft.save_pretrained(folder)
        adapters[f"adapter-{i}"] = folder
    return base, adapters


def requests(n: int, seed: int = 0):
    from lm_eval.api.instance import Instance

    rng = random.Random(seed)
    words = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 9))) for _ in range(2000)]
    ll, gen = [], []
    for i in range(n):
        context = " ".join(rng.choice(words) for _ in range(rng.randint(100, 400)))
        ll.append(Instance("loglikelihood", {}, (context, " " + " ".join(rng.choice(words) for _ in range(8))), i))
        gen.append(Instance("generate_until", {}, (context, {"until": ["\n\n"], "max_gen_toks": 64}), i))
    return ll, gen


def score(backend, variants: list[str], ll, gen) -> float:
    start = time.perf_counter()
    for variant in variants:
        with backend.activate(variant) as lm:
            lm.loglikelihood(ll)
            lm.generate_until(gen)
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", type=Path, default=Path(".harness/bench-gpu"))
    ap.add_argument("--layers", type=int, default=16)
    ap.add_argument("--hidden", type=int, default=2048)
    ap.add_argument("--intermediate", type=int, default=8192)
    ap.add_argument("--heads", type=int, default=32)
    ap.add_argument("--kv-heads", type=int, default=8)
    ap.add_argument("--vocab", type=int, default=32000)
    ap.add_argument("--adapters", type=int, default=4)
    ap.add_argument("--rank", type=int, default=16)
    ap.add_argument("--requests", type=int, default=512)
    ap.add_argument("--out", type=Path, default=Path("bench-gpu.json"))
    args = ap.parse_args()

    from harness.backends.vllm import VLLMBackend
    from harness.records import BASE

    t = time.perf_counter()
    base, adapters = build(args.root, args)
    build_s = time.perf_counter() - t
    ll, gen = requests(args.requests)
    figures: dict[str, float] = {"build_s": build_s}

    def engine(adapters_: dict[str, Path]):
        return VLLMBackend(base, dtype="bfloat16", device="cuda", adapters=adapters_)

    t = time.perf_counter()
    b = engine({})
    figures["base_only_start_s"] = time.perf_counter() - t
    figures["base_only_score_s"] = score(b, [BASE], ll, gen)
    b.close()

    t = time.perf_counter()
    b = engine(adapters)
    figures["one_engine_start_s"] = time.perf_counter() - t
    figures["one_engine_score_s"] = score(b, [BASE, *adapters], ll, gen)
    b.close()

    per_adapter = 0.0
    for name, folder in adapters.items():
        t = time.perf_counter()
        b = engine({name: folder})
        score(b, [name], ll, gen)
        b.close()
        per_adapter += time.perf_counter() - t
    figures["engine_per_adapter_total_s"] = per_adapter

    n = len(adapters)
    one = figures["one_engine_start_s"] + figures["one_engine_score_s"]
    figures["lora_overhead_per_variant"] = figures["one_engine_score_s"] / (n + 1) / figures["base_only_score_s"]
    figures["engine_per_adapter_over_one_engine"] = (
        per_adapter + figures["base_only_start_s"] + figures["base_only_score_s"]) / one
    args.out.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "figures": figures}, indent=2))
    for k, v in figures.items():
        print(f"{k:>36}: {v:10.3f}")


if __name__ == "__main__":
    main()
