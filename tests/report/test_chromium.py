"""A rendered report checked as a user would: headless Chromium opens it offline and takes a screenshot.

Skipped when Chromium is not installed (``.ci/run`` installs Debian's ``chromium``).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from mixopt.report import build_report

CHROMIUM = next((p for p in (shutil.which("chromium"), shutil.which("chromium-browser"), "/usr/bin/chromium")
                 if p and Path(p).is_file()), None)
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")

#: offline, no first-run UI, no background traffic, a fresh profile per run
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--enable-logging=stderr", "--v=0", "--hide-scrollbars"]
#: what Chromium logs for console messages and uncaught exceptions (the report has no script, so any is a fault)
CONSOLE = re.compile(r":CONSOLE[:(\]]|Uncaught")


def open_in_chromium(page: Path, tmp: Path, size: str = "1280,4000") -> tuple[str, str, Path]:
    """(DOM after load, Chromium's log, screenshot path) of ``page`` opened offline."""
    shot = tmp / f"{page.stem}.png"
    proc = subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={tmp / ('profile-' + page.stem)}", f"--window-size={size}",
         f"--screenshot={shot}", "--dump-dom", page.resolve().as_uri()],
        capture_output=True, text=True, timeout=90,
    )
    return proc.stdout, proc.stderr, shot


def console_errors(log: str) -> list[str]:
    return [line for line in log.splitlines() if CONSOLE.search(line)]


def test_console_check_sees_script_errors(tmp_path):
    """The check below can fail: a page that throws is caught."""
    bad = tmp_path / "bad.html"
    bad.write_text('<!DOCTYPE html><html><body><p>x</p><script>throw new Error("boom")</script></body></html>')
    _, log, _ = open_in_chromium(bad, tmp_path, size="400,300")
    assert any("boom" in line for line in console_errors(log)), log[-2000:]


def test_report_opens_offline_without_console_errors(tmp_path, flp, single_runs, search_files):
    from PIL import Image

    rep = build_report(model=flp, runs=single_runs, search=search_files["result"])
    page = rep.write_html(tmp_path / "report.html")
    dom, log, shot = open_in_chromium(page, tmp_path)
    assert console_errors(log) == [], "\n".join(console_errors(log))
    # the browser built the whole document: every section and one SVG per figure
    for s in rep.sections:
        assert f'id="{s.key}"' in dom
    assert dom.count("<svg") == len(rep.figures)
    # the screenshot shows a page, not a blank or error screen
    assert shot.is_file()
    im = Image.open(shot).convert("L")
    assert im.size == (1280, 4000)
    hist = im.histogram()
    dark = sum(hist[:128]) / (im.size[0] * im.size[1])
    assert 0.002 < dark < 0.5, f"screenshot looks blank or broken ({dark:.4f} dark pixels)"
