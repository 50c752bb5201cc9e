"""`make bench`: the harness against today's common practice, running lm-eval once per checkpoint.

Workload: the demo world's base and two LoRA candidates on the bench suite (bench/suite.yaml: the
demo's multiple-choice tasks, rolling log-likelihood of general text and greedy generation of
arithmetic answers: ~2,800 requests per model). Each repetition runs, alternating, in child
processes of this one:

  lm-eval   `lm-eval run --model hf` once per model (`peft=` for an adapter), --log_samples;
  cold      `harness compare` into an empty store;
  warm      `harness compare` on a copy of the cold store after one candidate's adapter changed;

and, in-process, the physical floor: a bare batched forward pass (no gradients, batches of
length-sorted sequences) of the base over the same unique token sequences, as tokens/s (best of
3 passes per repetition).
It prints min/median/max per figure, the ratios, each run's peak RSS, and writes --out (JSON).

    make bench                     # 3 repetitions
    python bench/speed.py --reps 5 --out bench.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
CANDIDATES = ("domain-only", "with-replay")
TEXT_DOCS = 400


def prepare(work: Path) -> dict:
    """The demo world (built or reused), one task folder that both tools read (absolute data paths),
    the harness config and suite."""
    import yaml

    from harness.demo.build import DemoSpec, build_demo

    demo = build_demo(REPO / ".harness" / "demo", DemoSpec(), probe_dir=None, log=lambda m: None)
    tasks = work / "tasks"
    (tasks / "data").mkdir(parents=True, exist_ok=True)
    demo_tasks = REPO / "suites" / "tasks" / "demo"
    for src in (demo_tasks / "data").glob("*.jsonl"):
        shutil.copy(src, tasks / "data" / src.name)
    for src in [*demo_tasks.glob("*.yaml"), demo_tasks / "utils.py", *(REPO / "bench" / "tasks").glob("*.*")]:
        text = src.read_text()
        if src.suffix == ".yaml":  # data paths made absolute: lm-eval reads them relative to its cwd
            for split in ("test", "train"):
                text = text.replace(f"{split}: data/", f"{split}: {tasks / 'data'}/")
        (tasks / src.name).write_text(text)
    replay = [json.loads(line) for line in (demo.root / "data" / "replay.jsonl").read_text().splitlines()]
    texts = [r["completion"] for r in replay if r["completion"].strip()][:TEXT_DOCS]
    (tasks / "data" / "text.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    suite = yaml.safe_load((REPO / "bench" / "suite.yaml").read_text())
    suite["task_dirs"] = [str(tasks)]
    (work / "suite.yaml").write_text(yaml.safe_dump(suite, sort_keys=False))
    names = [t["task"] for t in suite["tasks"]]
    return {"demo": demo, "tasks_dir": tasks, "task_names": names}


def harness_config(work: Path, demo, adapters: dict[str, Path], store: Path) -> Path:
    import yaml

    cfg = {"name": "bench", "base": {"path": str(demo.base), "dtype": "float32"},
           "candidates": [{"name": n, "adapter": str(p)} for n, p in adapters.items()],
           "suite": str(work / "suite.yaml"), "eval": {"backend": "hf", "device": "cpu", "batch_size": 32},
           "stats": {"resamples": 1000}, "store": str(store), "report_dir": str(store.parent / "report")}
    path = store.parent / "bench.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def timed(cmd: list[str], cwd: Path, log: Path) -> dict:
    """Run a child process; wall time and its own peak RSS (from wait4)."""
    env = os.environ | {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
                        "TQDM_DISABLE": "1"}
    start = time.perf_counter()
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"bench: {' '.join(cmd[:3])} ... failed; see {log}")
    return {"wall_s": wall, "peak_rss_mb": usage.ru_maxrss / 1024}


def run_lm_eval(prep: dict, work: Path, rep: int) -> dict:
    """lm-eval once per model, as a user evaluating each checkpoint does."""
    demo, total, peak = prep["demo"], 0.0, 0.0
    models = {"base": None, **{n: demo.candidates[n] for n in CANDIDATES}}
    for name, adapter in models.items():
        args = f"pretrained={demo.base},dtype=float32" + (f",peft={adapter}" if adapter else "")
        out = work / f"lm-eval-{rep}" / name
        r = timed([str(BIN / "lm-eval"), "run", "--model", "hf", "--model_args", args,
                   "--tasks", ",".join(prep["task_names"]), "--include_path", str(prep["tasks_dir"]),
                   "--batch_size", "32", "--device", "cpu", "--output_path", str(out), "--log_samples"],
                  work, work / f"lm-eval-{rep}-{name}.log")
        total += r["wall_s"]
        peak = max(peak, r["peak_rss_mb"])
    return {"wall_s": total, "peak_rss_mb": peak}


def run_harness(prep: dict, work: Path, rep: int) -> tuple[dict, dict, dict]:
    """Cold: an empty store. Warm: a copy of that store, one candidate's adapter changed."""
    from safetensors.torch import load_file, save_file

    demo = prep["demo"]
    cold_dir = work / f"cold-{rep}"
    adapters = {n: demo.candidates[n] for n in CANDIDATES}
    config = harness_config(work, demo, adapters, _fresh(cold_dir) / "store")
    cold = timed([str(BIN / "harness"), "compare", "--config", str(config)], work, cold_dir / "log.txt")
    cold_doc = json.loads((cold_dir / "report" / "comparison.json").read_text())
    cold["score_s"] = cold_doc["timings_s"]["score"]  # scoring alone: no imports, model load, statistics

    warm_dir = _fresh(work / f"warm-{rep}")
    shutil.copytree(cold_dir / "store", warm_dir / "store")
    changed = warm_dir / "adapter-changed"
    shutil.copytree(adapters[CANDIDATES[-1]], changed)
    weights = changed / "adapter_model.safetensors"
    tensors = load_file(weights)
    save_file({k: (v * 1.01 if "lora_B" in k else v).to(v.dtype) for k, v in tensors.items()}, weights)
    config = harness_config(work, demo, adapters | {CANDIDATES[-1]: changed}, warm_dir / "store")
    warm = timed([str(BIN / "harness"), "compare", "--config", str(config)], work, warm_dir / "log.txt")
    return cold, warm, cold_doc


