"""`harness sweep`: how much data does the task need? Fine-tune on nested subsets of the training
data and chart target gain and forgetting against data size.

    harness sweep --base BASE --data train.jsonl --sizes 250,500,1000,2000 \\
        --eval-config harness.yaml --out sweeps/triage [trainer options]

Subsets are nested (each size holds every record of the smaller ones: a seeded shuffle, cut at
each size) and keep the file's order, so the full size trains exactly as `harness train` on the
whole file. By default each size trains for the same number of passes over its records (--steps
for the largest, fewer in proportion); --fixed-steps trains all sizes the same number of steps.
A size already trained with the same settings and data is reused. All sizes are then scored in
one comparison against the base (stored runs reused), written as OUT/sweep.json and a report in
OUT/report/ with the data-size chart; name the sweep.json under `sweeps:` in a config to put the
chart into that comparison's report too.
"""

from __future__ import annotations

import random
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from harness.config import TrainSpec
from harness.errors import HarnessError
from harness.persisted import SWEEP, SweepRecord, TrainManifest, read_record, write_record
from harness.records import TRAIN_MANIFEST, CurveRecord


@dataclass(frozen=True)
class SweepResult:
    out: Path
    curve: CurveRecord
    report: Path


def nested_subsets(lines: list[str], sizes: list[int], seed: int) -> dict[int, list[str]]:
    """size -> that many lines; each subset contains the smaller ones; file order kept."""
    order = list(range(len(lines)))
    random.Random(f"sweep:{seed}").shuffle(order)
    return {k: [lines[i] for i in sorted(order[:k])] for k in sizes}



def _same_training(folder: Path, identity: dict) -> TrainManifest | None:
    """The manifest of `folder` when it holds an adapter of this identity (TrainSpec.adapter_identity)."""
    path = folder / TRAIN_MANIFEST
    if not (path.is_file() and (folder / "adapter_model.safetensors").is_file()):
        return None
    manifest = read_record(path, TrainManifest)
    return manifest if manifest.identity() == identity else None


def _reuse(source: Path, manifest: TrainManifest, out: Path) -> None:
    """Copy an adapter trained the same way (its manifest without its own evaluation curve)."""
    out.mkdir(parents=True, exist_ok=True)
    for name in ("adapter_model.safetensors", "adapter_config.json"):
        shutil.copyfile(source / name, out / name)
    write_record(out / TRAIN_MANIFEST, manifest.model_copy(update={"eval_curve": None, "reused_from": str(source)}))


def run_sweep(spec: TrainSpec, sizes: list[int], eval_config: Path, scale_steps: bool = True,
              log: Callable[[str], None] = print, name: str | None = None,
              reuse: list[Path] = ()) -> SweepResult:
    """Train one adapter per size under `spec.out`, score them all, write sweep.json and a report.
    A size whose training matches an adapter in `reuse` (same recipe and data) copies it."""
    from harness.compare import base_weights
    from harness.report.render import render_report
    from harness.train.curve import evaluate_adapters, load_eval_config, make_curve
    from harness.train.lora import adapter_identity, train_lora

    out, base = Path(spec.out), Path(spec.base)
    loaded = load_eval_config(eval_config, base)
    lines = [line for line in Path(spec.data).read_text(encoding="utf-8").splitlines() if line.strip()]
    sizes = sorted(set(sizes))
    if not sizes or sizes[0] < 1 or sizes[-1] > len(lines):
        raise HarnessError(f"--sizes {','.join(map(str, sizes))}: each must be between 1 and the {len(lines)} "
                           f"records of {spec.data}")
    (out / "data").mkdir(parents=True, exist_ok=True)
    adapters = {}
    for k, subset in nested_subsets(lines, sizes, spec.seed).items():
        data = out / "data" / f"size-{k}.jsonl"
        text = "".join(line + "\n" for line in subset)
        if not data.is_file() or data.read_text(encoding="utf-8") != text:
            data.write_text(text, encoding="utf-8")
        steps = max(1, round(spec.steps * k / sizes[-1])) if scale_steps else spec.steps
        one = spec.model_copy(update={"data": str(data), "out": str(out / f"size-{k}"), "steps": steps,
                                      "warmup_steps": min(spec.warmup_steps, steps - 1),
                                      "checkpoint_every": 0, "eval_every": 0, "eval_config": None})
        adapters[f"size-{k}"] = Path(one.out)
        identity = adapter_identity(one)
        if _same_training(Path(one.out), identity):
            log(f"sweep: size {k} already trained ({one.out})")
            continue
        match = next(((p, m) for p in reuse if (m := _same_training(Path(p), identity))), None)
        if match:
            log(f"sweep: size {k} trains as {match[0]} did: reused")
            _reuse(Path(match[0]), match[1], Path(one.out))
            continue
        log(f"sweep: size {k}: {steps} steps")
        manifest = train_lora(one, log=lambda m, k=k: log(f"  size {k} {m}"))
        log(f"sweep: size {k} trained in {manifest.wall_s:.0f} s")
    result = evaluate_adapters(loaded, adapters, log=log)
    curve = make_curve("data_size", name or out.name, result, {n: int(n.split("-")[1]) for n in adapters})
    write_record(out / SWEEP, SweepRecord(base=str(base), base_weights=base_weights(base), eval_config=str(eval_config),
                                          spec=spec, scale_steps=scale_steps, curve=curve))
    report = render_report(result.model_copy(update={"curves": [*result.curves, curve]}), out / "report")
    log(f"sweep: best trade-off at {curve.best} records")
    return SweepResult(out=out, curve=curve, report=report)
