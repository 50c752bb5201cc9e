"""The HTML report: everything untrusted is shown as text, and it renders from a stored result."""

from __future__ import annotations

from harness.records import CandidateResult, ComparisonResult, FlipRecord, ModelRecord, RoleResult, TaskResult
from harness.report.render import load_comparison, render_report

HOSTILE = "<script>alert(1)</script></td><img src=x onerror=alert(2)>"


def _result() -> ComparisonResult:
    task = TaskResult(task="t<b>", role="target", metric="acc", n=10, binary=True, base_score=0.4,
                      candidate_score=0.6, delta=0.2, ci_low=0.05, ci_high=0.35, interval="<i>", test="<t>",
                      p_value=0.3, p_holm=0.3, sd_item=0.5, mde=0.4, candidate_sd=0.5, to_wrong=1, to_right=3)
    flip = FlipRecord(task="t<b>", doc_id=3, direction="to_wrong", prompt=HOSTILE, target="</td>",
                      base_response="ok", candidate_response=HOSTILE)
    cr = CandidateResult(candidate="cand<i>", tasks=[task],
                         roles=[RoleResult(role="target", tasks=["t<b>"], n=10, delta=0.2, ci_low=0.05,
                                           ci_high=0.35, se=0.1, p_value=0.04, mde=0.28)],
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
    # 8 comparison charts, the learning-forgetting curves of the two candidates trained with
    # checkpoints scored, and the data-size sweep named under `sweeps:` (plus the history's trend
    # charts when the store holds earlier comparisons of the demo config)
    charts = html.count('<svg class="chart') - html.count('<svg class="chart trend')
    assert charts == 11 and "Is it worth it?" in html
    for title in ("along training: domain-only", "along training: with-replay", "against data size: domain-only"):
        assert f'aria-label="learning and forgetting {title}"' in html, title


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
