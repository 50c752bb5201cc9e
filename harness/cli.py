"""The `harness` command: thin commands that call the stages.

A HarnessError prints one line and exits 2; only bugs print a traceback.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path

import click

from harness.errors import HarnessError


def _quiet_libraries(verbose: bool) -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if not verbose:  # lm-eval's per-task progress bars; read by tqdm at import, so set it first
        os.environ.setdefault("TQDM_DISABLE", "1")
    for name in ("transformers", "peft", "datasets", "huggingface_hub"):
        logging.getLogger(name).setLevel(logging.INFO if verbose else logging.WARNING)
    # lm-eval warns on every model we hand it already built; that is how the hf backend works
    for name in ("lm-eval", "lm_eval"):
        logging.getLogger(name).setLevel(logging.INFO if verbose else logging.ERROR)
    if not verbose:
        import warnings

        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", message=".*already been initialized.*")


class _Group(click.Group):
    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except HarnessError as e:
            click.echo(f"error: {e}", err=True)
            sys.exit(2)


@click.group(cls=_Group)
@click.version_option(package_name="harness")
@click.option("-v", "--verbose", is_flag=True, help="Show library logs (lm-eval, transformers).")
def main(verbose: bool) -> None:
    """Evaluate fine-tuned checkpoints against their base: gain, forgetting, bias."""
    _quiet_libraries(verbose)


@main.command()
@click.option("--out", default=".harness/demo", show_default=True, type=click.Path(path_type=Path),
              help="Where the demo world is built (cached by content hash).")
@click.option("--probe-dir", default="suites/tasks/demo/data", show_default=True,
              type=click.Path(path_type=Path), help="Where the demo suite's probe files go.")
def demo(out: Path, probe_dir: Path) -> None:
    """Build the demo world: data, a tiny pretrained base, and two LoRA candidates."""
    from harness.demo.build import build_demo

    if not probe_dir.parent.is_dir():
        raise HarnessError(f"{probe_dir.parent}: no such folder; run `harness demo` from the "
                           "repository root, or pass --probe-dir")
    start = time.perf_counter()
    built = build_demo(out, probe_dir=probe_dir, log=click.echo)
    stages = " · ".join(f"{k} {v:.1f} s" for k, v in built.stage_s.items())
    click.echo(f"demo: ready in {time.perf_counter() - start:.1f} s ({stages})")
    click.echo("demo: next, `harness compare --config configs/demo.yaml`")


@main.command()
@click.option("--base", required=True, help="Base model folder.")
@click.option("--data", required=True, help="JSONL with {prompt, completion} per line.")
@click.option("--out", required=True, help="Folder for the adapter and train_manifest.json.")
@click.option("--replay", default=None, help="JSONL of general data mixed in against forgetting.")
@click.option("--replay-ratio", default=0.0, show_default=True, type=float)
@click.option("--steps", default=800, show_default=True, type=int)
@click.option("--batch-size", default=32, show_default=True, type=int)
@click.option("--lr", default=2e-3, show_default=True, type=float)
@click.option("--lora-r", default=16, show_default=True, type=int)
@click.option("--lora-alpha", default=32, show_default=True, type=int)
@click.option("--max-length", default=256, show_default=True, type=int)
@click.option("--seed", default=0, show_default=True, type=int)
def train(**options) -> None:
    """Fine-tune a LoRA adapter (loss on completions only, optional replay mixing)."""
    from harness.config import TrainSpec, parse_spec
    from harness.train.lora import train_lora

    spec = parse_spec(TrainSpec, options, "harness train")
    manifest = train_lora(spec, log=click.echo)
    click.echo(f"train: wrote {spec.out} in {manifest['wall_s']:.1f} s ({manifest['steps']} steps, "
               f"{manifest['tokens']} tokens, final loss {manifest['loss_curve'][-1]:.4f})")


@main.command()
@click.option("--config", "config_path", required=True, type=click.Path(path_type=Path),
              help="Config file naming the base, candidates and suite.")
def compare(config_path: Path) -> None:
    """Evaluate base and candidates side by side (reusing stored runs) and write the report."""
    from harness.compare import compare_runs
    from harness.config import load_config, load_suite
    from harness.execute import execute_plan
    from harness.plan import plan_runs
    from harness.report.render import render_report
    from harness.store import Store

    timings: dict[str, float] = {}
    t = time.perf_counter()
    spec = load_config(config_path)
    suite = load_suite(spec.suite)
    store = Store(spec.store)
    plan = plan_runs(spec, suite, store)
    timings["plan"] = time.perf_counter() - t
    distinct, missing = len(plan.distinct), len(plan.missing)
    click.echo(f"plan: {len(plan.models)} models x {len(plan.tasks)} tasks = {distinct} distinct "
               f"evaluations; {distinct - missing} stored, {missing} to evaluate")

    t = time.perf_counter()
    executed = execute_plan(plan, spec, store, log=click.echo)
    timings["execute"] = time.perf_counter() - t
    timings["model_load"] = executed.load_s

    t = time.perf_counter()
    result = compare_runs(plan, spec, suite, store, timings_s=timings)
    timings["compare"] = time.perf_counter() - t
    path = render_report(result.model_copy(update={"timings_s": {k: round(v, 3) for k, v in timings.items()}}),
                         spec.report_dir)
    store.record_comparison(spec.name, plan.model("base").fingerprint,
                            {cr.candidate: {r.role: r.delta for r in cr.roles} for cr in result.results})
    _print_summary(result)
    click.echo(f"report: {path}")


def _print_summary(result) -> None:
    for cr in result.results:
        parts = []
        for role in ("target", "forgetting", "bias"):
            rr = cr.role(role)
            if rr:
                parts.append(f"{role} {rr.delta:+.3f} [{rr.ci_low:+.3f}, {rr.ci_high:+.3f}]")
        click.echo(f"compare: {cr.candidate:>14}  " + "  ".join(parts))


if __name__ == "__main__":
    main()
