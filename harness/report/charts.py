"""Inline SVG charts for the report, written by hand: no JavaScript, no fonts to fetch, crisp in
print. Every label is escaped (names come from users' configs and data).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from markupsafe import Markup, escape

from harness.comparison import ComparisonResult
from harness.config import ROLE_FACTS
from harness.records import BASE, CurveRecord, HistoryEntry, RoiResult

PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2"]
GREY = "#7f7f7f"
FONT_PX = 11
FONT = f'font-family="system-ui, sans-serif" font-size="{FONT_PX}"'
# a generous estimate of a label's width per character (system-ui averages about 0.55 em)
CHAR_W = 0.6 * FONT_PX


def color(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def candidate_colors(result: ComparisonResult) -> dict[str, str]:
    """One colour per candidate for every chart of a report: this comparison's candidates in their
    order, then the names only earlier comparisons of the history hold."""
    names = [cr.candidate for cr in result.results] + [n for h in result.history for n in h.candidates]
    return {name: color(i) for i, name in enumerate(dict.fromkeys(names))}


def _nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    span = hi - lo or 1.0
    step = 10 ** math.floor(math.log10(span / n))
    for m in (1, 2, 2.5, 5, 10):
        if span / (step * m) <= n:
            step *= m
            break
    first = math.ceil(lo / step) * step
    return [round(first + i * step, 10) for i in range(int((hi - first) / step + 1e-9) + 1)]


@dataclass
class _Axis:
    lo: float
    hi: float
    x0: float
    x1: float

    @classmethod
    def around(cls, values: list[float], x0: float, x1: float, include_zero: bool = True) -> _Axis:
        vals = [v for v in values if math.isfinite(v)] + ([0.0] if include_zero else [])
        lo, hi = min(vals), max(vals)
        pad = (hi - lo) * 0.08 or 1.0
        return cls(lo - pad, hi + pad, x0, x1)

    def __call__(self, v: float) -> float:
        return self.x0 + (v - self.lo) / (self.hi - self.lo) * (self.x1 - self.x0)


def _fmt(v: float, pct: bool) -> str:
    return f"{v * 100:+.0f}" if pct else (f"{v:+.2g}" if abs(v) < 10 else f"{v:+,.0f}")


def _x_axis(ax: _Axis, y: float, top: float, pct: bool, label: str) -> list[str]:
    out = [f'<line x1="{ax.x0:.1f}" y1="{y:.1f}" x2="{ax.x1:.1f}" y2="{y:.1f}" stroke="#444"/>']
    for t in _nice_ticks(ax.lo, ax.hi):
        x = ax(t)
        out.append(f'<line x1="{x:.1f}" y1="{top:.1f}" x2="{x:.1f}" y2="{y:.1f}" stroke="#e3e6eb"/>')
        out.append(f'<text x="{x:.1f}" y="{y + 14:.1f}" text-anchor="middle" {FONT}>{_fmt(t, pct)}</text>')
    if ax.lo < 0 < ax.hi:
        out.append(f'<line x1="{ax(0):.1f}" y1="{top:.1f}" x2="{ax(0):.1f}" y2="{y:.1f}" stroke="#444" '
                   'stroke-dasharray="3,3"/>')
    out.append(f'<text x="{(ax.x0 + ax.x1) / 2:.1f}" y="{y + 30:.1f}" text-anchor="middle" {FONT}>'
               f'{escape(label)}</text>')
    return out


def _svg(width: float, height: float, body: list[str], title: str, cls: str) -> Markup:
    return Markup(f'<svg class="chart {cls}" role="img" aria-label="{escape(title)}" width="{width:.0f}" '
                  f'height="{height:.0f}" viewBox="0 0 {width:.0f} {height:.0f}" xmlns="http://www.w3.org/2000/svg">'
                  f'<title>{escape(title)}</title>' + "".join(body) + "</svg>")


def _interval(x_lo: float, x_hi: float, x: float, y: float, c: str, r: float = 3.5, hollow: bool = False) -> str:
    fill = f'fill="white" stroke="{c}" stroke-width="1.5"' if hollow else f'fill="{c}"'
    return (f'<line x1="{x_lo:.1f}" y1="{y:.1f}" x2="{x_hi:.1f}" y2="{y:.1f}" stroke="{c}" stroke-width="2"/>'
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{r}" {fill}/>')


def _legend(names: list[str], colors: dict[str, str], x: float, y: float) -> list[str]:
    out = []
    for i, name in enumerate(names):
        out.append(f'<circle cx="{x:.1f}" cy="{y + i * 15:.1f}" r="4" fill="{colors[name]}"/>'
                   f'<text x="{x + 9:.1f}" y="{y + i * 15 + 4:.1f}" {FONT}>{escape(name)}</text>')
    return out


Box = tuple[float, float, float, float]  # left, top, right, bottom


def _overlap(a: Box, b: Box) -> float:
    return max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))


def place_labels(labels: list[tuple[float, float, str, bool]], area: Box, points: list[Box] = (),
                 lines: list[Box] = ()) -> list[tuple[float, float]]:
    """Where to write each label (left x, baseline y) beside its point: `labels` are (point x,
    point y, text, prefer the left side). Greedy, in order: of the positions around the point (then
    further out, above and below), all kept inside `area`, the nearest one whose box overlaps no
    label placed before and no point; crossing an interval's line (`lines`) is tolerated where
    keeping clear of them would take the label far from its point. Where no position is free of
    labels and points, the least overlapping one."""
    ascent, descent, gap = 0.8 * FONT_PX, 0.25 * FONT_PX, 8
    placed: list[Box] = []
    out = []
    for px, py, text, left_first in labels:
        w = len(text) * CHAR_W
        sides = [px - gap - w, px + gap] if left_first else [px + gap, px - gap - w]
        above, below, level = py - gap, py + gap + ascent, py + (ascent - descent) / 2  # baselines
        rows = [level, above, below] if left_first else [above, below, level]
        rows += [y for k in (1, 2, 3) for y in (above - k * (ascent + descent + 2), below + k * (ascent + descent + 2))]
        best = None
        for rank, (row, side) in enumerate((r, x) for r in rows for x in [*sides, px - w / 2]):
            x = min(max(side, area[0]), area[2] - w)  # clamped into the plot area
            y = min(max(row, area[1] + ascent), area[3] - descent)
            box = (x, y - ascent, x + w, y + descent)
            cost = (1000 * sum(_overlap(box, b) for b in [*placed, *points])
                    + sum(_overlap(box, b) for b in lines) + 2 * rank)
            if best is None or cost < best[0]:
                best = (cost, x, y, box)
        placed.append(best[3])
        out.append((best[1], best[2]))
    return out


def paired_with_own_base(result: ComparisonResult) -> list:
    """The results of candidates and prompting arms, each against its own base (not the other bases
    against the first)."""
    return [cr for cr in result.results if cr.kind != "base"]


def forest(result: ComparisonResult, role: str, colors: dict[str, str] | None = None) -> Markup | None:
    """Per-task deltas with intervals for one role, every candidate (against its own base) in its colour."""
    results = paired_with_own_base(result)
    tasks = [t.task for t in results[0].tasks if t.role == role] if results else []
    if not tasks:
        return None
    by = {(cr.candidate, t.task): t for cr in results for t in cr.tasks}
    tasks = [t for t in tasks if all((cr.candidate, t) in by for cr in results)]  # none refused
    if not tasks:
        return None
    binary = all(by[(cr.candidate, t)].binary for cr in results for t in tasks)
    # a group entry (mmlu: 57 tasks) is one row, its items pooled; the table keeps every task
    row_of = {leaf: f"{g.name} ({len(g.tasks)} tasks)" for g in results[0].groups for leaf in g.tasks}
    for cr in results:
        for g in cr.groups:
            by[(cr.candidate, f"{g.name} ({len(g.tasks)} tasks)")] = g
    tasks = list(dict.fromkeys(row_of.get(t, t) for t in tasks))
    for cr in results:  # the suite's summaries of this role: one more row, labelled "mean: name"
        for sm in cr.summaries:
            if sm.role == role:
                by[(cr.candidate, f"mean: {sm.name}")] = sm
    tasks += [f"mean: {sm.name}" for sm in results[0].summaries if sm.role == role]
    cands = [cr.candidate for cr in results]
    colors = colors or candidate_colors(result)
    row_h, label_w, width = 14 * len(cands) + 10, 150, 640
    height = 20 + row_h * len(tasks) + 40
    ax = _Axis.around([v for c in cands for t in tasks for v in (by[(c, t)].delta.low, by[(c, t)].delta.high)],
                      label_w, width - 140)
    unit = "percentage points" if binary else "metric units"
    body = _x_axis(ax, height - 40, 10, binary, f"candidate − base ({unit})")
    for i, task in enumerate(tasks):
        y0 = 16 + i * row_h
        body.append(f'<text x="4" y="{y0 + row_h / 2:.1f}" {FONT}>{escape(task)}</text>')
        for j, c in enumerate(cands):
            d = by[(c, task)].delta
            body.append(_interval(ax(d.low), ax(d.high), ax(d.estimate), y0 + 6 + j * 14, colors[c],
                                  hollow=task.startswith("mean: ")))
    body += _legend(cands, colors, width - 125, 20)
    return _svg(width, height, body, f"forest plot: {role} deltas by task", "forest")


def tradeoff(result: ComparisonResult, colors: dict[str, str] | None = None) -> Markup | None:
    """Learning against forgetting: target gain (x) and forgetting delta (y) per candidate; a
    prompting arm is a diamond (the same gain by prompting alone would sit on it). Each against its own base."""
    results = paired_with_own_base(result)
    pts = []
    for i, cr in enumerate(results):
        t, f = cr.role("target"), cr.role("forgetting")
        if t and f:
            pts.append((i, cr.candidate, t.delta, f.delta))
    if not pts:
        return None
    colors = colors or candidate_colors(result)
    width, height, m = 520, 380, 60
    # the forgetting summaries (e.g. the Biderman et al. average) as hollow points beside the role's
    sums = [(i, t, sm.name, sm.delta) for i, _, t, _ in pts for sm in results[i].summaries
            if sm.role == "forgetting"]
    ax = _Axis.around([v for _, _, t, _ in pts for v in (t.low, t.high)], m, width - 20)
    ay = _Axis.around([v for _, _, _, f in pts for v in (f.low, f.high)]
                      + [v for _, _, _, sm in sums for v in (sm.low, sm.high)], height - m, 20)
    body = _x_axis(ax, height - m, 20, True, "target gain (percentage points) →") + _y_grid(ay, m, width - 20, True)
    body.append(f'<text x="14" y="{height / 2:.1f}" transform="rotate(-90 14 {height / 2:.1f})" text-anchor="middle" '
                f'{FONT}>forgetting: general knowledge, candidate − base (pp) ↑ better</text>')
    # every label beside its point, none over another or over a point, all inside the plot
    marks = [(ax(t.estimate), ay(f.estimate), name, colors[name], False) for _, name, t, f in pts]
    marks += [(ax(t.estimate), ay(sm.estimate), sm_name, colors[results[i].candidate], True)
              for i, t, sm_name, sm in sums]
    dots = [(x - 6, y - 6, x + 6, y + 6) for x, y, *_ in marks]
    lines = [(ax(t.low), ay(f.estimate) - 1, ax(t.high), ay(f.estimate) + 1) for _, _, t, f in pts]
    lines += [(ax(t.estimate) - 1, ay(f.high), ax(t.estimate) + 1, ay(f.low)) for _, _, t, f in pts]
    lines += [(ax(t.estimate) - 1, ay(sm.high), ax(t.estimate) + 1, ay(sm.low)) for _, t, _, sm in sums]
    where = place_labels([(x, y, text, left) for x, y, text, _, left in marks], (m, 20, width - 20, height - m),
                         dots, lines)
    for i, name, t, f in pts:
        c, x, y = colors[name], ax(t.estimate), ay(f.estimate)
        mark = (f'<path d="M{x:.1f},{y - 6:.1f} L{x + 6:.1f},{y:.1f} L{x:.1f},{y + 6:.1f} L{x - 6:.1f},{y:.1f} Z" '
                f'fill="{c}"><title>{escape(name)}: prompting arm</title></path>'
                if results[i].kind == "prompting" else f'<circle cx="{x:.1f}" cy="{y:.1f}" r="5" fill="{c}"/>')
        body.append(f'<line x1="{ax(t.low):.1f}" y1="{y:.1f}" x2="{ax(t.high):.1f}" y2="{y:.1f}" stroke="{c}"/>'
                    f'<line x1="{x:.1f}" y1="{ay(f.low):.1f}" x2="{x:.1f}" y2="{ay(f.high):.1f}" stroke="{c}"/>' + mark)
    for i, t, sm_name, sm in sums:
        c, x, y = colors[results[i].candidate], ax(t.estimate), ay(sm.estimate)
        body.append(f'<line x1="{x:.1f}" y1="{ay(sm.low):.1f}" x2="{x:.1f}" y2="{ay(sm.high):.1f}" stroke="{c}" '
                    f'stroke-dasharray="2,2"/><circle cx="{x:.1f}" cy="{y:.1f}" r="5" fill="white" stroke="{c}" '
                    f'stroke-width="1.5"><title>{escape(results[i].candidate)}: {escape(sm_name)}</title>'
                    '</circle>')
    for (_, _, text, c, _), (x, y) in zip(marks, where, strict=True):
        body.append(f'<text class="label" x="{x:.1f}" y="{y:.1f}" {FONT} fill="{c}">{escape(text)}</text>')
    return _svg(width, height, body, "learning versus forgetting", "tradeoff")


def bias(result: ComparisonResult, colors: dict[str, str] | None = None) -> Markup | None:
    """Bias scores of the first base and its candidates with intervals, per bias task and category."""
    results = [cr for cr in paired_with_own_base(result) if cr.reference == BASE]
    if not results:
        return None
    colors = colors or candidate_colors(result)
    rows = []  # (label, [(name, colour, Estimate)])
    for t in (t for t in results[0].tasks if t.role == "bias"):
        cats = [c.category for c in t.categories] or [None]
        for cat in cats:
            marks = []
            for i, cr in enumerate(results):
                tr = next((x for x in cr.tasks if x.task == t.task), None)
                c = None if tr is None else next((x for x in tr.categories if x.category == cat), None)
                if c is None:  # no categories: the task's overall level
                    continue
                if i == 0:
                    marks.append(("base", GREY, c.base))
                marks.append((cr.candidate, colors[cr.candidate], c.candidate))
            if marks:
                rows.append((f"{t.task} · {cat}", marks))
    if not rows:
        return None
    per = len(rows[0][1])
    row_h, label_w, width = 13 * per + 12, 210, 680
    height = 16 + row_h * len(rows) + 40
    ax = _Axis.around([v for _, marks in rows for _, _, r in marks for v in (r.low, r.high)], label_w, width - 140)
    body = _x_axis(ax, height - 40, 10, False,
                   "bias score (log-likelihood stereotyped − anti, nats); above 0 = stereotyped")
    for i, (label, marks) in enumerate(rows):
        y0 = 14 + i * row_h
        body.append(f'<text x="4" y="{y0 + row_h / 2:.1f}" {FONT}>{escape(label)}</text>')
        for j, (_, c, r) in enumerate(marks):
            body.append(_interval(ax(r.low), ax(r.high), ax(r.estimate), y0 + 6 + j * 13, c, 3))
    names = ["base"] + [cr.candidate for cr in results]
    legend = []
    for i, name in enumerate(names):
        c = GREY if i == 0 else colors[name]
        legend.append(f'<circle cx="{width - 125}" cy="{20 + i * 15}" r="4" fill="{c}"/>'
                      f'<text x="{width - 116}" y="{24 + i * 15}" {FONT}>{escape(name)}</text>')
    return _svg(width, height, body + legend, "bias by category, base and candidates", "bias")


def tornado(roi: RoiResult, index: int = 0, colors: dict[str, str] | None = None) -> Markup | None:
    """How the net monthly value of a candidate over its best prompting baseline moves with each
    input; the bars in the candidate's colour."""
    if not roi.sensitivity:
        return None
    s = roi.sensitivity[index]
    fill = (colors or {}).get(s["candidate"], color(0))
    bars = s["bars"]
    row_h, label_w, width = 24, 190, 640
    height = 20 + row_h * len(bars) + 40
    ax = _Axis.around([v for b in bars for v in (b["low"], b["high"])] + [s["net"]], label_w, width - 20)
    body = _x_axis(ax, height - 40, 10, False, f"net per month ({roi.currency}), {s['candidate']} vs {s['baseline']}")
    for i, b in enumerate(bars):
        y = 16 + i * row_h
        lo, hi = sorted((ax(b["low"]), ax(b["high"])))
        body.append(f'<text x="4" y="{y + 13:.1f}" {FONT}>{escape(b["input"])}</text>'
                    f'<rect x="{lo:.1f}" y="{y + 3:.1f}" width="{max(hi - lo, 1):.1f}" height="{row_h - 8}" '
                    f'fill="{fill}" fill-opacity="0.35" stroke="{fill}"/>')
    body.append(f'<line x1="{ax(s["net"]):.1f}" y1="10" x2="{ax(s["net"]):.1f}" y2="{height - 40}" stroke="#111" '
                'stroke-width="1.5"/>')
    return _svg(width, height, body, f"sensitivity of net value: {s['candidate']}", "tornado")


