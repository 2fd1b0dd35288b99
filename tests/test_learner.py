"""The learner edition (tools.learner): solutions out of sight, plain Markdown, runs top to bottom."""
import re
import shutil
import textwrap
from pathlib import Path

import jupytext
import nbformat
import pytest

from tools import learner
from tools.toc import toc_notebooks
from tests.fixtures import MYST_HEADER

ROOT = Path(__file__).resolve().parent.parent
HEADER = MYST_HEADER

CHAPTER = HEADER + textwrap.dedent("""\
    # Squares

    ```{code-cell} ipython3
    :tags: [remove-cell]

    %xmode Minimal
    def check_square(fn):
        ok = fn is not None and fn(3) == 9
        print("correct" if ok else "no answer yet")
        return ok
    ```

    (sec-squares)=
    ## Squares by hand

    The {term}`gradient <gradient (of a scalar)>` of $x^2$ is $2x$ ({cite:t}`parr_howard_2018`;
    see also {cite:p}`baydin_2018`). {numref}`fig-line` plots it, {ref}`sec-squares` explains it, and
    {doc}`the next chapter <02-next>` and {doc}`../running-locally` go further.

    ```{code-cell} ipython3
    ---
    mystnb:
      figure:
        caption: A line of slope 2.
        name: fig-line
      image:
        alt: A straight line rising from the bottom left to the top right of the axes.
    ---
    print("a figure would be drawn here")
    ```

    :::{note}
    Gradients add up along every path.
    :::

    ## Exercises

    :::{exercise}
    :label: ex-square

    Write `square(x)`. Then compare with {ref}`ex-square`.
    :::

    ```{code-cell} ipython3
    square = None   # your function here
    check_square(square);
    ```

    ````{solution-start} ex-square
    :class: dropdown
    ````

    SECRET-PROSE: multiply the number by itself.

    ```{code-cell} ipython3
    def square(x):
        return x * x  # SECRET-CODE

    check_square(square);
    ```

    ```{code-cell} ipython3
    :tags: [remove-cell]

    assert check_square(square)
    ```

    ````{solution-end}
    ````

    ```{code-cell} ipython3
    :tags: [remove-cell]

    assert check_square(square)
    helper_from_solution = square
    ```

    An expected error: dividing by zero raises a `ZeroDivisionError`.

    ```{code-cell} ipython3
    :tags: [raises-exception]

    1 / 0
    ```

    ## Summary

    Squares are easy.
    """)


@pytest.fixture
def chapter(tmp_path):
    root = tmp_path / "book"
    (root / "chapters").mkdir(parents=True)
    shutil.copy(ROOT / "references.bib", root / "references.bib")
    (root / "running-locally.md").write_text("# Running the course locally\n")
    (root / "chapters" / "02-next.md").write_text(HEADER + "# The next chapter\n")
    md = root / "chapters" / "01-squares.md"
    md.write_text(CHAPTER)
    return md


def _text(nb) -> str:
    return "\n".join(c.source for c in nb.cells)


def test_solutions_are_left_out(chapter):
    nb = learner.learner_notebook(chapter)
    text = _text(nb)
    assert "SECRET-PROSE" not in text and "SECRET-CODE" not in text
    assert "solution-start" not in text and "solution-end" not in text and "ex-square" not in text
    # the hidden assertion after the solution expects the right answer: it is dropped too
    assert "assert check_square" not in text
    # the stub and its self-check stay
    assert "square = None   # your function here" in text


def test_myst_becomes_plain_markdown(chapter):
    nb = learner.learner_notebook(chapter)
    assert learner.problems(nb) == []
    text = _text(nb)
    assert "> **Exercise 1**" in text and ":label:" not in text
    assert "Then compare with Exercise 1." in text
    assert "The gradient of $x^2$" in text
    assert "Parr and Howard (2018)" in text and "(Baydin et al., 2018)" in text
    assert "Figure 1 plots it" in text and "*Figure 1. A line of slope 2.*" in text
    assert "Squares by hand explains it" in text
    assert "[the next chapter](02-next.ipynb)" in text
    assert "[Running the course locally](../running-locally.md)" in text
    assert "> **Note**" in text and "(sec-squares)=" not in text


def test_outputs_cleared_hidden_cells_collapsed_no_pairing(chapter):
    nb = learner.learner_notebook(chapter)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.outputs == [] and c.execution_count is None for c in code)
    setup = code[0]
    assert "%xmode Minimal" in setup.source and setup.metadata["jupyter"]["source_hidden"] is True
    assert "jupytext" not in nb.metadata
    assert nb.cells[1].source.startswith("*Learner edition")


def test_the_learner_edition_runs_top_to_bottom(chapter, tmp_path):
    path, _ = learner.write(chapter, tmp_path / "learner")
    learner.execute(path)          # raises NotebookFailed on any unexpected error


def test_problems_finds_raw_myst():
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(t) for t in (
        "````{solution-start} ex\n````", "See {term}`gradient`.", ":::{note}\nx\n:::", "(a-label)=",
        "```python\n# {term}`in code is fine`\n```")])
    found = learner.problems(nb)
    assert {p.split(":")[1].strip() for p in found} == {"cell 1", "cell 2", "cell 3", "cell 4"}


def test_cli_writes_and_checks(chapter, tmp_path, capsys):
    out = tmp_path / "out"
    assert learner.main([str(chapter), "--out", str(out), "--check"]) == 0
    assert (out / "01-squares.ipynb").is_file()
    assert learner.main(["glossary.md", "--out", str(out)]) == 2


# ---- every chapter of the book -----------------------------------------------------------------

CHAPTERS = [ROOT / p.with_suffix(".md") for p in toc_notebooks(ROOT)]


