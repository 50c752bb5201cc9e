"""The demo report in a real browser (Debian's headless Chromium, driven by Playwright): no
console errors, no network, every chart drawn, and the flipped-examples filters work."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from conftest import REPO

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = REPO / "test-artifacts"


@pytest.fixture(scope="module")
def page(demo_report):
    if not Path(CHROMIUM).exists():
        pytest.skip("no Chromium: `make test` installs Debian's chromium (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"])
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.problems, page.requests = [], []
        page.on("console", lambda m: page.problems.append(m.text) if m.type in ("error", "warning") else None)
        page.on("pageerror", lambda e: page.problems.append(str(e)))
        page.on("request", lambda r: page.requests.append(r.url))
        page.goto(demo_report.as_uri())
        yield page
        browser.close()


def _visible_rows(page):
    return page.locator("#flip-table tbody tr:visible")


def test_report_loads_cleanly_and_offline(page, demo_report):
    assert page.problems == []
    assert [u for u in page.requests if not u.startswith("file:")] == []  # one self-contained file
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "demo-report.png"), full_page=True)
    assert (ARTIFACTS / "demo-report.png").stat().st_size > 50_000


def test_every_chart_and_section_is_there(page):
    titles = page.locator("svg.chart > title").evaluate_all("els => els.map(e => e.textContent)")
    assert "learning versus forgetting" in titles
    assert "bias by category, base and candidates" in titles
    assert {f"forest plot: {r} deltas by task" for r in ("target", "forgetting", "bias")} <= set(titles)
    assert sum(t.startswith("sensitivity of net value") for t in titles) == 4  # a fine-tune of each base
    assert "quality against cost: the frontier" in titles
    assert {"learning and forgetting along training: domain-only", "learning and forgetting along training: "
            "with-replay", "learning and forgetting against data size: domain-only"} <= set(titles)
    for chart in page.locator("svg.chart").all():
        box = chart.bounding_box()
        assert box["width"] > 200 and box["height"] > 80
    for section in ("#verdicts", "#training", "#roi", "#frontier", "#frontier-table", "#flips", "#run"):
        assert page.locator(section).is_visible(), section
    assert page.locator("#verdicts .verdict").count() == 4


def test_flip_filters_change_the_visible_rows(page):
    total = _visible_rows(page).count()
    assert total > 50
    page.select_option("#f-direction", "to_wrong")
    regressions = _visible_rows(page).count()
    assert 0 < regressions < total
    assert set(_visible_rows(page).evaluate_all("rows => rows.map(r => r.dataset.direction)")) == {"to_wrong"}
    page.select_option("#f-candidate", "domain-only")
    page.select_option("#f-task", "demo_capitals")
    narrowed = _visible_rows(page).count()
    assert 0 < narrowed < regressions
    assert page.inner_text("#f-count") == f"{narrowed} of {total} shown"
    page.fill("#f-search", "Norway")
    assert _visible_rows(page).count() == 1 and "Oslo" in _visible_rows(page).first.inner_text()
    page.fill("#f-search", "")
    page.select_option("#f-candidate", "")
    page.select_option("#f-task", "")
    page.select_option("#f-direction", "")
    assert _visible_rows(page).count() == total


def test_hostile_model_output_is_shown_as_text_in_the_browser(page, tmp_path):
    from test_report import HOSTILE, _result

    from harness.report.render import render_report

    path = render_report(_result(), tmp_path)
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(path.as_uri())
    cells = page.locator("#flip-table td.text").all_inner_texts()
    assert HOSTILE in cells and dialogs == [] and page.locator("#flip-table img").count() == 0


def test_at_1400px_the_report_reads_as_a_page(page, demo_report):
    """A contents bar that stays on top and jumps to each section, charts two to a row across the whole
    width, and tables (the judged answers' thirteen columns among them) that fit the page."""
    page.set_viewport_size({"width": 1400, "height": 900})
    page.goto(demo_report.as_uri())
    nav = page.locator("nav.contents")
    links = dict(zip(nav.locator("a").all_inner_texts(), nav.locator("a").evaluate_all(
        "as => as.map(a => a.getAttribute('href'))"), strict=True))
    assert {"Verdicts", "At a glance", "Per task", "Training", "Gates", "Judged answers", "ROI"} <= set(links)
    for text, href in links.items():
        page.click(f"nav.contents a[href='{href}']")
        top = page.locator(href).evaluate("e => e.getBoundingClientRect().top")
        assert nav.bounding_box()["y"] == 0, text  # the bar stays on top
        assert nav.bounding_box()["height"] <= top < nav.bounding_box()["height"] + 40 or \
            page.evaluate("window.scrollY + window.innerHeight >= document.body.scrollHeight - 1"), text
    width = page.evaluate("document.querySelector('h1').getBoundingClientRect().width")  # the page's text width
    assert width > 1250
    for row in page.locator(".charts").all():
        boxes = [f.bounding_box() for f in row.locator("figure").all()]
        assert all(b["width"] > 0.45 * width for b in boxes)
        if len(boxes) > 1:  # two to a row, side by side across the page
            assert boxes[0]["y"] == boxes[1]["y"] and boxes[0]["width"] + boxes[1]["width"] > 0.95 * width
    page.evaluate("document.querySelectorAll('details').forEach(d => d.open = true)")
    for table in page.locator("table").all():
        fits = table.evaluate("t => { const c = t.closest('.scroll') || document.body; "
                              "return t.getBoundingClientRect().right <= c.getBoundingClientRect().right + 1 "
                              "&& c.scrollWidth <= c.clientWidth + 1 }")
        assert fits, table.locator("thead").inner_text()[:80]
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "demo-report-1400.png"), full_page=False)
