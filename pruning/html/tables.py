"""HTML tables from rows of already formatted cells; every cell is escaped here."""

from collections.abc import Sequence

from pruning.html.svg import esc


def table(
    caption: str, headers: Sequence[str], rows: Sequence[Sequence[str]], numeric: int = 1
) -> str:
    """Columns from index `numeric` on are figures: right-aligned, tabular digits."""
    head = "".join(
        f'<th scope="col"{_num(i, numeric)}>{esc(h)}</th>' for i, h in enumerate(headers)
    )
    body = "".join(
        "<tr>" + "".join(_cell(i, cell, numeric) for i, cell in enumerate(row)) + "</tr>"
        for row in rows
    )
    return (
        f'<div class="table-wrap"><table><caption>{esc(caption)}</caption>'
        f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>"
    )


def _cell(index: int, value: str, numeric: int) -> str:
    tag = 'th scope="row"' if index == 0 else "td"
    close = "th" if index == 0 else "td"
    return f"<{tag}{_num(index, numeric)}>{esc(value)}</{close}>"


def _num(index: int, numeric: int) -> str:
    return ' class="num"' if index >= numeric else ""
