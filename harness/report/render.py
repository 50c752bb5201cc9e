"""Render a comparison as one self-contained HTML file, with comparison.json beside it.

Model outputs, prompts and names are untrusted text: the Jinja2 environment autoescapes everything.
The only markup let through unescaped is the charts' inline SVG (harness/report/charts.py returns it as
`Markup`), which escapes every text it draws (names, titles, labels) with markupsafe.escape as it
builds the SVG.
"""

from __future__ import annotations

from pathlib import Path

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from harness.comparison import ComparisonResult
from harness.config import ROLE_FACTS, RoiSpec
from harness.errors import HarnessError
from harness.gates import verdict_blocks
from harness.persisted import read_record, write_record
from harness.records import LENGTH_GAP, MAX_FLIPS_PER_TASK, RoiResult
from harness.report import charts
from harness.report.words import binary_roles, fmt, verdict
from harness.util.files import atomic_write


def _entry_count(cr, rr) -> str:
    """'7 benchmarks (63 tasks)' when a group entry (mmlu) expands into several lm-eval tasks."""
    grouped = [g for g in cr.groups if g.role == rr.role]
    entries = len(rr.tasks) - sum(len(g.tasks) - 1 for g in grouped)
    return f"{entries} entries ({len(rr.tasks)} tasks)" if grouped else f"{len(rr.tasks)} task(s)"


def _env() -> Environment:
    env = Environment(loader=PackageLoader("harness.report", "templates"),
                      autoescape=select_autoescape(["html", "j2"], default=True),
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.globals.update(verdict=verdict, fmt=fmt, role_facts=ROLE_FACTS, entry_count=_entry_count,
                       training_cost=_training_cost, length_gap=LENGTH_GAP)
    env.tests["blocking"] = verdict_blocks  # `gates | select("blocking", r.underpowered)`: as harness gate reads them
    return env


def _training_cost(roi: RoiResult, a) -> float | None:
    """What an alternative's fine-tuning cost, as the ROI section prices it."""
    from harness.roi import training_cost  # pandas: not imported where the report has no ROI

    return training_cost(RoiSpec.model_validate(roi.inputs), a)


def _payback(p) -> str:
    """Payback months as words: the estimate, and the range when it differs."""
    if p is None:
        return "–"

    def one(m: float | None) -> str:
        if m is None:
            return "never"
        if m >= 1:
            return f"{m:.1f} months"
        days = m * 30.44
        return f"{days:.1f} days" if days >= 1 else ("< 1 hour" if days * 24 < 1 else f"{days * 24:.1f} hours")

    est, best, worst = one(p.estimate), one(p.best), one(p.worst)
    return est if best == est == worst else f"{est} ({best} to {worst})"


def render_html(result: ComparisonResult) -> str:
    binary_role = binary_roles(result)
    roles = [r for r in ROLE_FACTS if r in binary_role]
    colors = charts.candidate_colors(result)  # one colour per candidate in every chart
    chart_set = {
        "tradeoff": charts.tradeoff(result, colors),
        "bias": charts.bias(result, colors),
        "forest": [(role, c) for role in roles if (c := charts.forest(result, role, colors)) is not None],
        "tornado": [charts.tornado(result.roi, i, colors) for i in range(len(result.roi.sensitivity))]
        if result.roi else [],
        "frontier": charts.frontier(result.roi, colors) if result.roi else None,
        "curves": [(c, charts.curve(c)) for c in result.curves],
        "trend": [(role, c) for role in roles
                  if (c := charts.trend(result.history, role, binary_role[role], colors))],
    }
    flip_tasks = sorted({f.task for cr in result.results for f in cr.flips})
    directions = sorted({f.direction for cr in result.results for f in cr.flips})
    devices = sorted({run.device for run in result.runs if run.device})
    # per task, each way it was scored and the models scored so (the report's methods)
    methods: dict[str, dict[str, list[str]]] = {}
    for m in [result.base, *result.candidates]:
        for task, how in m.scoring.items():
            methods.setdefault(task, {}).setdefault(how or "not recorded (stored before this was kept)", []).append(
                m.label)
    return _env().get_template("report.html.j2").render(
        r=result, binary_role=binary_role, charts=chart_set, flip_tasks=flip_tasks, directions=directions,
        methods=methods,
        devices=devices, on_cpu=any(d.startswith("cpu") for d in devices),
        max_flips=MAX_FLIPS_PER_TASK, payback=_payback)


def render_report(result: ComparisonResult, out_dir: str | Path) -> Path:
    """Write index.html and comparison.json to `out_dir`; returns the HTML path."""
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise HarnessError(f"{out}: cannot create the report folder ({e.strerror})") from None
    html = render_html(result)
    write_record(out / "comparison.json", result)
    atomic_write(out / "index.html", lambda p: p.write_text(html, encoding="utf-8"))
    return out / "index.html"


def load_comparison(path: str | Path) -> ComparisonResult:
    """Read a comparison.json (or the folder holding one), of any format this harness reads."""
    p = Path(path)
    return read_record(p / "comparison.json" if p.is_dir() else p, ComparisonResult)


def render_data_check(result, path: str | Path) -> Path:
    """Write a data check (harness.persisted.DataCheckResult) as one self-contained HTML page."""
    out = Path(path)
    html = _env().get_template("data_check.html.j2").render(d=result)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out, lambda p: p.write_text(html, encoding="utf-8"))
    return out