def _y_grid(ay: _Axis, x0: float, x1: float, pct: bool) -> list[str]:
    """Horizontal grid lines with their labels, and a dashed zero line."""
    out = []
    for tick in _nice_ticks(ay.lo, ay.hi):
        y = ay(tick)
        out.append(f'<line x1="{x0}" y1="{y:.1f}" x2="{x1}" y2="{y:.1f}" stroke="#e3e6eb"/>'
                   f'<text x="{x0 - 6}" y="{y + 4:.1f}" text-anchor="end" {FONT}>{_fmt(tick, pct)}</text>')
    if ay.lo < 0 < ay.hi:
        out.append(f'<line x1="{x0}" y1="{ay(0):.1f}" x2="{x1}" y2="{ay(0):.1f}" stroke="#444" '
                   'stroke-dasharray="3,3"/>')
    return out


# the roles of the learning-versus-forgetting trade-off, each in its own colour
CURVE_ROLES = {role: (facts.title.lower(), color(i))
               for i, (role, facts) in enumerate((r, f) for r, f in ROLE_FACTS.items() if f.trade_off)}


def curve(c: CurveRecord) -> Markup:
    """Role deltas (lines, interval bands) against training step or data size; the best
    trade-off (highest target gain + forgetting delta) marked."""
    width, height, left, right, top, bottom = 620, 300, 60, 110, 22, 46
    xs = [p.x for p in c.points]
    roles = [r for r in CURVE_ROLES if any(r in p.roles for p in c.points)]
    pct = all(r in c.binary_roles for r in roles)
    ax = _Axis.around(xs, left, width - right, include_zero=c.kind == "steps")
    ay = _Axis.around([v for p in c.points for r in roles for v in (p.roles[r].low, p.roles[r].high)],
                      height - bottom, top)
    xlabel = "training step" if c.kind == "steps" else "training records"
    body = [f'<line x1="{left}" y1="{height - bottom}" x2="{width - right}" y2="{height - bottom}" stroke="#444"/>']
    for t in _nice_ticks(ax.lo, ax.hi):
        if t >= 0:
            body.append(f'<text x="{ax(t):.1f}" y="{height - bottom + 14:.1f}" text-anchor="middle" {FONT}>'
                        f'{t:,.0f}</text>')
    body.append(f'<text x="{(left + width - right) / 2:.1f}" y="{height - 12}" text-anchor="middle" {FONT}>'
                f'{escape(xlabel)}</text>')
    body += _y_grid(ay, left, width - right, pct)
    body.append(f'<text x="14" y="{(height - bottom) / 2:.1f}" transform="rotate(-90 14 {(height - bottom) / 2:.1f})" '
                f'text-anchor="middle" {FONT}>candidate − base ({"pp" if pct else "metric units"})</text>')
    # the start of training is the base itself: every delta is 0 there
    start = [(0, 0.0, 0.0, 0.0)] if c.kind == "steps" else []
    for i, role in enumerate(roles):
        name, col = CURVE_ROLES[role]
        pts = start + [(p.x, p.roles[role].estimate, p.roles[role].low, p.roles[role].high)
                       for p in c.points if role in p.roles]
        band = [f"{ax(x):.1f},{ay(hi):.1f}" for x, _, _, hi in pts] + \
               [f"{ax(x):.1f},{ay(lo):.1f}" for x, _, lo, _ in reversed(pts)]
        body.append(f'<polygon points="{" ".join(band)}" fill="{col}" fill-opacity="0.12" stroke="none"/>')
        body.append(f'<polyline points="{" ".join(f"{ax(x):.1f},{ay(e):.1f}" for x, e, _, _ in pts)}" fill="none" '
                    f'stroke="{col}" stroke-width="2"/>')
        for x, e, lo, hi in pts[len(start):]:
            body.append(f'<circle cx="{ax(x):.1f}" cy="{ay(e):.1f}" r="3" fill="{col}"><title>{escape(name)} at '
                        f'{x:,}: {_fmt(e, pct)} [{_fmt(lo, pct)}, {_fmt(hi, pct)}]</title></circle>')
        body.append(f'<line x1="{width - right + 12}" y1="{top + 8 + i * 16}" x2="{width - right + 28}" '
                    f'y2="{top + 8 + i * 16}" stroke="{col}" stroke-width="2"/><text x="{width - right + 33}" '
                    f'y="{top + 12 + i * 16}" {FONT}>{escape(name)}</text>')
    bx = ax(c.best)
    right_half = bx > (left + width - right) / 2  # the label on the side with room
    body.append(f'<line class="best" x1="{bx:.1f}" y1="{top - 8}" x2="{bx:.1f}" y2="{height - bottom}" stroke="#111" '
                f'stroke-dasharray="5,3"/><text x="{bx + (-4 if right_half else 4):.1f}" y="{top - 10 + 10}" '
                f'text-anchor="{"end" if right_half else "start"}" {FONT}>best trade-off: {c.best:,}</text>')
    what = "along training" if c.kind == "steps" else "against data size"
    return _svg(width, height, body, f"learning and forgetting {what}: {c.name}", "curve")


