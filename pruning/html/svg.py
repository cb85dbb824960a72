"""SVG as escaped strings: elements, scales with round ticks, and axes.

Every piece of text goes through `esc`, so a layer named `<script>` is drawn as text.
Charts are drawn in a fixed coordinate system (the viewBox) and scaled by the browser.
"""

import html
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

FONT = 13
MUTED = "#64748b"
GRID = "#e2e8f0"
AXIS = "#94a3b8"


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def element(tag: str, content: str = "", /, **attributes: object) -> str:
    """`content` must already be markup; attribute values are escaped here."""
    attrs = "".join(
        f' {name.rstrip("_").replace("_", "-")}="{esc(value)}"'
        for name, value in attributes.items()
        if value is not None
    )
    return f"<{tag}{attrs}>{content}</{tag}>" if content else f"<{tag}{attrs}/>"


def text(x: float, y: float, content: str, **attributes: object) -> str:
    return element("text", esc(content), x=_r(x), y=_r(y), **attributes)


def line(x1: float, y1: float, x2: float, y2: float, **attributes: object) -> str:
    return element("line", x1=_r(x1), y1=_r(y1), x2=_r(x2), y2=_r(y2), **attributes)


def rect(x: float, y: float, w: float, h: float, tooltip: str = "", **attributes: object) -> str:
    # A <title> child is the hover tooltip browsers show, with no script.
    inner = element("title", esc(tooltip)) if tooltip else ""
    return element(
        "rect", inner, x=_r(x), y=_r(y), width=_r(max(w, 0)), height=_r(max(h, 0)), **attributes
    )


def polyline(points: Iterable[tuple[float, float]], **attributes: object) -> str:
    coords = " ".join(f"{_r(x)},{_r(y)}" for x, y in points)
    return element("polyline", points=coords, fill="none", **attributes)


def document(
    chart_id: str, width: int, height: int, title: str, description: str, body: str
) -> str:
    """A labelled inline SVG: screen readers read its title and description. Inline in HTML it
    needs no xmlns, which keeps the page free of any URL."""
    head = element("title", esc(title), id=f"{chart_id}-title") + element(
        "desc", esc(description), id=f"{chart_id}-desc"
    )
    return element(
        "svg",
        head + body,
        id=chart_id,
        viewBox=f"0 0 {width} {height}",
        role="img",
        aria_labelledby=f"{chart_id}-title {chart_id}-desc",
        font_size=FONT,
    )


@dataclass(frozen=True)
class Linear:
    """Maps [lo, hi] onto [start, end] pixels; ticks are round multiples of `unit` (1024 for
    bytes, so a KiB axis reads 200, 400, 600 KiB rather than 195.3 KiB)."""

    lo: float
    hi: float
    start: float
    end: float
    unit: float = 1.0

    def __call__(self, value: float) -> float:
        span = self.hi - self.lo or 1.0
        return self.start + (value - self.lo) / span * (self.end - self.start)

    def ticks(self, count: int = 5) -> list[float]:
        return [t * self.unit for t in nice_ticks(self.lo / self.unit, self.hi / self.unit, count)]


@dataclass(frozen=True)
class Log10:
    """Maps [lo, hi] (both > 0) onto pixels logarithmically; ticks at powers of ten."""

    lo: float
    hi: float
    start: float
    end: float

    def __call__(self, value: float) -> float:
        a, b = math.log10(self.lo), math.log10(self.hi)
        return self.start + (math.log10(max(value, self.lo)) - a) / ((b - a) or 1.0) * (
            self.end - self.start
        )

    def ticks(self, count: int = 6) -> list[float]:
        first, last = math.ceil(math.log10(self.lo)), math.floor(math.log10(self.hi))
        step = max(1, math.ceil((last - first + 1) / count))
        return [10.0**k for k in range(first, last + 1, step)]


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Ticks at 1, 2 or 5 times a power of ten, covering [lo, hi]."""
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / max(count, 1)
    power = 10.0 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.ceil(lo / step) * step
    return [first + i * step for i in range(int((hi - first) / step + 1e-9) + 1)]


def nice_max(value: float) -> float:
    """The smallest 1/2/5 x 10^k at or above `value`: a round end for an axis."""
    if value <= 0:
        return 1.0
    power = 10.0 ** math.floor(math.log10(value))
    return next(
        m * power for m in (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10) if m * power >= value * 0.999
    )


Format = Callable[[float], str]


def x_axis(scale: Linear | Log10, y: float, top: float, fmt: Format, label: str) -> str:
    """Ticks, grid lines up to `top`, and a label below, for a horizontal axis at `y`."""
    parts = [line(scale.start, y, scale.end, y, stroke=AXIS)]
    for tick in scale.ticks():
        x = scale(tick)
        parts.append(line(x, top, x, y, stroke=GRID))
        parts.append(text(x, y + 18, fmt(tick), text_anchor="middle", fill=MUTED))
    middle = (scale.start + scale.end) / 2
    parts.append(text(middle, y + 40, label, text_anchor="middle", font_weight=600))
    return "".join(parts)


def y_axis(scale: Linear | Log10, x: float, right: float, fmt: Format, label: str) -> str:
    """Ticks, grid lines across to `right`, and a rotated label, for a vertical axis at `x`."""
    parts = [line(x, scale.start, x, scale.end, stroke=AXIS)]
    for tick in scale.ticks():
        y = scale(tick)
        parts.append(line(x, y, right, y, stroke=GRID))
        parts.append(text(x - 8, y + 4, fmt(tick), text_anchor="end", fill=MUTED))
    middle = (scale.start + scale.end) / 2
    rotate = f"rotate(-90 {_r(x - 52)} {_r(middle)})"
    parts.append(
        text(x - 52, middle, label, text_anchor="middle", font_weight=600, transform=rotate)
    )
    return "".join(parts)


def _r(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")
