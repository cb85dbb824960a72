"""Open a page in a real headless Chromium: a screenshot, the DOM, and console messages."""

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

INSTALL_HINT = "apt-get update && apt-get install -y chromium"

FLAGS = [
    "--headless",
    "--no-sandbox",  # tests run as root in containers, where Chromium's sandbox cannot start
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


class ChromiumMissing(AssertionError):
    """The browser tests fail, never skip, without Chromium: a skipped check proves nothing."""


@dataclass(frozen=True)
class BrowserRun:
    screenshot: Path
    dom: str
    console: list[str]  # every console message, CSP violations and script errors included


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        raise ChromiumMissing(f"Chromium is needed for the report test: {INSTALL_HINT}")
    return found


def open_page(page: Path, workdir: Path, width: int = 1280, height: int = 2400) -> BrowserRun:
    screenshot = workdir / "report.png"
    _run(
        [f"--screenshot={screenshot}", f"--window-size={width},{height}"],
        page,
        workdir / "profile-a",
    )
    dump = _run(["--enable-logging=stderr", "--v=0", "--dump-dom"], page, workdir / "profile-b")
    console = [line for line in dump.stderr.splitlines() if ":CONSOLE" in line]
    return BrowserRun(screenshot, dump.stdout, console)


def _run(extra: list[str], page: Path, profile: Path) -> "subprocess.CompletedProcess[str]":
    argv = [chromium(), *FLAGS, f"--user-data-dir={profile}", *extra, page.resolve().as_uri()]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        raise AssertionError(f"chromium exited {done.returncode}: {done.stderr[-2000:]}")
    return done
