"""Server-rendered SVG charts, as pure functions: data in, markup out, no
I/O and no JavaScript. Every label is escaped. Each chart carries a <title>
and a text description (role="img"), and each mark its value as text, so the
figures can be read without seeing the chart."""

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

WIDTH, HEIGHT = 640, 240
LEFT, RIGHT, TOP, BOTTOM = 48, 12, 16, 56
COLOURS = ("#2563eb", "#d97706", "#059669", "#dc2626")


def _fmt(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".") if isinstance(value, float) else str(value)


def _scale(values: list[float]) -> float:
    top = max([v for v in values if v is not None] + [0])
    return top if top > 0 else 1


def _frame(title: str, body: list[str], legend: list[str]) -> SafeString:
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(title)}" class="chart">',
        f"<title>{escape(title)}</title>",
        f'<line x1="{LEFT}" y1="{HEIGHT - BOTTOM}" x2="{WIDTH - RIGHT}" y2="{HEIGHT - BOTTOM}" stroke="#9ca3af"/>',
        *body,
        *legend,
        "</svg>",
    ]
    return mark_safe("".join(parts))  # noqa: S308 - every text above is escaped


def _short(label: str, limit: int = 18) -> str:
    # The axis has room for a short label; the mark's <title> carries the whole one.
    return label if len(label) <= limit else label[: limit - 1] + "…"


def _x_labels(labels: list[str], step: float) -> list[str]:
    out = []
    for i, label in enumerate(labels):
        x = LEFT + step * (i + 0.5)
        label = _short(label)
        out.append(
            f'<text x="{x:.1f}" y="{HEIGHT - BOTTOM + 14}" font-size="10" text-anchor="end" '
            f'transform="rotate(-30 {x:.1f} {HEIGHT - BOTTOM + 14})">{escape(label)}</text>'
        )
    return out


def _legend(names: list[str]) -> list[str]:
    if len(names) < 2:
        return []
    out = []
    for i, name in enumerate(names):
        x = LEFT + i * 160
        out.append(f'<rect x="{x}" y="2" width="10" height="10" fill="{COLOURS[i % len(COLOURS)]}"/>')
        out.append(f'<text x="{x + 14}" y="11" font-size="11">{escape(name)}</text>')
    return out


def bar_chart(*, title: str, labels: list[str], series: dict[str, list[float]]) -> SafeString:
    """Grouped vertical bars: one group per label, one bar per series."""
    if not labels:
        return empty_chart(title=title)
    names = list(series)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    top = _scale([v for values in series.values() for v in values])
    step = plot_w / len(labels)
    bar_w = step * 0.8 / len(names)
    body = []
    for s, name in enumerate(names):
        for i, value in enumerate(series[name]):
            value = value or 0
            h = plot_h * value / top
            x = LEFT + step * i + step * 0.1 + bar_w * s
            y = TOP + plot_h - h
            body.append(
                f'<rect class="bar" x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{h:.1f}" '
                f'fill="{COLOURS[s % len(COLOURS)]}" data-value="{_fmt(value)}">'
                f"<title>{escape(labels[i])}, {escape(name)}: {_fmt(value)}</title></rect>"
            )
            label_x = x + bar_w / 2
            body.append(
                f'<text x="{label_x:.1f}" y="{y - 3:.1f}" font-size="10" text-anchor="middle">{_fmt(value)}</text>'
            )
    return _frame(title, body + _x_labels(labels, step), _legend(names))


def line_chart(*, title: str, labels: list[str], series: dict[str, list[float | None]]) -> SafeString:
    """One line per series over the labels (weeks, months); None is a gap."""
    if not labels:
        return empty_chart(title=title)
    names = list(series)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    top = _scale([v for values in series.values() for v in values])
    step = plot_w / len(labels)
    body = []
    for s, name in enumerate(names):
        colour = COLOURS[s % len(COLOURS)]
        points = []
        for i, value in enumerate(series[name]):
            if value is None:
                continue
            x, y = LEFT + step * (i + 0.5), TOP + plot_h - plot_h * value / top
            points.append(f"{x:.1f},{y:.1f}")
            body.append(
                f'<circle class="point" cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{colour}" data-value="{_fmt(value)}">'
                f"<title>{escape(labels[i])}, {escape(name)}: {_fmt(value)}</title></circle>"
            )
            body.append(f'<text x="{x:.1f}" y="{y - 6:.1f}" font-size="10" text-anchor="middle">{_fmt(value)}</text>')
        if len(points) > 1:
            body.insert(0, f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{" ".join(points)}"/>')
    return _frame(title, body + _x_labels(labels, step), _legend(names))


def empty_chart(*, title: str) -> SafeString:
    body = [f'<text x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle" fill="#6b7280">No data in this range</text>']
    return _frame(title, body, [])
