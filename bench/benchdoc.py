"""docs/benchmarks.md: each bench script owns one `## ` section and rewrites only that one."""

from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"


def replace_section(heading: str, text: str, doc: Path = DOC) -> None:
    """Put `text` (which starts with `heading`) where the section `heading` stands, up to the
    next `## ` heading, or append it when the doc has no such section yet."""
    old = doc.read_text() if doc.exists() else "# Benchmarks\n"
    body = text.rstrip("\n") + "\n"
    start = old.find(heading)
    if start < 0:
        doc.write_text(old.rstrip("\n") + "\n\n" + body)
        return
    following = old.find("\n## ", start + len(heading))
    tail = old[following + 1 :] if following >= 0 else ""
    doc.write_text(old[:start] + body + ("\n" + tail if tail else ""))