def _fresh(folder: Path) -> Path:
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


class Floor:
    """Tokens/s of a bare batched forward pass of the base over the suite's unique token sequences
    (context + continuation of every request, as HFLM scores them; generation: the prompt), timed in
    each repetition beside the runs it is compared with."""

    def __init__(self, prep: dict):
        import torch
        from lm_eval.tasks import TaskManager
        from transformers import AutoModelForCausalLM, AutoTokenizer

        demo = prep["demo"]
        tok = AutoTokenizer.from_pretrained(demo.base)
        self.model = AutoModelForCausalLM.from_pretrained(demo.base, dtype=torch.float32).eval()
        manager = TaskManager(include_path=str(prep["tasks_dir"]), include_defaults=False)
        seqs: set[tuple[int, ...]] = set()
        for task in manager.load(prep["task_names"])["tasks"].values():
            task.build_all_requests(rank=0, world_size=1)
            for inst in task.instances:
                if inst.request_type in ("generate_until", "loglikelihood_rolling"):
                    ids = tok.encode(inst.args[0])
                else:
                    ctx, cont = inst.args
                    ids = tok.encode(ctx) + tok.encode(cont, add_special_tokens=False)
                seqs.add(tuple(ids[-self.model.config.max_position_embeddings:]))
        self.ordered = sorted(seqs, key=len, reverse=True)
        self.tokens = sum(len(s) for s in self.ordered)
        self.pad = tok.pad_token_id if tok.pad_token_id is not None else 0
        self.times: list[float] = []

    def time(self, passes: int = 3) -> None:
        import torch

        with torch.inference_mode():
            for _ in range(passes):
                start = time.perf_counter()
                for i in range(0, len(self.ordered), 32):
                    batch = self.ordered[i:i + 32]
                    width = len(batch[0])
                    ids = torch.tensor([list(s) + [self.pad] * (width - len(s)) for s in batch])
                    mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in batch])
                    self.model(input_ids=ids, attention_mask=mask)
                self.times.append(time.perf_counter() - start)

    def result(self) -> dict:
        best = min(self.times)
        return {"sequences": len(self.ordered), "tokens": self.tokens, "seconds": best,
                "seconds_median": statistics.median(self.times), "passes": len(self.times),
                "tokens_per_s": self.tokens / best}