def trend(history: list[HistoryEntry], role: str, pct: bool, colors: dict[str, str] | None = None) -> Markup | None:
    """One role's delta of every candidate across the recorded comparisons of this config (oldest
    left, this one right); a candidate name that recurs is joined by a line. `colors`: the report's
    (candidate_colors), so that a candidate has the colour it has in the other charts."""
    points = [(i, name, roles[role]) for i, h in enumerate(history) for name, roles in h.candidates.items()
              if role in roles]
    if len(history) < 2 or not points:
        return None
    width, height, left, right, top, bottom = 620, 260, 60, 150, 16, 58
    ax = _Axis(-0.5, len(history) - 0.5, left, width - right)
    ay = _Axis.around([v for _, _, v in points], height - bottom, top)
    names = list(dict.fromkeys(name for _, name, _ in points))
    colors = {**{name: color(k) for k, name in enumerate(names)}, **(colors or {})}
    body = [f'<line x1="{left}" y1="{height - bottom}" x2="{width - right}" y2="{height - bottom}" stroke="#444"/>']
    for i, h in enumerate(history):
        label = "this run" if h.id == 0 else f"#{i + 1} {h.created_at[:10]}"
        body.append(f'<text x="{ax(i):.1f}" y="{height - bottom + 14}" text-anchor="middle" {FONT}>'
                    f'{escape(label)}</text>')
    body += _y_grid(ay, left, width - right, pct)
    body.append(f'<text x="{(left + width - right) / 2:.1f}" y="{height - 18}" text-anchor="middle" {FONT}>'
                f'recorded comparisons of this config, oldest first</text>')
    for name in names:
        mine = [(i, v) for i, n, v in points if n == name]
        if len(mine) > 1:
            body.append(f'<polyline points="{" ".join(f"{ax(i):.1f},{ay(v):.1f}" for i, v in mine)}" fill="none" '
                        f'stroke="{colors[name]}" stroke-width="1.5"/>')
        for i, v in mine:
            body.append(f'<circle cx="{ax(i):.1f}" cy="{ay(v):.1f}" r="4" fill="{colors[name]}"><title>{escape(name)}: '
                        f'{_fmt(v, pct)}</title></circle>')
    body += _legend(names, colors, width - right + 14, top + 6)
    return _svg(width, height, body, f"trend of the {role} delta across comparisons", "trend")


