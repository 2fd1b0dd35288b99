"""Fixtures of the real-browser test: the built site served on 127.0.0.1 and one headless Chromium.

BOOK_HTML   the site to test (default: <repo>/_build/html), e.g. a preview's _build/html
CHROMIUM    the browser binary; by default tools.chromium finds one, or installs Debian's chromium
            (as root or with password-less sudo) or Playwright's. A missing browser is a failure,
            never a skip, with or without CI=true.
"""
from __future__ import annotations

import functools
import http.server
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

import pytest

from tools.chromium import CHROMIUM_ARGS, BrowserUnavailable, obtain

ROOT = Path(__file__).resolve().parents[2]
SITE = Path(os.environ.get("BOOK_HTML") or ROOT / "_build" / "html").resolve()
BROWSER = [""]  # the Chromium used, for the summary line

# What the test saw, printed at the end of the run (pytest_terminal_summary).
STATS = {"pages": 0, "math": 0, "links": 0, "anchors": 0, "images": 0, "search_results": 0}
_START = [0.0]


@pytest.fixture(scope="session")
def stats() -> dict:
    return STATS


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass


@pytest.fixture(scope="session")
def site() -> Path:
    if not (SITE / "index.html").is_file():
        pytest.fail(f"no built book at {SITE} (run `make book`, or set BOOK_HTML)", pytrace=False)
    return SITE


@pytest.fixture(scope="session")
def base_url(site):
    handler = functools.partial(_QuietHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="session")
def browser_context():
    """One headless Chromium with a new, empty profile, and its single context."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("the playwright package is not installed: run `make venv` "
                    "(it is pinned in requirements.txt)", pytrace=False)
    try:
        chromium = obtain()
    except BrowserUnavailable as err:
        pytest.fail(str(err), pytrace=False)
    BROWSER[0] = chromium
    _START[0] = time.monotonic()
    profile = tempfile.mkdtemp(prefix="book-browser-profile-")
    pw = sync_playwright().start()
    try:
        context = pw.chromium.launch_persistent_context(
            profile, executable_path=chromium, headless=True, args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 900}, service_workers="block",
        )
        context.set_default_timeout(20_000)
        yield context
        context.close()
    finally:
        pw.stop()
        shutil.rmtree(profile, ignore_errors=True)


def pytest_terminal_summary(terminalreporter):
    if not STATS["pages"]:
        return
    elapsed = time.monotonic() - _START[0]
    terminalreporter.write_line(
        f"browser test ({SITE}, {BROWSER[0]}): {STATS['pages']} pages, "
        f"{STATS['math']} math elements, "
        f"{STATS['links']} internal links ({STATS['anchors']} with an anchor), "
        f"{STATS['images']} images checked; search 'Jacobian': {STATS['search_results']} results; "
        f"{elapsed:.1f} s"
    )
    if STATS.get("pdf"):
        terminalreporter.write_line(f"book PDF: {STATS['pdf']}")
