"""running-locally.md tells the truth: the repository URL, commands that exist, no stray files."""
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import yaml

from tools import run_chapter
from tests.fixtures import MYST_HEADER

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "running-locally.md"


def _repository_url() -> str:
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    return config["repository"]["url"]


def test_the_repository_url_is_one_setting_the_pages_use():
    url = _repository_url()
    assert re.fullmatch(r"https://\S+", url) and "<" not in url
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert config["html"]["use_repository_button"], "the book's repository button links the setting"
    assert f"git clone {url}" in PAGE.read_text()
    for page in ("running-locally.md", "intro.md", "README.md"):
        text = (ROOT / page).read_text()
        for clone in re.findall(r"git clone (\S+)", text):
            assert clone == url, f"{page}: `git clone {clone}` is not the configured {url}"
        assert "<this repository>" not in text, f"{page} still has a placeholder clone URL"


def test_the_page_sets_up_without_building_the_book_on_every_system():
    text = PAGE.read_text()
    assert "make venv" in text and "make book" not in text.split("## Work through")[0]
    assert "python3 -m venv .venv" in text and ".venv/bin/python -m pip install -r requirements.txt" in text
    assert ".venv\\Scripts\\python -m pip install -r requirements.txt" in text
    for target in ("venv", "lab", "learner", "notebook"):
        assert re.search(rf"^{target}:", (ROOT / "Makefile").read_text(), re.M), f"no `make {target}`"


def test_every_documented_tool_exists():
    text = PAGE.read_text()
    for module in set(re.findall(r"python -m (tools\.\w+)", text)):
        assert (ROOT / (module.replace(".", "/") + ".py")).is_file(), f"{module} is documented but missing"
    assert "make notebook NB=chapters/01-chain-rule.md" in text
    assert "git checkout -- chapters/01-chain-rule.ipynb" in text


def test_what_documented_commands_write_is_gitignored():
    ignored = (ROOT / ".gitignore").read_text().splitlines()
    assert "learner/" in ignored and ".ipynb_checkpoints/" in ignored
    assert "jupytext --to" not in PAGE.read_text(), "jupytext --to writes untracked files"


CHAPTER = MYST_HEADER + textwrap.dedent("""\

    # Errors on purpose

    ```{code-cell} ipython3
    print("before")
    ```

    ```{code-cell} ipython3
    :tags: [raises-exception]

    1 / 0
    ```

    ```{code-cell} ipython3
    print("after")
    ```
    """)


def test_run_chapter_goes_past_an_expected_error_and_writes_nothing(tmp_path):
    chapters = tmp_path / "chapters"
    chapters.mkdir()
    md = chapters / "01-errors.md"
    md.write_text(CHAPTER)
    run = subprocess.run([sys.executable, "-m", "tools.run_chapter", str(md)], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "before" in run.stdout and "ZeroDivisionError: division by zero" in run.stdout
    assert run.stdout.index("ZeroDivisionError") < run.stdout.index("after")
    assert sorted(p.name for p in chapters.iterdir()) == ["01-errors.md"]


def test_run_chapter_stops_at_an_unexpected_error(tmp_path):
    md = tmp_path / "01-broken.md"
    md.write_text(CHAPTER.replace(":tags: [raises-exception]\n\n", ""))
    assert run_chapter.main([str(md)]) == 1