def frontier(roi: RoiResult, colors: dict[str, str] | None = None) -> Markup | None:
    """Accuracy on the ROI task (y, with intervals) against serving cost per 1,000 items (x) for every
    way of working; the Pareto frontier (no other way scores higher for the same or less) joined by a
    line through filled points, the others hollow. Candidates in their colours, the rest grey."""
    if roi.frontier is None or not roi.alternatives:
        return None
    colors = colors or {}
    on = {s.name for s in roi.frontier.steps}
    alts = roi.alternatives
    width, height, left, right, top, bottom = 640, 380, 64, 24, 20, 52
    ax = _Axis.around([a.cost_per_1000 for a in alts], left, width - right)
    ay = _Axis.around([v for a in alts for v in (a.accuracy.low, a.accuracy.high)], height - bottom, top,
                      include_zero=False)
    ay = _Axis(max(ay.lo, 0.0), min(ay.hi, 1.0), ay.x0, ay.x1)
    body = [f'<line x1="{left}" y1="{height - bottom}" x2="{width - right}" y2="{height - bottom}" stroke="#444"/>']
    for t in _nice_ticks(ax.lo, ax.hi):
        x = ax(t)
        body.append(f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{height - bottom}" stroke="#e3e6eb"/>'
                    f'<text x="{x:.1f}" y="{height - bottom + 14}" text-anchor="middle" {FONT}>{t:.3g}</text>')
    for t in _nice_ticks(ay.lo, ay.hi):
        y = ay(t)
        body.append(f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" stroke="#e3e6eb"/>'
                    f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" {FONT}>{t * 100:.0f}%</text>')
    body.append(f'<text x="{(left + width - right) / 2:.1f}" y="{height - 14}" text-anchor="middle" {FONT}>'
                f'serving cost per 1,000 items ({escape(roi.currency)}, measured scoring time × price) →</text>')
    body.append(f'<text x="14" y="{height / 2:.1f}" transform="rotate(-90 14 {height / 2:.1f})" '
                f'text-anchor="middle" {FONT}>accuracy on {escape(roi.task)} ↑</text>')
    steps = roi.frontier.steps
    path = " ".join(f"{'M' if i == 0 else 'L'}{ax(s.cost_per_1000):.1f},{ay(s.accuracy.estimate):.1f}"
                    for i, s in enumerate(steps))
    body.append(f'<path d="{path}" fill="none" stroke="#111" stroke-width="1.5" stroke-dasharray="5,3"/>')
    marks = []
    for a in alts:
        c = colors.get(a.name, GREY)
        x, y = ax(a.cost_per_1000), ay(a.accuracy.estimate)
        fill = f'fill="{c}"' if a.name in on else f'fill="white" stroke="{c}" stroke-width="1.5"'
        body.append(f'<line x1="{x:.1f}" y1="{ay(a.accuracy.low):.1f}" x2="{x:.1f}" y2="{ay(a.accuracy.high):.1f}" '
                    f'stroke="{c}"/><circle cx="{x:.1f}" cy="{y:.1f}" r="5" {fill}><title>{escape(a.name)}: '
                    f'{a.accuracy.estimate * 100:.1f}%, {a.cost_per_1000:.3g} per 1,000 items'
                    f'{" (on the frontier)" if a.name in on else ""}</title></circle>')
        marks.append((x, y, a.name, c))
    where = place_labels([(x, y, text, False) for x, y, text, _ in marks], (left, top, width - right, height - bottom),
                         [(x - 6, y - 6, x + 6, y + 6) for x, y, *_ in marks])
    for (_, _, text, c), (x, y) in zip(marks, where, strict=True):
        body.append(f'<text class="label" x="{x:.1f}" y="{y:.1f}" {FONT} fill="{c}">{escape(text)}</text>')
    return _svg(width, height, body, "quality against cost: the frontier", "frontier")