def spread(values: list[float]) -> dict:
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def main() -> None:
    os.environ.setdefault("TQDM_DISABLE", "1")  # lm-eval's bars while the floor's requests are built
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--work", type=Path, default=REPO / ".harness" / "bench")
    parser.add_argument("--out", type=Path, default=REPO / "bench.json")
    args = parser.parse_args()
    work = args.work.resolve()  # the task folder and suite are written with absolute paths
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    prep = prepare(work)
    bare = Floor(prep)
    runs: dict[str, list[dict]] = {"lm_eval": [], "cold": [], "warm": []}
    doc: dict | None = None
    for rep in range(args.reps):  # alternating A/B within each repetition
        order = ("lm_eval", "harness") if rep % 2 == 0 else ("harness", "lm_eval")
        for what in order:
            if what == "lm_eval":
                runs["lm_eval"].append(run_lm_eval(prep, work, rep))
            else:
                cold, warm, doc = run_harness(prep, work, rep)
                runs["cold"].append(cold)
                runs["warm"].append(warm)
        bare.time()
        print(f"bench: repetition {rep + 1}/{args.reps}: lm-eval {runs['lm_eval'][-1]['wall_s']:.1f} s, "
              f"harness cold {runs['cold'][-1]['wall_s']:.1f} s, warm {runs['warm'][-1]['wall_s']:.1f} s", flush=True)
    fl = bare.result()
    wall = {k: spread([r["wall_s"] for r in v]) for k, v in runs.items()}
    rss = {k: max(r["peak_rss_mb"] for r in v) for k, v in runs.items()}
    score_s = statistics.median(r["score_s"] for r in runs["cold"])
    n_models = 1 + len(CANDIDATES)
    throughput = fl["tokens"] * n_models / score_s
    result = {
        "workload": {"models": n_models, "tasks": prep["task_names"], "unique_sequences": fl["sequences"],
                     "unique_tokens": fl["tokens"]},
        "wall_s": wall, "peak_rss_mb": rss, "floor": fl,
        "ratios": {"cold_over_lm_eval": wall["cold"]["median"] / wall["lm_eval"]["median"],
                   "warm_over_lm_eval": wall["warm"]["median"] / wall["lm_eval"]["median"],
                   "harness_throughput_over_floor": throughput / fl["tokens_per_s"],
                   "harness_rss_over_lm_eval": rss["cold"] / rss["lm_eval"]},
        "harness_score_s": spread([r["score_s"] for r in runs["cold"]]),
        "harness_timings_s": doc["timings_s"] if doc else None,  # the last cold run's stages
        "reps": args.reps, "bench_s": time.perf_counter() - t0,
    }
    args.out.write_text(json.dumps(result, indent=2))
    print(f"\n{'run':<28}{'min':>8}{'median':>8}{'max':>8}{'peak RSS':>11}")
    for k, label in (("lm_eval", "lm-eval, once per model"), ("cold", "harness compare, cold"),
                     ("warm", "harness compare, warm")):
        w = wall[k]
        print(f"{label:<28}{w['min']:8.1f}{w['median']:8.1f}{w['max']:8.1f}{rss[k]:8.0f} MB")
    print(f"floor: {fl['tokens']} unique tokens in {fl['sequences']} sequences, {fl['tokens_per_s']:.0f} tokens/s; "
          f"harness scoring (cold, {n_models} models): median {score_s:.1f} s = "
          f"{throughput:.0f} tokens/s per model-pass")
    for k, v in result["ratios"].items():
        print(f"{k:<34}{v:8.3f}")
    print(f"bench: {result['bench_s']:.0f} s; results in {args.out}")


if __name__ == "__main__":
    main()
