"""tools.chromium: the chain that finds or installs the browser, driven with fakes (no process)."""
import sys

import pytest

from tools.chromium import APT_PACKAGE, BrowserUnavailable, obtain

PW_CHROME = "/home/u/.cache/ms-playwright/chromium-1/chrome-linux64/chrome"


class Machine:
    """A fake machine: which programs exist and run, who we are, what each install does."""

    def __init__(self, *, path=None, files=(), euid=1000, sudo=False, apt=True, apt_works=True,
                 playwright=True, pw_download_works=True):
        self.path = dict(path or {})          # name on PATH -> full path
        self.files = set(files)               # files that exist (and run)
        self.euid = euid
        self.sudo_ok = sudo
        self.apt_works = apt_works
        self.playwright = playwright
        self.pw_download_works = pw_download_works
        self.commands: list[list[str]] = []
        if apt:
            self.path["apt-get"] = "/usr/bin/apt-get"
        if sudo is not None:
            self.path.setdefault("sudo", "/usr/bin/sudo")

    def run(self, cmd, quiet=False, timeout=None):
        self.commands.append(cmd)
        if cmd[-1] == "--version":
            return 0 if cmd[0] in self.files else 1
        if cmd[:3] == ["sudo", "-n", "true"]:
            return 0 if self.sudo_ok else 1
        if "apt-get" in cmd:
            if self.apt_works and cmd[-1] == APT_PACKAGE:
                self.path["chromium"] = "/usr/bin/chromium"
                self.files.add("/usr/bin/chromium")
            return 0 if self.apt_works else 100
        if cmd[1:] == ["-m", "playwright", "install", "chromium"]:
            if self.pw_download_works:
                self.files.add(PW_CHROME)
                return 0
            return 1
        raise AssertionError(f"unexpected command {cmd}")

    def obtain(self, environ=None):
        return obtain(
            environ or {}, run=self.run, which=self.path.get, geteuid=lambda: self.euid,
            playwright_executable=lambda: PW_CHROME if self.playwright else None,
            is_file=lambda p: p in self.files, log=lambda msg: None)

    def installs(self):
        return [c for c in self.commands
                if c[-1] != "--version" and c[:3] != ["sudo", "-n", "true"]]


def test_a_working_chromium_on_path_is_used_and_nothing_is_installed():
    m = Machine(path={"chromium": "/usr/bin/chromium"}, files={"/usr/bin/chromium"})
    assert m.obtain() == "/usr/bin/chromium"
    assert m.installs() == []


def test_a_broken_wrapper_on_path_is_passed_over_for_chrome():
    # Ubuntu's chromium-browser without its snap does not answer --version.
    m = Machine(path={"chromium-browser": "/usr/bin/chromium-browser",
                      "google-chrome": "/usr/bin/google-chrome"}, files={"/usr/bin/google-chrome"})
    assert m.obtain() == "/usr/bin/google-chrome"


def test_the_chromium_override_wins_and_a_bad_one_is_an_error():
    m = Machine(path={"chromium": "/usr/bin/chromium"}, files={"/usr/bin/chromium", "/opt/c"})
    assert m.obtain({"CHROMIUM": "/opt/c"}) == "/opt/c"
    with pytest.raises(BrowserUnavailable, match="CHROMIUM=/nope"):
        m.obtain({"CHROMIUM": "/nope"})
    assert m.installs() == []


def test_playwrights_own_chromium_from_an_earlier_install_is_used():
    m = Machine(files={PW_CHROME})
    assert m.obtain() == PW_CHROME
    assert m.installs() == []


def test_root_installs_debians_chromium_with_apt():
    m = Machine(euid=0)
    assert m.obtain() == "/usr/bin/chromium"
    apt = m.installs()
    assert [c[c.index("apt-get"):][-2:] for c in apt] == [["-qq", "update"], ["-y", APT_PACKAGE]]
    assert all(c[0] == "env" for c in apt), "root runs apt-get without sudo"


def test_a_user_with_passwordless_sudo_installs_through_sudo():
    m = Machine(euid=1000, sudo=True)
    assert m.obtain() == "/usr/bin/chromium"
    assert all(c[:2] == ["sudo", "-n"] for c in m.installs())


def test_a_user_without_root_gets_playwrights_chromium():
    m = Machine(euid=1000, sudo=False)
    assert m.obtain() == PW_CHROME
    assert m.installs() == [[sys.executable, "-m", "playwright", "install", "chromium"]]


def test_a_failed_apt_install_falls_back_to_playwright():
    m = Machine(euid=0, apt_works=False)
    assert m.obtain() == PW_CHROME


def test_without_apt_playwright_is_next():
    m = Machine(apt=False, sudo=None)
    assert m.obtain() == PW_CHROME


def test_nothing_works_is_a_failure_that_says_what_to_install():
    m = Machine(euid=1000, sudo=False, pw_download_works=False)
    with pytest.raises(BrowserUnavailable) as err:
        m.obtain()
    message = str(err.value)
    assert "apt-get install chromium" in message
    assert ".venv/bin/python -m playwright install chromium" in message
    assert "CHROMIUM=" in message
    assert "no sudo without a password" in message  # what was tried


def test_without_the_playwright_package_the_failure_says_make_venv():
    m = Machine(playwright=False)
    with pytest.raises(BrowserUnavailable, match="make venv"):
        m.obtain()
