"""Reading a report that may lack any block, and writing its numbers for people.

A report comes from a job that may have skipped steps (no latency, no retraining) or from an
older engine; a missing or malformed value renders as "not measured", never as a crash.
"""

import math
from collections.abc import Mapping
from typing import Any

NOT_MEASURED = "not measured"
TIMES = "\N{MULTIPLICATION SIGN}"


def block(source: object, key: str) -> Mapping[str, Any]:
    value = source.get(key) if isinstance(source, Mapping) else None
    return value if isinstance(value, Mapping) else {}


def rows(source: object, key: str) -> list[Mapping[str, Any]]:
    value = source.get(key) if isinstance(source, Mapping) else None
    if not isinstance(value, list | tuple):
        return []
    return [item for item in value if isinstance(item, Mapping)]


def number(value: object) -> float | None:
    """A finite number, or None (bools, strings, NaN and infinities are not figures)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def percent(value: object, digits: int = 1) -> str:
    n = number(value)
    return NOT_MEASURED if n is None else f"{n * 100:.{digits}f}%"


def count(value: object) -> str:
    n = number(value)
    return NOT_MEASURED if n is None else f"{round(n):,}"


def decimal(value: object, digits: int = 3) -> str:
    n = number(value)
    if n is None:
        return NOT_MEASURED
    if n != 0 and abs(n) < 10 ** (-digits):
        return f"{n:.2e}"
    return f"{n:,.{digits}f}"


def milliseconds(value: object) -> str:
    n = number(value)
    return NOT_MEASURED if n is None else f"{n:,.3g} ms" if n < 100 else f"{n:,.0f} ms"


def seconds(value: object) -> str:
    n = number(value)
    return NOT_MEASURED if n is None else f"{n:,.2f} s"


def speedup(value: object) -> str:
    n = number(value)
    return NOT_MEASURED if n is None else f"{n:.2f}{TIMES}"


def size(value: object, compact: bool = False) -> str:
    """Bytes in binary units (what `ls -h` shows); `compact` drops trailing zeros, for axes."""
    n = number(value)
    if n is None:
        return NOT_MEASURED
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            break
        n /= 1024
    if compact or unit == "B":
        return f"{n:,.4g} {unit}"
    return f"{n:,.1f} {unit}"


def shape(value: object) -> str:
    if not isinstance(value, list | tuple):
        return NOT_MEASURED
    return TIMES.join(str(d) for d in value) or "scalar"
