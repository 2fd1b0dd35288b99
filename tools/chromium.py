"""Find, or obtain, the Chromium that the browser test and `make pdf` drive through Playwright.

    .venv/bin/python -m tools.chromium      # prints the browser's path, installing one if needed

Tried in this order; the first that works is used:

1. ``CHROMIUM=/path/to/chromium`` when set (an error if it does not run).
2. A Chromium or Chrome already installed: ``chromium``, ``google-chrome``,
   ``google-chrome-stable``, ``chromium-browser`` on PATH, or the macOS applications; each must
   answer ``--version`` (so Ubuntu's snap wrapper without its snap does not count).
3. The Chromium that Playwright installed for this user earlier (``~/.cache/ms-playwright``).
4. Debian's ``chromium`` package through apt-get, when running as root or with sudo that needs no
   password.
5. ``python -m playwright install chromium``: Playwright downloads its Chromium for this user.
6. Otherwise a failure that says what to install (``BrowserUnavailable``); never a skip.

Every effect (running a command, looking a name up on PATH, the user id, Playwright's own browser
path) is a parameter of ``obtain``, so tests drive the whole chain with fakes.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Callable

# Headless, no sandbox (root), and none of Chromium's own network traffic (a closed network
# refuses it, loudly). Used by the browser test and by tools.pdf alike.
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
ON_PATH = ["chromium", "google-chrome", "google-chrome-stable", "chromium-browser"]
MAC_APPS = ["/Applications/Google Chrome.app/Contents/MacOS/Google Chrome",
            "/Applications/Chromium.app/Contents/MacOS/Chromium"]
APT_PACKAGE = "chromium"

HOW_TO_INSTALL = """\
Install one of these, then run the command again:
  - Debian or Ubuntu, with root: sudo apt-get install chromium   (on Ubuntu: any Chrome/Chromium)
  - any user, any system:        .venv/bin/python -m playwright install chromium
  - or point CHROMIUM at a Chromium or Chrome you have: make test CHROMIUM=/path/to/chrome"""


class BrowserUnavailable(RuntimeError):
    """No Chromium could be found or installed; the message says what was tried and what to do."""


def _run(cmd: list[str], *, quiet: bool = False, timeout: float = 900) -> int:
    """Run cmd and return its exit code (127: it could not run). Its output goes to the terminal,
    or, when quiet, nowhere unless it fails (then its last lines go to stderr)."""
    try:
        done = subprocess.run(cmd, capture_output=quiet, text=True, stdin=subprocess.DEVNULL,
                              timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return 127
    if quiet and done.returncode != 0 and cmd[-1] != "--version":
        tail = (done.stdout + done.stderr).strip().splitlines()[-15:]
        print("\n".join(f"  | {line}" for line in tail), file=sys.stderr)
    return done.returncode


def _playwright_executable() -> str | None:
    """Where Playwright keeps (or would keep) its own Chromium for this user."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return None
    with sync_playwright() as pw:
        return pw.chromium.executable_path


def _is_file(path: str) -> bool:
    return Path(path).is_file()


def obtain(
    environ: dict | None = None,
    *,
    run: Callable[..., int] = _run,
    which: Callable[[str], str | None] = shutil.which,
    geteuid: Callable[[], int] = getattr(os, "geteuid", lambda: -1),
    playwright_executable: Callable[[], str | None] = _playwright_executable,
    is_file: Callable[[str], bool] = _is_file,
    log: Callable[[str], None] = lambda msg: print(msg, file=sys.stderr, flush=True),
) -> str:
    """The path of a working Chromium, installing one if needed (BrowserUnavailable if not)."""
    environ = os.environ if environ is None else environ
    tried: list[str] = []

    def works(path: str) -> bool:
        return run([path, "--version"], quiet=True, timeout=60) == 0

    override = environ.get("CHROMIUM")
    if override:
        if is_file(override) and works(override):
            return override
        raise BrowserUnavailable(
            f"CHROMIUM={override} is not a browser that runs ({override} --version failed).\n"
            + HOW_TO_INSTALL)

    def installed() -> str | None:
        for name in ON_PATH:
            path = which(name)
            if path and works(path):
                return path
        for path in MAC_APPS:
            if is_file(path) and works(path):
                return path
        return None

    found = installed()
    if found:
        return found
    tried.append(f"no working {', '.join(ON_PATH)} on PATH")

    own = playwright_executable()
    if own is None:
        raise BrowserUnavailable(
            "the playwright package is not installed: run `make venv` (it is pinned in "
            "requirements.txt).")
    if is_file(own) and works(own):
        return own
    tried.append(f"no Chromium of Playwright's at {own}")

    if which("apt-get"):
        if geteuid() == 0:
            sudo = []
        elif which("sudo") and run(["sudo", "-n", "true"], quiet=True, timeout=30) == 0:
            sudo = ["sudo", "-n"]
        else:
            sudo = None
        if sudo is None:
            tried.append("apt-get needs root (not root, and no sudo without a password)")
        else:
            log(f"No Chromium found: installing Debian's {APT_PACKAGE} with apt-get...")
            apt = sudo + ["env", "DEBIAN_FRONTEND=noninteractive", "apt-get",
                          "-o", "DPkg::Lock::Timeout=300", "-qq"]
            if (run(apt + ["update"], quiet=True) == 0
                    and run(apt + ["install", "-y", APT_PACKAGE], quiet=True) == 0):
                found = installed()
                if found:
                    return found
            tried.append(f"apt-get install {APT_PACKAGE} failed")
    else:
        tried.append("no apt-get")

    log("Installing Playwright's Chromium for this user: python -m playwright install chromium...")
    if run([sys.executable, "-m", "playwright", "install", "chromium"]) == 0:
        own = playwright_executable()
        if own and is_file(own) and works(own):
            return own
    tried.append("`python -m playwright install chromium` failed (is the download reachable?)")

    raise BrowserUnavailable(
        "No Chromium for the browser test and the PDF. Tried: " + "; ".join(tried) + ".\n"
        + HOW_TO_INSTALL)


def main() -> int:
    try:
        path = obtain()
    except BrowserUnavailable as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
