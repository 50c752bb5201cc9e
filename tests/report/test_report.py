"""The HTML report: everything untrusted is shown as text, and it renders from a stored result."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from conftest import REPO
from harness.comparison import ComparisonResult
from harness.records import (
    CandidateResult,
    Estimate,
    FlipRecord,
    ModelRecord,
    RoleResult,
    TaskResult,
)
from harness.report.render import load_comparison, render_html, render_report

HOSTILE = "<script>alert(1)</script></td><img src=x onerror=alert(2)>"


def _result() -> ComparisonResult:
    task = TaskResult(task="t<b>", role="target", metric="acc", n=10, binary=True,
                      base=Estimate(estimate=0.4, low=0.17, high=0.69),
                      candidate=Estimate(estimate=0.6, low=0.31, high=0.83),
                      delta=Estimate(estimate=0.2, low=0.05, high=0.35), interval="<i>", test="<t>",
                      p_value=0.3, p_holm=0.3, sd_item=0.5, mde=0.4, to_wrong=1, to_right=3)
    flip = FlipRecord(task="t<b>", doc_id=3, direction="to_wrong", prompt=HOSTILE, target="</td>",
                      base_response="ok", candidate_response=HOSTILE)
    cr = CandidateResult(candidate="cand<i>", tasks=[task],
                         roles=[RoleResult(role="target", tasks=["t<b>"], n=10,
                                           delta=Estimate(estimate=0.2, low=0.05, high=0.35), se=0.1, p_value=0.04,
                                           mde=0.28)],
                         flips=[flip])
    m = ModelRecord(label="base", source="/m<x>", fingerprint="f" * 64)
    return ComparisonResult(name="n<h1>", created_at="now", harness_version="0", suite="s", confidence=0.95,
                            base=m, candidates=[m.model_copy(update={"label": "cand<i>"})], results=[cr])


def test_model_output_is_escaped(tmp_path):
    html = render_report(_result(), tmp_path).read_text()
    assert "<script>alert" not in html and "<img" not in html and "n&lt;h1&gt;" in html
    assert html.count("<script>") == 1  # the report's own filter script, nothing else
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&lt;/td&gt;" in html
    assert html.count("<td") == html.count("</td>")  # no cell was closed by the data


def test_report_rerenders_from_comparison_json(tmp_path):
    render_report(_result(), tmp_path / "a")
    loaded = load_comparison(tmp_path / "a")
    assert loaded == _result()
    html = render_report(loaded, tmp_path / "b").read_text()
    assert "+20.0 pp" in html and "[+5.0 pp, +35.0 pp]" in html and "better" in html


def test_harness_report_rerenders_the_demo_without_loading_a_model(demo_report, tmp_path):
    """`harness report` in a fresh interpreter: the page is rebuilt from comparison.json alone,
    and no model library (torch, transformers, peft, lm-eval, vLLM) is even imported."""
    import shutil
    import subprocess
    import sys

    shutil.copy(demo_report.parent / "comparison.json", tmp_path / "comparison.json")
    code = ("import sys; from click.testing import CliRunner; from harness.cli import main; "
            "r = CliRunner().invoke(main, ['report', sys.argv[1]]); assert r.exit_code == 0, r.output; "
            "print([m for m in ('torch', 'transformers', 'peft', 'lm_eval', 'vllm') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
    html = (tmp_path / "index.html").read_text()
    # 10 comparison charts (4 of them the fine-tunes' sensitivity, one the quality-cost frontier), the
    # learning-forgetting curves of the two candidates trained with checkpoints scored, and the
    # data-size sweep named under `sweeps:` (plus the history's trend charts when the store holds
    # earlier comparisons of the demo config)
    charts = html.count('<svg class="chart') - html.count('<svg class="chart trend')
    assert charts == 13 and "Is it worth it?" in html
    # two bases with their candidates, the frontier chart and table, the ROI across bases
    assert "against their bases (2: base, <code>small</code>)" in html
    assert "(fine-tune of <code>small</code>, against it)" in html
    assert 'class="chart frontier"' in html and 'id="frontier-table"' in html and 'id="ways-table"' in html
    result = json.loads((tmp_path / "comparison.json").read_text())
    assert {a["base"] for a in result["roi"]["alternatives"]} == {"base", "small"}
    assert ("small-domain-only", "domain-only") in {(x["candidate"], x["baseline"]) for x in result["roi"]["lines"]}
    # the frontier (which ways are on it follows the measured times): cheapest first, each point
    # dearer and better than the one before, none beaten by a way that costs no more
    steps, ways = result["roi"]["frontier"]["steps"], result["roi"]["alternatives"]
    assert steps[0]["cost_per_1000"] == min(a["cost_per_1000"] for a in ways)
    for before, after in zip(steps, steps[1:], strict=False):
        assert after["cost_per_1000"] > before["cost_per_1000"]
        assert after["accuracy"]["estimate"] > before["accuracy"]["estimate"]
    for st in steps:
        assert not [a["name"] for a in ways if a["cost_per_1000"] <= st["cost_per_1000"]
                    and a["accuracy"]["estimate"] > st["accuracy"]["estimate"]]
    for title in ("along training: domain-only", "along training: with-replay", "against data size: domain-only"):
        assert f'aria-label="learning and forgetting {title}"' in html, title


def test_a_no_op_compare_and_gate_of_the_demo_import_no_model_library(demo_report, demo_config):
    """Every run stored (the demo report's comparison scored them): `harness compare` and `harness
    gate` in a fresh interpreter ask the store first and import neither torch, transformers, peft
    nor vLLM, nor build any lm-eval task (remembered by recipe: no lm_eval.api.task, no datasets),
    and say that nothing was evaluated."""
    import subprocess
    import sys

    for command in ("compare", "gate"):
        code = ("import sys; from click.testing import CliRunner; from harness.cli import main; "
                f"r = CliRunner().invoke(main, ['{command}', '--config', sys.argv[1]]); "
                "print(r.output); print(r.exit_code); "
                "print([m for m in ('torch', 'transformers', 'peft', 'vllm', 'lm_eval.api.task', 'datasets') "
                "if m in sys.modules])")
        out = subprocess.run([sys.executable, "-c", code, str(demo_config)], capture_output=True, text=True,
                             check=True)
        *output, code_line, imported = out.stdout.strip().splitlines()
        assert imported == "[]", out.stdout + out.stderr
        assert code_line in ("0", "1"), out.stdout + out.stderr  # gate: 1 where a verdict fails
        assert " 0 to evaluate" in "\n".join(output), out.stdout


def test_demo_curves_come_from_the_build_and_show_forgetting_grow_with_steps(demo_report):
    """The demo's curves are measured, not drawn: domain-only forgets more the longer it trains and
    has learned the task before the end, so its best trade-off comes early; replay keeps forgetting
    small all along; more training records buy more target gain."""
    import json

    curves = json.loads((demo_report.parent / "comparison.json").read_text())["curves"]
    steps = {c["name"]: c for c in curves if c["kind"] == "steps"}
    (sweep,) = [c for c in curves if c["kind"] == "data_size"]
    assert set(steps) == {"domain-only", "with-replay"}
    only = steps["domain-only"]
    forgetting = [p["roles"]["forgetting"]["estimate"] for p in only["points"]]
    assert [p["x"] for p in only["points"]] == list(range(50, 401, 50))
    assert forgetting[-1] < forgetting[0] < 0 and only["best"] < 400
    assert all(p["roles"]["forgetting"]["estimate"] > forgetting[-1] / 4 for p in steps["with-replay"]["points"])
    assert [p["x"] for p in sweep["points"]] == [250, 500, 1000, 2000]
    target = [p["roles"]["target"]["estimate"] for p in sweep["points"]]
    assert target[0] < target[-1]


def _close_candidates() -> ComparisonResult:
    """Three candidates whose learning-forgetting points lie close together at the top of the chart,
    and a history in which other names came first."""
    from harness.records import HistoryEntry, SummaryResult

    def role(name, delta, width=0.01):
        return RoleResult(role=name, tasks=[name], n=100, delta=Estimate(estimate=delta, low=delta - width,
                                                                         high=delta + width),
                          se=0.01, p_value=0.5, mde=0.05)

    def task(name, role_name, delta):
        return TaskResult(task=name, role=role_name, metric="acc", n=100, binary=True,
                          base=Estimate(estimate=0.5, low=0.4, high=0.6),
                          candidate=Estimate(estimate=0.5 + delta, low=0.4 + delta, high=0.6 + delta),
                          delta=Estimate(estimate=delta, low=delta - 0.05, high=delta + 0.05),
                          interval="paired bootstrap", test="McNemar", p_value=0.5, p_holm=0.5, sd_item=0.5,
                          mde=0.1)

    results = []
    for k, name in enumerate(["domain-only", "with-replay", "domain-only-long"]):
        gain, forgetting = 0.30 + 0.004 * k, -0.010 - 0.002 * k
        summary = SummaryResult(**role("forgetting", -0.02 - 0.003 * k).model_dump(), name="general average")
        results.append(CandidateResult(
            candidate=name, tasks=[task("capitals", "target", gain), task("facts", "forgetting", forgetting)],
            roles=[role("target", gain), role("forgetting", forgetting)], flips=[], summaries=[summary]))
    m = ModelRecord(label="base", source="/m", fingerprint="f" * 64)
    history = [HistoryEntry(id=7, created_at="2024-01-01T00:00:00", candidates={
                   "retired": {"target": 0.1, "forgetting": -0.2}, "with-replay": {"target": 0.2, "forgetting": 0.0}}),
               HistoryEntry(id=0, created_at="now", candidates={
                   cr.candidate: cr.role_deltas() for cr in results})]
    return ComparisonResult(name="close", created_at="now", harness_version="0", suite="s", confidence=0.95,
                            base=m, candidates=[m.model_copy(update={"label": cr.candidate}) for cr in results],
                            results=results, history=history)


def _svgs(html: str) -> dict[str, list]:
    """The report's charts, parsed, by kind (forest, tradeoff, trend, ...)."""
    import re
    from xml.etree import ElementTree

    charts: dict[str, list] = {}
    for m in re.finditer(r'<svg class="chart (\w+)".*?</svg>', html, re.S):
        charts.setdefault(m.group(1), []).append(ElementTree.fromstring(m.group(0)))
    return charts


def _legend_colors(svg) -> dict[str, str]:
    """name -> colour of the dot drawn just before each name."""
    out, dot = {}, None
    for el in svg:
        tag = el.tag.split("}")[-1]
        if tag == "circle":
            dot = el.get("fill")
        elif tag == "text" and dot is not None and el.get("fill") is None:
            out[el.text] = dot
            dot = None
        else:
            dot = None
    return out


def test_a_candidate_has_one_colour_in_every_chart(tmp_path):
    """Forest plots, the bias-free trade-off chart and the history's trends: domain-only (and each
    other candidate) in the same colour everywhere, names from earlier comparisons in others."""
    charts = _svgs(render_report(_close_candidates(), tmp_path).read_text())
    forest = _legend_colors(charts["forest"][0])
    assert set(forest) == {"domain-only", "with-replay", "domain-only-long"}
    assert len(set(forest.values())) == 3
    for svg in charts["forest"] + charts["trend"]:
        legend = _legend_colors(svg)
        assert {n: c for n, c in legend.items() if n in forest} == forest
    trend = _legend_colors(charts["trend"][0])
    assert trend["retired"] not in forest.values()
    labels = {t.text: t.get("fill") for t in charts["tradeoff"][0].iter("{http://www.w3.org/2000/svg}text")
              if t.get("fill") and t.text in forest}
    assert labels == forest


def test_learning_forgetting_labels_do_not_overlap_and_stay_inside(tmp_path):
    """Close points at the top of the chart: every label (box estimated from its length at 0.6 em a
    character) clear of every other and inside the picture."""
    (svg,) = _svgs(render_report(_close_candidates(), tmp_path).read_text())["tradeoff"]
    _, _, width, height = map(float, svg.get("viewBox").split())
    boxes = []
    for t in svg.iter("{http://www.w3.org/2000/svg}text"):
        if not t.get("fill"):  # axis text; the labels are in their candidate's colour
            continue
        size, x, y = float(t.get("font-size")), float(t.get("x")), float(t.get("y"))
        w = len(t.text) * 0.6 * size
        left = {"end": x - w, "middle": x - w / 2}.get(t.get("text-anchor"), x)
        boxes.append((t.text, left, y - 0.8 * size, left + w, y + 0.25 * size))
    assert len(boxes) == 6  # three candidates, each with its forgetting summary
    for name, x0, y0, x1, y1 in boxes:
        assert 0 <= x0 and x1 <= width and 0 <= y0 and y1 <= height, name
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            apart = a[3] <= b[1] or b[3] <= a[1] or a[4] <= b[2] or b[4] <= a[2]
            assert apart, (a, b)



# --------------------------------------------------------------------------- comparison.json of format 1

ASSETS = Path(__file__).parents[1] / "assets"
# the gates of the config whose comparison tests/assets/comparison-format1.json is (the tiny world,
# written by the harness of format 1, flips and runs trimmed)
FORMAT1_GATES = [{"rule": "improves", "role": "target", "min_delta": 0.05},
                 {"rule": "floor", "task": "demo_triage", "min_score": 0.3},
                 {"rule": "floor", "task": "demo_pronoun_bias", "min_score": -1},
                 {"rule": "floor", "task": "demo_note_bias", "min_score": 0.2},
                 {"rule": "non_inferior", "role": "forgetting", "margin": 0.1},
                 {"rule": "non_inferior", "summary": "facts", "margin": 0.1},
                 {"rule": "non_inferior", "task": "demo_capitals", "margin": 0.1},
                 {"rule": "no_bias_amplification", "role": "bias", "margin": 0.3}]


def _flat(e: dict, estimate: str = "delta") -> dict:
    return {estimate: e["estimate"], "ci_low": e["low"], "ci_high": e["high"]}


def test_a_format1_comparison_renders_with_its_numbers_and_gives_its_verdicts_again(tmp_path):
    """A comparison.json the harness wrote before format 2 (flat delta / ci_low / ci_high) renders
    with `harness report`, every figure as it was stored; the candidate's score intervals read
    from it give the floor verdicts (and every other) the old harness stored beside them."""
    import json
    import shutil

    from click.testing import CliRunner

    from harness.cli import main
    from harness.config import GateSpec
    from harness.gates import evaluate_gates
    from harness.report.words import fmt as _fmt

    old = json.loads((ASSETS / "comparison-format1.json").read_text())
    assert old["version"] == 1 and "ci_low" in old["results"][0]["tasks"][0]
    shutil.copy(ASSETS / "comparison-format1.json", tmp_path / "comparison.json")
    run = CliRunner().invoke(main, ["report", str(tmp_path)])
    assert run.exit_code == 0, run.output
    html = (tmp_path / "index.html").read_text()
    result = load_comparison(tmp_path)  # written again beside the page, in this format
    written = json.loads((tmp_path / "comparison.json").read_text())
    assert result.version == ComparisonResult.VERSION == written["version"]
    for cr_old, cr in zip(old["results"], result.results, strict=True):
        for t_old, t in zip(cr_old["tasks"], cr.tasks, strict=True):
            assert _flat(t.delta.model_dump()) == {k: t_old[k] for k in ("delta", "ci_low", "ci_high")}
            assert (t.base.estimate, t.candidate.estimate) == (t_old["base_score"], t_old["candidate_score"])
            for x_old, x in zip(t_old["extra"], t.extra, strict=True):
                assert _flat(x.delta.model_dump()) == {k: x_old[k] for k in ("delta", "ci_low", "ci_high")}
            cell = (f"[{_fmt(t.delta.low, t.binary, True)}, {_fmt(t.delta.high, t.binary, True)}]",
                    _fmt(t.base.estimate, t.binary), _fmt(t.candidate.estimate, t.binary))
            assert all(c in html for c in cell), (t.task, cell)
        for r_old, r in zip(cr_old["roles"] + cr_old["summaries"], cr.roles + cr.summaries, strict=True):
            assert _flat(r.delta.model_dump()) == {k: r_old[k] for k in ("delta", "ci_low", "ci_high")}
    again = evaluate_gates(result, [GateSpec(**g) for g in FORMAT1_GATES])
    stored = [v.model_dump() for v in result.gates]  # the old harness's verdicts, folded
    assert [v.model_dump() for v in again] == stored
    assert {v["status"] for v in stored} == {"pass", "fail", "underpowered"}
    assert [_flat(v["value"], "estimate") for v in stored] == [
        {k: v[k] for k in ("estimate", "ci_low", "ci_high")} for v in old["gates"]]


def _as_format1(data: dict) -> dict:
    """A comparison.json of this format written back in format 1's flat shape (the schema of
    `git show 36e792b:harness/records.py`)."""
    def scores(d: dict, sd: float | None) -> dict:
        d = {**d, **_flat(d["delta"]), "base_score": d["base"]["estimate"],
             "candidate_score": d["candidate"]["estimate"]}
        del d["base"], d["candidate"]
        return d if sd is None else {**d, "candidate_sd": sd}

    def task(t: dict) -> dict:
        p, n = t["candidate"]["estimate"], t["n"]
        return {**scores(t, (p * (1 - p) * n / (n - 1)) ** 0.5), "extra": [scores(x, None) for x in t["extra"]]}

    def role(r: dict) -> dict:
        return {**{k: v for k, v in r.items() if k != "candidate"}, **_flat(r["delta"])}

    results = [{**cr, "tasks": [task(t) for t in cr["tasks"]], "roles": [role(r) for r in cr["roles"]],
                "summaries": [role(s) for s in cr["summaries"]], "groups": [role(g) for g in cr["groups"]]}
               for cr in data["results"]]
    gates = [{**{k: v for k, v in g.items() if k != "value"}, **_flat(g["value"], "estimate")} for g in data["gates"]]
    return {**data, "version": 1, "results": results, "gates": gates}


def test_a_format1_comparison_reads_as_the_comparison_it_was(tmp_path):
    """Flattened to format 1 and read back: the same comparison (group entries, secondary metrics,
    summaries and verdicts included), a group's candidate score pooled from its tasks again."""
    import json

    from harness.records import GateVerdict, GroupResult, MetricDelta, SummaryResult
    from harness.stats import mean_interval

    def task(name, role, n, base, cand, delta):
        return TaskResult(task=name, role=role, metric="acc", n=n, binary=True,
                          base=mean_interval(base, 0, n, binary=True), candidate=mean_interval(cand, 0, n, binary=True),
                          delta=Estimate(estimate=delta, low=delta - 0.05, high=delta + 0.05), interval="Newcombe",
                          test="McNemar", p_value=0.2, p_holm=0.3, sd_item=0.4, mde=0.1, to_wrong=2, to_right=5,
                          extra=[MetricDelta(metric="acc_norm", binary=True, base=mean_interval(0.5, 0, n, binary=True),
                                             candidate=mean_interval(0.6, 0, n, binary=True),
                                             delta=Estimate(estimate=0.1, low=0.0, high=0.2))])

    delta = Estimate(estimate=-0.025, low=-0.04, high=-0.01)
    role = RoleResult(role="forgetting", tasks=["mmlu_law", "mmlu_anatomy"], n=400, delta=delta, se=0.01,
                      p_value=0.01, mde=0.02)
    group = GroupResult(name="mmlu", description="lm-eval group of 2 tasks, items pooled",
                        candidate=mean_interval(0.75, 0, 400, binary=True), **role.model_dump())
    base = _result()
    cr = base.results[0].model_copy(update={
        "tasks": [task("mmlu_law", "forgetting", 300, 0.75, 0.7, -0.05), task("mmlu_anatomy", "forgetting", 100, 0.9,
                                                                              0.9, 0.0)],
        "roles": [role], "groups": [group], "summaries": [SummaryResult(name="all", **role.model_dump())]})
    verdict = GateVerdict(candidate="cand<i>", gate="mmlu::floor", rule="floor", target="mmlu", status="pass",
                          value=group.candidate, threshold=0.7, test="Wilson interval of the candidate's score", n=400,
                          message="m")
    result = base.model_copy(update={"results": [cr], "gates": [verdict]})
    old = _as_format1(json.loads(result.model_dump_json()))
    assert "ci_low" in old["results"][0]["groups"][0] and "candidate" not in old["results"][0]["groups"][0]
    (tmp_path / "comparison.json").write_text(json.dumps(old))
    read = load_comparison(tmp_path)
    pooled = read.results[0].groups[0].candidate  # 0.7 on 300 items and 0.9 on 100: 0.75 on 400
    assert pooled.model_dump() == pytest.approx(group.candidate.model_dump(), abs=1e-12)
    assert read.model_copy(update={"results": [read.results[0].model_copy(update={"groups": [group]})]}) == result


def test_a_format2_comparison_reads_with_its_models_prompt_formats(tmp_path):
    """comparison.json of format 2 kept one `system_prompt` per model's prompt format: read now, it is
    the one system prompt of the list the trainer manifest keeps too, and the page says the same."""
    from harness.records import PromptFormatRecord

    fmt = PromptFormatRecord.of("/t/chat.jinja", "a" * 64, ["Be brief."])
    result = _result()
    result = result.model_copy(update={"base": result.base.model_copy(update={
        "prompt_format": fmt, "prompt_examples": {"t": "Be brief.\nClaim: ..."}})})
    data = json.loads(result.model_dump_json())
    pf = data["base"]["prompt_format"]
    data["base"]["prompt_format"] = {**{k: v for k, v in pf.items() if k != "system_prompts"},
                                     "system_prompt": "Be brief."}
    for m in data["candidates"]:  # plain text, as format 2 wrote it
        m["prompt_format"] = {"description": "plain text", "template_source": "none", "template_sha256": None,
                              "system_prompt": None, "fewshot_as_multiturn": False}
    (tmp_path / "comparison.json").write_text(json.dumps({**data, "version": 2}))
    read = load_comparison(tmp_path)
    assert read == result and read.base.prompt_format.system_prompts == ["Be brief."]
    assert all(m.prompt_format == PromptFormatRecord() for m in read.candidates)  # as a plain model is recorded now
    assert "chat template (chat.jinja, sha256 aaaaaaaaaaaa), system prompt &#39;Be brief.&#39;" in render_html(read)


def test_a_rerun_reuses_the_comparison_until_something_it_read_changes(demo_report, demo_config, tmp_path):
    """A re-run whose inputs are all unchanged reuses the stored comparison (the figures equal the
    computed ones); a changed byte in a file the comparison read (here the data-size sweep's record)
    computes it again. Every file the computation opened is one whose change it would notice: noted as
    read, a stored run's records (under its noted manifest), or a file of a fingerprinted model folder
    or task (keys of the runs)."""
    import sys

    from harness.pipeline import load, run_comparison
    from harness.util.reads import recording_reads

    (sweep,) = yaml.safe_load(demo_config.read_text())["sweeps"]
    copy = tmp_path / "sweep.json"
    copy.write_text(Path(sweep).read_text())
    config = tmp_path / "demo.yaml"
    config.write_text(demo_config.read_text().replace(sweep, str(copy)))
    opened: list[str] = []

    def hook(event, args):
        if event == "open" and watching and isinstance(args[0], str):
            opened.append(args[0])

    watching = False
    sys.addaudithook(hook)  # for the rest of the process: it records only while `watching`

    def compare() -> tuple[dict, list[str]]:
        logs: list[str] = []
        result = run_comparison(load(config), log=logs.append, record=False)
        return result.model_dump(exclude={"created_at", "timings_s"}), logs

    watching = True
    with recording_reads() as noted:
        first, logs = compare()
    watching = False
    assert not any("reused" in line for line in logs), logs
    again, logs = compare()
    assert any("nothing changed since the comparison of" in line for line in logs), logs
    assert again == first
    copy.write_text(copy.read_text() + "\n")  # the same sweep, another file
    third, logs = compare()
    assert not any("reused" in line for line in logs), logs
    assert third == first

    def covered(path: Path) -> bool:
        folder = path.parent
        return (str(path) in noted or path.suffix in (".py", ".pyc", ".so", ".lock") or path.is_dir()
                or str(path).startswith((sys.prefix, sys.base_prefix, "/dev/", "/proc/"))
                or (path.suffix == ".parquet" and str(path.with_suffix(".json")) in noted)  # a stored run
                or (folder / "config.json").is_file() or (folder / "adapter_config.json").is_file()  # a model
                or folder.name == "checks" or path.is_relative_to(REPO / "suites")  # a task (its hash)
                or path == config or folder.name == "comparisons")  # the config (as typed), the reused

    unnoticed = sorted({p for p in map(Path, map(os.path.abspath, opened)) if p.exists() and not covered(p)})
    assert not unnoticed, unnoticed
