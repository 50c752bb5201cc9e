"""The Markdown summary for pull requests and CI job summaries, read back as GitHub would show it: rendered
by a CommonMark renderer with GitHub's tables, under GitHub's size limit for a comment."""

from __future__ import annotations

import re
import shutil

from markdown_it import MarkdownIt

from harness.comparison import ComparisonResult
from harness.records import Estimate, GateVerdict
from harness.report.markdown import GITHUB_COMMENT_LIMIT, render_markdown
from harness.report.words import binary_roles, interval

URL = "https://github.com/org/repo/actions/runs/1"


def _html(text: str) -> str:
    """As GitHub renders a comment: CommonMark with tables (its other extensions add no markup here)."""
    return MarkdownIt("commonmark", {"html": True}).enable("table").render(text)


def _tables(html: str) -> list[list[list[str]]]:
    """Each table's body rows, each row's cells as text."""
    return [[[re.sub(r"<[^>]+>", "", c) for c in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
             for row in re.findall(r"<tr>(.*?)</tr>", body, re.S)]
            for body in re.findall(r"<tbody>(.*?)</tbody>", html, re.S)]


def test_the_demo_summary_fits_a_comment_and_says_the_verdicts_first(demo_report, tmp_path, monkeypatch):
    """`harness report --markdown` on the demo comparison: the file, and the job summary appended to."""
    from click.testing import CliRunner

    from harness.cli import main
    from harness.report.render import load_comparison

    shutil.copy(demo_report.parent / "comparison.json", tmp_path / "comparison.json")
    job_summary = tmp_path / "step-summary.md"
    job_summary.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(job_summary))
    run = CliRunner().invoke(main, ["report", str(tmp_path), "--markdown", str(tmp_path / "pr.md"),
                                    "--report-url", URL])
    assert run.exit_code == 0, run.output
    text = (tmp_path / "pr.md").read_text()
    assert job_summary.read_text() == "earlier step\n" + text
    print(f"demo summary: {len(text):,} characters, {len(text.encode()):,} bytes")
    assert len(text) < GITHUB_COMMENT_LIMIT / 4

    result = load_comparison(tmp_path)
    html = _html(text)
    headings = re.findall(r"<h3>(.*?)</h3>", html)
    assert headings[0] == "Gates" and "Against the base" in headings and "Judged answers" in headings
    gates, roles, judged = _tables(html)
    assert len(gates) == len(result.gates) and all(len(row) == 5 for row in gates)
    for row, v in zip(gates, result.gates, strict=True):
        assert row[:2] == [v.candidate, v.gate] and v.status in row[2]
    fine_tunes = [cr for cr in result.results if cr.kind == "fine-tune"]
    # every candidate's target gain, forgetting and bias change with its interval, as the report words it
    dom = next(row for row in roles if row[0] == "domain-only")
    target = next(cr for cr in fine_tunes if cr.candidate == "domain-only").role("target").delta
    assert dom[1] == f"{interval(target, binary_roles(result)['target'])} better"
    assert len(dom) == 4 and "worse" in dom[2]  # it forgets (README, Gates)
    # a fine-tune of another base against that base
    assert {row[0] for row in roles} >= {cr.candidate + ("" if cr.reference == "base" else f" vs {cr.reference}")
                                         for cr in fine_tunes}
    # the tests' judge (SmolLM2 alone) fails its validation: said beside every judged win rate
    assert judged and all("validation pairs" in row[4] for row in judged)
    assert f'<a href="{URL}">' in html
    for cr in fine_tunes:  # the verdict list says blocked or ready, as the report's banner
        assert re.search(rf"<li><strong>{re.escape(cr.candidate)}</strong>: . (blocked|ready)</li>", html)


HOSTILE = "a|b <script>alert(1)</script> `code` [x](javascript:alert(2)) **bold** @octocat\n| new row"


def test_untrusted_text_stays_text_in_its_cell(tmp_path):
    from test_report import _result

    r = _result()
    cr = r.results[0].model_copy(update={"candidate": HOSTILE, "flags": [HOSTILE]})
    verdict = GateVerdict(candidate=HOSTILE, gate=f"{HOSTILE}::improves", rule="improves", target="target",
                          status="fail", value=Estimate(estimate=0.1, low=-0.1, high=0.3), threshold=0.0,
                          test="t", n=10, message=HOSTILE)
    r = ComparisonResult.model_validate({**r.model_dump(), "results": [cr.model_dump()], "name": HOSTILE,
                                         "gates": [verdict.model_dump()]})
    text = render_markdown(r, "reports/a b/index.html")
    html = _html(text)
    assert "<script" not in html and "<code>code" not in html and "<strong>bold" not in html
    assert re.findall(r"<a href=\"([^\"]*)\"", html) == ["reports/a%20b/index.html"]  # the report's link alone
    gates, roles = _tables(html)
    assert gates[0][0] == HOSTILE.replace("\n", " ").replace("<", "&lt;").replace(">", "&gt;") \
        .replace("@", "@\u200b")  # one cell, the text as it was (a zero-width space keeps @octocat unmentioned)
    assert len(gates) == 1 and len(gates[0]) == 5 and len(roles) == 1
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html  # shown, never run
