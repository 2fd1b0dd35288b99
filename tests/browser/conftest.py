"""Fixtures of the real-browser test: the built site served on 127.0.0.1 and one headless Chromium.

BOOK_HTML   the site to test (default: <repo>/_build/html), e.g. a preview's _build/html
CHROMIUM    the browser binary (default: /usr/bin/chromium, Debian's package)
CI=true     a missing browser or Playwright fails instead of skipping
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

ROOT = Path(__file__).resolve().parents[2]
SITE = Path(os.environ.get("BOOK_HTML") or ROOT / "_build" / "html").resolve()
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]

# What the test saw, printed at the end of the run (pytest_terminal_summary).
STATS = {"pages": 0, "math": 0, "links": 0, "anchors": 0, "images": 0, "search_results": 0}
_START = [0.0]


@pytest.fixture(scope="session")
def stats() -> dict:
    return STATS


def _unavailable(reason: str):
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: the browser test must run in CI)", pytrace=False)
    pytest.skip(reason)


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
    if not Path(CHROMIUM).is_file():
        _unavailable(f"{CHROMIUM} not found: install Debian's chromium (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the playwright package is not installed (it is pinned in requirements.txt)")
    _START[0] = time.monotonic()
    profile = tempfile.mkdtemp(prefix="book-browser-profile-")
    pw = sync_playwright().start()
    try:
        context = pw.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
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
        f"browser test ({SITE}): {STATS['pages']} pages, {STATS['math']} math elements, "
        f"{STATS['links']} internal links ({STATS['anchors']} with an anchor), "
        f"{STATS['images']} images checked; search 'Jacobian': {STATS['search_results']} results; "
        f"{elapsed:.1f} s"
    )
