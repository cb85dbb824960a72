"""The report renders in a real browser: a readable screenshot, every chart, no console errors."""

from pathlib import Path

import pytest
from PIL import Image

from pruning.html import render_report_html
from tests.html.browser import BrowserRun, open_page
from tests.html.report_factory import make_report, make_weights

CHARTS = ["chart-sparsity", "chart-weights", "chart-latency", "chart-storage", "chart-training"]


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> BrowserRun:
    workdir = tmp_path_factory.mktemp("report-in-chromium")
    before, after = make_weights()
    page = workdir / "report.html"
    page.write_text(
        render_report_html(make_report(after), before, after, "Pruning report"), "utf-8"
    )
    run = open_page(page, workdir)
    print(f"\nreport page: {page}\nscreenshot: {run.screenshot}")
    return run


def test_screenshot_is_a_full_size_picture_with_content(rendered: BrowserRun) -> None:
    assert rendered.screenshot.stat().st_size > 100_000
    with Image.open(rendered.screenshot) as image:
        assert image.size == (1280, 2400)
        colours = image.convert("RGB").getcolors(maxcolors=1 << 20)
    assert colours is not None and len(colours) > 200  # text, bars, grid: not a blank page


def test_dom_holds_every_chart_as_svg(rendered: BrowserRun) -> None:
    for chart in CHARTS:
        assert f'<svg id="{chart}"' in rendered.dom, chart


def test_no_console_messages_no_script_errors_no_blocked_loads(rendered: BrowserRun) -> None:
    assert rendered.console == []


def test_the_console_check_catches_errors_and_blocked_loads(tmp_path: Path) -> None:
    # The same harness on a page that misbehaves: proof the check above is not vacuous.
    page = tmp_path / "canary.html"
    page.write_text(
        '<!DOCTYPE html><meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        'script-src \'unsafe-inline\'"><img src="https://example.invalid/x.png">'
        "<script>console.error('canary'); notDefined();</script>",
        "utf-8",
    )
    console = "\n".join(open_page(page, tmp_path, 400, 300).console)
    assert "canary" in console and "notDefined" in console and "Content Security Policy" in console
