"""Charts as server-rendered SVG: no script, no external file, readable by
screen readers (a title per bar, a label on the chart)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape

CLASSES = ("2xx", "3xx", "4xx", "5xx")
COLORS = {"2xx": "#2f7d4f", "3xx": "#3a6ea5", "4xx": "#c27c0e", "5xx": "#b3261e"}
"""Status classes and their colours (distinct for the common colour blindnesses
in lightness as well as hue)."""


def status_class(status: int) -> str:
    """``"2xx"`` for 200-299, and so on; anything else counts as ``5xx``."""
    first = status // 100
    return f"{first}xx" if 2 <= first <= 5 else "5xx"


def stacked_bars(
    buckets: Sequence[tuple[str, Mapping[str, int]]],
    *,
    label: str,
    width: int = 760,
    height: int = 180,
) -> str:
    """A bar per bucket, stacked by status class.

    Args:
        buckets: ``(bucket label, {status class: requests})`` in time order.
        label: What the chart shows (its accessible name).
        width: The drawing's width in pixels (it scales to its container).
        height: Its height.
    """
    top = max((sum(counts.values()) for _, counts in buckets), default=0) or 1
    left, bottom, plot_h = 48, 20, height - 28
    step = (width - left - 4) / max(len(buckets), 1)
    bar = max(step * 0.85, 1.0)
    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(label)}" xmlns="http://www.w3.org/2000/svg">',
        f'<text x="{left - 6}" y="12" text-anchor="end" class="axis">{top}</text>',
        f'<text x="{left - 6}" y="{height - bottom}" text-anchor="end" class="axis">0</text>',
        f'<line x1="{left}" y1="{height - bottom}" x2="{width}" y2="{height - bottom}" '
        'stroke="#888" stroke-width="1"/>',
    ]
    for i, (name, counts) in enumerate(buckets):
        x = left + i * step
        y = float(height - bottom)
        total = sum(counts.values())
        for cls in CLASSES:
            n = counts.get(cls, 0)
            if not n:
                continue
            h = n / top * plot_h
            y -= h
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{h:.1f}" '
                f'fill="{COLORS[cls]}"><title>{escape(name)}: {n} {cls} '
                f"of {total}</title></rect>"
            )
    if buckets:
        parts.append(
            f'<text x="{left}" y="{height - 4}" class="axis">{escape(buckets[0][0])}</text>'
            f'<text x="{width - 2}" y="{height - 4}" text-anchor="end" class="axis">'
            f"{escape(buckets[-1][0])}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def bars(items: Sequence[tuple[str, int]], *, label: str, width: int = 360) -> str:
    """Horizontal bars, one per ``(name, count)``, longest first as given."""
    row = 22
    height = row * max(len(items), 1)
    top = max((n for _, n in items), default=0) or 1
    parts = [
        f'<svg class="bars" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(label)}" xmlns="http://www.w3.org/2000/svg">'
    ]
    for i, (name, n) in enumerate(items):
        w = max(n / top * (width - 60), 1.0)
        y = i * row
        parts.append(
            f'<rect x="0" y="{y + 3}" width="{w:.1f}" height="{row - 6}" fill="#3a6ea5">'
            f"<title>{escape(name)}: {n}</title></rect>"
            f'<text x="{w + 4:.1f}" y="{y + row - 7}" class="axis">{n}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)
