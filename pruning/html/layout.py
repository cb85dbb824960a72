"""The page's building blocks: sections, figures, and the "not measured" notice."""

from pruning.html.svg import esc


def section(section_id: str, heading: str, lead: str, *parts: str) -> str:
    intro = f'<p class="lead">{esc(lead)}</p>' if lead else ""
    return (
        f'<section id="{esc(section_id)}" aria-labelledby="{esc(section_id)}-h">'
        f'<h2 id="{esc(section_id)}-h">{esc(heading)}</h2>{intro}{"".join(parts)}</section>'
    )


def figure(chart: str, caption: str) -> str:
    return f"<figure>{chart}<figcaption>{esc(caption)}</figcaption></figure>"


def missing(what: str) -> str:
    return f'<p class="missing">Not measured: {esc(what)}</p>'


def note(content: str) -> str:
    return f'<p class="note">{esc(content)}</p>'


def details(summary: str, items: list[tuple[str, str]]) -> str:
    """A folded list of definitions: how each figure was obtained."""
    rows = "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in items)
    return f"<details><summary>{esc(summary)}</summary><dl>{rows}</dl></details>"