def _solution_cells(md: Path):
    nb = jupytext.read(md)
    _, dropped = learner._split_solutions(nb)
    return [c for c in dropped if c.source.strip()]


@pytest.mark.parametrize("md", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_every_chapter_has_a_clean_learner_edition_that_runs(md, tmp_path):
    """Generated for every toc chapter, no solution text, no raw MyST, runs top to bottom."""
    path, _ = learner.write(md, tmp_path)
    nb = nbformat.read(path, as_version=4)
    assert learner.problems(nb, path) == []
    sources = {c.source.strip() for c in nb.cells}
    prose = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    for cell in _solution_cells(md):
        gone = cell.source.strip()
        if cell.cell_type == "code":
            assert gone not in sources, f"{md.name}: a solution cell is in the learner edition:\n{gone[:300]}"
            continue
        for para in (p.strip() for p in gone.split("\n\n")):
            if len(para) > 60 and not para.startswith(("```", ":::")):
                assert para not in prose, f"{md.name}: solution prose in the learner edition:\n{para[:300]}"
    learner.execute(path)


# ---- the learner's work is sacred ----------------------------------------------------------------

def test_an_edited_learner_notebook_is_never_changed(chapter, tmp_path, capsys):
    out = tmp_path / "learner"
    assert learner.main([str(chapter), "--out", str(out)]) == 0
    path = out / "01-squares.ipynb"
    nb = nbformat.read(path, as_version=4)
    nb.cells[-1].source += "\n# my answer, saved yesterday"
    nbformat.write(nb, path)
    mine = path.read_bytes()
    # make lab's first step again, with the book unchanged and then changed: the file stays byte-identical
    capsys.readouterr()
    assert learner.main([str(chapter), "--out", str(out)]) == 0
    assert path.read_bytes() == mine
    assert "kept (yours)" in capsys.readouterr().out        # the book has not changed: no warning
    chapter.write_text(chapter.read_text() + "\nA new paragraph in the book.\n")
    capsys.readouterr()
    assert learner.main([str(chapter), "--out", str(out)]) == 0
    assert path.read_bytes() == mine
    said = capsys.readouterr().out
    assert "kept, older than the book" in said and "Your work is kept" in said and "FORCE=1" in said
    # --force writes the book's version and keeps the learner's as a backup, byte for byte
    assert learner.main([str(chapter), "--out", str(out), "--force"]) == 0
    assert (out / "01-squares.ipynb.bak").read_bytes() == mine
    assert "A new paragraph in the book." in path.read_text()


def test_an_untouched_learner_notebook_follows_the_book(chapter, tmp_path):
    out = tmp_path / "learner"
    path, status = learner.write(chapter, out)
    assert status == "created"
    assert learner.write(chapter, out) == (path, "unchanged")
    chapter.write_text(chapter.read_text() + "\nA new paragraph in the book.\n")
    assert learner.write(chapter, out) == (path, "updated")
    assert "A new paragraph in the book." in path.read_text()
    path.unlink()                                   # a learner who deletes one gets it back
    assert learner.write(chapter, out)[1] == "created"


def test_each_exercise_links_its_solution(chapter):
    nb = learner.learner_notebook(chapter)
    exercises = [c.source for c in nb.cells if c.cell_type == "markdown" and "**Exercise" in c.source]
    assert exercises
    for text in exercises:
        link = re.search(r"\[Open the solution to Exercise (\d+)\]\(([^)]+)\)", text)
        assert link, text
        assert link.group(2).endswith("chapters/01-squares.md") or "#" in link.group(2)


def test_solution_links_go_to_the_book_when_its_url_is_set(chapter, monkeypatch):
    monkeypatch.setattr(learner, "book_settings",
                        lambda config=None: {"baseurl": "https://example.org/book/", "repository": ""})
    text = "\n".join(c.source for c in learner.learner_notebook(chapter).cells)
    assert re.search(r"\(https://example\.org/book/chapters/01-squares\.html#[\w-]+\)", text)
    assert "%pip" not in text                       # no repository: no install cell


def test_the_install_cell_installs_only_where_gradlab_is_missing(monkeypatch):
    """Offline: the first cell of a learner notebook is a no-op here and pip-installs on Colab."""
    from IPython.core.inputtransformer2 import TransformerManager
    source = learner.install_cell_source("https://example.org/course")
    python = TransformerManager().transform_cell(source)      # %pip as IPython runs it
    calls = []

    class Shell:
        def run_line_magic(self, name, line):
            calls.append((name, line))
    import importlib.util
    exec(python, {"get_ipython": lambda: Shell()})            # gradlab is installed here
    assert calls == []
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    namespace = {"get_ipython": lambda: Shell()}
    exec(python, namespace)                                   # a machine without it (Colab)
    # IPython expands {repository} in a magic's line from the cell's namespace
    assert calls == [("pip", 'install --quiet "gradlab @ git+{repository}"')]
    assert namespace["repository"] == "https://example.org/course"
    assert all(len(line) <= 88 for line in learner.install_cell_source("https://" + "x" * 60).splitlines())


@pytest.mark.parametrize("md", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_every_chapter_and_its_learner_notebook_start_with_the_install_cell(md):
    """Colab (the launch button, or an uploaded learner notebook) gets gradlab; locally a no-op."""
    repository = learner.book_settings()["repository"]
    want = learner.install_cell_source(repository)
    first = next(c for c in jupytext.read(md).cells if c.cell_type == "code")
    assert repository and first.source == want, f"{md.name}: the first code cell must be:\n{want}"
    assert "remove-cell" in first.metadata.get("tags", [])
    first_learner = next(c for c in learner.learner_notebook(md).cells if c.cell_type == "code")
    assert first_learner.source == want
