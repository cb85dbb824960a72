"""A pruning report as one self-contained HTML page, with charts drawn as inline SVG.

render_report_html(report, weights_before, weights_after, title) -> str
"""

from pruning.html.page import render_report_html

__all__ = ["render_report_html"]
