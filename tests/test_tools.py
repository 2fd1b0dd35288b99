"""The book's checks must be able to fail: the pair check and the nbval audit on broken trees."""
import shutil
import textwrap
from pathlib import Path

import nbformat
import pytest

from tools import check_nbval_report, check_pairs, notebook, toc
from tests.fixtures import MYST_HEADER

HEADER = MYST_HEADER

CHAPTER = HEADER + textwrap.dedent("""\
    # A tiny chapter

    ```{code-cell} ipython3
    x = 6 * 7
    print(x)
    ```

    Some prose.

    ```{code-cell} ipython3
    x + 1
    ```
    """)


def _one_chapter_book(tmp_path_factory, name: str, text: str) -> Path:
    """A book of one chapter whose notebook was really regenerated and executed."""
    root = tmp_path_factory.mktemp(name)
    (root / "chapters").mkdir()
    (root / "chapters" / f"{name}.md").write_text(text)
    (root / "_toc.yml").write_text(f"format: jb-book\nroot: intro\nchapters:\n  - file: chapters/{name}.ipynb\n")
    notebook.build(root / "chapters" / f"{name}.md")
    return root


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    """A one-chapter book, executed once per module."""
    return _one_chapter_book(tmp_path_factory, "01-tiny", CHAPTER)


@pytest.fixture
def book(executed, tmp_path):
    root = tmp_path / "book"
    shutil.copytree(executed, root)
    return root


def test_toc_lists_notebooks(book):
    assert toc.toc_notebooks(book) == [Path("chapters/01-tiny.ipynb")]


def test_regenerated_notebook_is_executed_in_order_with_outputs(book):
    nb = nbformat.read(book / "chapters" / "01-tiny.ipynb", as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert [c.execution_count for c in code] == [1, 2]
    assert code[0].outputs[0]["text"] == "42\n"
    assert [c.id for c in nb.cells] == [f"cell-{i:03d}" for i in range(len(nb.cells))]
    assert "jupytext_version" not in str(nb.metadata)


def test_a_fresh_pair_passes(book):
    assert check_pairs.check_tree(book) == []


def test_edited_md_without_regeneration_fails(book):
    md = book / "chapters" / "01-tiny.md"
    md.write_text(md.read_text().replace("6 * 7", "6 * 8"))
    problems = check_pairs.check_tree(book)
    assert len(problems) == 1 and "cells differ" in problems[0] and "cell 2" in problems[0]


def test_edited_prose_without_regeneration_fails(book):
    md = book / "chapters" / "01-tiny.md"
    md.write_text(md.read_text().replace("Some prose.", "Other prose."))
    assert any("cells differ" in p for p in check_pairs.check_tree(book))


def test_changed_tags_fail(book):
    md = book / "chapters" / "01-tiny.md"
    md.write_text(md.read_text().replace("```{code-cell} ipython3\nx + 1", "```{code-cell} ipython3\n:tags: [raises-exception]\n\nx + 1"))
    assert any("cells differ" in p for p in check_pairs.check_tree(book))


def test_unexecuted_notebook_fails(book):
    path = book / "chapters" / "01-tiny.ipynb"
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.execution_count, cell.outputs = None, []
    nbformat.write(nb, path)
    problems = check_pairs.check_tree(book)
    assert any("never executed" in p for p in problems)
    assert any("no code cell has a stored output" in p for p in problems)


def test_out_of_order_execution_fails(book):
    path = book / "chapters" / "01-tiny.ipynb"
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    code[0].execution_count, code[1].execution_count = 3, 2
    nbformat.write(nb, path)
    assert any("not 1..2 in order" in p for p in check_pairs.check_tree(book))


def test_missing_notebook_and_orphan_chapter_fail(book):
    (book / "chapters" / "01-tiny.ipynb").unlink()
    (book / "chapters" / "02-orphan.md").write_text(CHAPTER)
    problems = check_pairs.check_tree(book)
    assert any("01-tiny.ipynb: missing" in p for p in problems)
    assert any("02-orphan.md: a chapter notebook that _toc.yml does not list" in p for p in problems)


def test_empty_toc_fails(book):
    (book / "_toc.yml").write_text("format: jb-book\nroot: intro\n")
    assert any("lists no .ipynb" in p for p in check_pairs.check_tree(book))


# ---- the nbval audit ------------------------------------------------------------------------

def _report(path: Path, cases: list[tuple[str, str]]) -> Path:
    body = []
    for name, outcome in cases:
        inner = {"passed": "", "failed": "<failure message='x'/>", "skipped": "<skipped message='x'/>"}[outcome]
        body.append(f'<testcase classname="chapters.01-tiny.ipynb" name="{name}" file="chapters/01-tiny.ipynb">{inner}</testcase>')
    path.write_text('<?xml version="1.0"?><testsuites><testsuite>' + "".join(body) + "</testsuite></testsuites>")
    return path


def test_audit_passes_when_every_cell_passed(book):
    report = _report(book / "r.xml", [("Cell 0", "passed"), ("Cell 1", "passed")])
    assert check_nbval_report.audit(report, book) == []


def test_audit_fails_on_a_missing_cell(book):
    report = _report(book / "r.xml", [("Cell 0", "passed")])
    assert check_nbval_report.audit(report, book) == ["chapters/01-tiny.ipynb: nbval validated 1 of its 2 code cells"]


def test_audit_fails_on_skipped_or_failed_cells(book):
    report = _report(book / "r.xml", [("Cell 0", "passed"), ("Cell 1", "skipped")])
    problems = check_nbval_report.audit(report, book)
    assert any("skipped" in p for p in problems) and any("1 of its 2" in p for p in problems)
    report = _report(book / "r.xml", [("Cell 0", "failed"), ("Cell 1", "passed")])
    assert any("failure" in p for p in check_nbval_report.audit(report, book))


def test_audit_fails_without_a_report(book):
    assert "no nbval report" in check_nbval_report.audit(book / "missing.xml", book)[0]


# ---- nbval with the project's sanitize file -------------------------------------------------

ROOT = Path(__file__).resolve().parent.parent


def _nbval(path: Path) -> int:
    import subprocess
    import sys
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:xdist", "-p", "no:cacheprovider", "--nbval",
           "--nbval-current-env", "--nbval-sanitize-with", str(ROOT / "tests" / "nbval_sanitize.cfg"), str(path)]
    return subprocess.run(cmd, cwd=path.parent, capture_output=True, text=True).returncode


def test_nbval_fails_on_a_changed_output_and_ignores_addresses(book):
    path = book / "chapters" / "01-tiny.ipynb"
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    # A stored memory address that differs from the one printed now must not fail...
    code[0].outputs = [nbformat.v4.new_output("stream", name="stdout",
                                              text="<A object at 0xdeadbeef>\n")]
    code[1].source = "print('42')"
    code[1].outputs = [nbformat.v4.new_output("stream", name="stdout", text="42\n")]
    code[0].source = "print(f'<A object at {hex(id(object()))}>')"
    nbformat.write(nb, path)
    assert _nbval(path) == 0
    # ...while a changed number must.
    code[1].outputs = [nbformat.v4.new_output("stream", name="stdout", text="43\n")]
    nbformat.write(nb, path)
    assert _nbval(path) == 1


# ---- make notebook accepts exactly the chapter sources ---------------------------------------

@pytest.mark.parametrize("arg", ["chapters/01-tiny.md", "chapters/01-tiny", "chapters/01-tiny.ipynb"])
def test_notebook_accepts_a_chapter_with_or_without_suffix(book, monkeypatch, arg):
    monkeypatch.chdir(book)
    assert notebook.chapter_source(arg) == Path("chapters/01-tiny.md")


@pytest.mark.parametrize("arg, message", [
    ("glossary.md", "not a chapter"),
    ("chapters", "is a folder"),
    ("chapters/", "is a folder"),
    ("chapters/notes.md", "not a chapter"),
    ("chapters/01-tiny.txt", "not a chapter source"),
    ("chapters/09-missing.md", "no such chapter source"),
    ("chapters/02-plain.md", "not a MyST markdown notebook"),
    ("", "no chapter given"),
])
def test_notebook_refuses_anything_else_clearly(book, monkeypatch, capsys, arg, message):
    monkeypatch.chdir(book)
    (book / "glossary.md").write_text("# Glossary\n")
    (book / "chapters" / "notes.md").write_text(CHAPTER)
    (book / "chapters" / "02-plain.md").write_text("# Just Markdown\n")
    with pytest.raises(notebook.NotAChapter, match=message):
        notebook.chapter_source(arg)
    if arg:
        assert notebook.main([arg]) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err
    assert not (book / "glossary.ipynb").exists() and not (book / "chapters" / "notes.ipynb").exists()


# ---- the files are in exactly the form jupytext (and so JupyterLab) writes --------------------

LONG = HEADER + textwrap.dedent("""\
    # A chapter with a figure

    ```{code-cell} ipython3
    ---
    mystnb:
      figure:
        caption: A caption much longer than the eighty columns at which the YAML writer of jupytext wraps.
        name: fig-long
      image:
        alt: A straight blue line rising from the bottom left to the top right corner of the axes.
    ---
    print("figure")
    ```
    """)


def test_build_writes_both_files_in_jupytexts_canonical_form(book):
    import jupytext
    from jupytext.config import load_jupytext_config
    md = book / "chapters" / "01-tiny.md"
    md.write_text(LONG)
    notebook.build(md)
    text = md.read_text()
    assert text != LONG, "the hand-wrapped YAML was not rewritten in jupytext's form"
    config = load_jupytext_config(str(md))
    assert jupytext.writes(jupytext.read(md), fmt="md:myst", config=config) == text
    ipynb = (book / "chapters" / "01-tiny.ipynb").read_text()
    nb = nbformat.reads(ipynb, as_version=4)
    assert "text_representation" not in nb.metadata["jupytext"]
    assert jupytext.writes(nb, fmt="ipynb") + "\n" == ipynb
    assert check_pairs.check_tree(book) == [] or all("alt" not in p for p in check_pairs.check_tree(book))


# ---- the pair check compares what the book renders and what each cell must show ---------------

FIGURE_CHAPTER = HEADER + textwrap.dedent("""\
    # Figures and errors

    ```{code-cell} ipython3
    :tags: [remove-cell]

    %xmode Minimal
    ```

    ```{code-cell} ipython3
    ---
    mystnb:
      figure:
        caption: A square.
        name: fig-square
      image:
        alt: A small grey square in the middle of white axes running from 0 to 1.
    ---
    from IPython.display import Image, display
    import base64
    png = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==")
    display(Image(data=png))
    ```

    Dividing by zero raises a `ZeroDivisionError`:

    ```{code-cell} ipython3
    :tags: [raises-exception]

    1 / 0
    ```

    ```{code-cell} ipython3
    print(6 * 7)
    ```

    ```{code-cell} ipython3
    2 + 3
    ```
    """)


@pytest.fixture(scope="module")
def figures(tmp_path_factory):
    return _one_chapter_book(tmp_path_factory, "01-fig", FIGURE_CHAPTER)


@pytest.fixture
def fig_book(figures, tmp_path):
    root = tmp_path / "fig"
    shutil.copytree(figures, root)
    return root


def _edit(path: Path, old: str, new: str):
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


def test_a_fresh_figure_chapter_passes(fig_book):
    assert check_pairs.check_tree(fig_book) == []


@pytest.mark.parametrize("old, new, key", [
    ("caption: A square.", "caption: A grey square.", "mystnb"),
    ("alt: A small grey square", "alt: A tiny grey square", "mystnb"),
    ("name: fig-square", "name: fig-other", "mystnb"),
    (":tags: [remove-cell]\n", "---\njupyter:\n  source_hidden: true\ntags: [remove-cell]\n---\n", "jupyter"),
])
def test_changed_caption_alt_name_or_hidden_flag_fails(fig_book, old, new, key):
    _edit(fig_book / "chapters" / "01-fig.md", old, new)
    problems = check_pairs.check_tree(fig_book)
    assert any("cells differ" in p and key in p for p in problems), problems


def _stored(root: Path):
    path = root / "chapters" / "01-fig.ipynb"
    return path, nbformat.read(path, as_version=4)


@pytest.mark.parametrize("source, what", [("print(6 * 7)", "output"), ("2 + 3", "output"),
                                          ("display(Image", "image"), ("1 / 0", "error")])
def test_a_removed_output_fails(fig_book, source, what):
    path, nb = _stored(fig_book)
    cell = next(c for c in nb.cells if c.cell_type == "code" and source in c.source)
    cell.outputs = []
    nbformat.write(nb, path)
    problems = check_pairs.check_tree(fig_book)
    assert any(f"no stored {what}" in p for p in problems), problems


def test_a_syntax_error_in_an_expected_error_cell_fails(fig_book):
    path, nb = _stored(fig_book)
    cell = next(c for c in nb.cells if "1 / 0" in c.source)
    cell.outputs = [nbformat.v4.new_output("error", ename="SyntaxError", evalue="invalid syntax", traceback=[])]
    nbformat.write(nb, path)
    problems = check_pairs.check_tree(fig_book)
    assert any("raises SyntaxError" in p and "names" in p for p in problems), problems


def test_an_expected_error_the_prose_does_not_name_fails_unless_tagged(fig_book):
    md = fig_book / "chapters" / "01-fig.md"
    _edit(md, "Dividing by zero raises a `ZeroDivisionError`:", "Dividing by zero fails:")
    notebook.build(md)
    assert any("raises ZeroDivisionError" in p for p in check_pairs.check_tree(fig_book))
    _edit(md, ":tags: [raises-exception]", ":tags: [raises-exception, 'raises:ZeroDivisionError']")
    notebook.build(md)
    assert check_pairs.check_tree(fig_book) == []
    _edit(md, "'raises:ZeroDivisionError'", "'raises:RuntimeError'")
    notebook.build(md)
    assert any("its tag says raises:RuntimeError" in p for p in check_pairs.check_tree(fig_book))


@pytest.mark.parametrize("alt", ["", "square.png", "figures/square.png", "_build/x/fig-1.svg", "figure"])
def test_alt_text_that_is_a_file_name_is_missing(fig_book, alt):
    md = fig_book / "chapters" / "01-fig.md"
    _edit(md, "alt: A small grey square in the middle of white axes running from 0 to 1.", f"alt: '{alt}'")
    notebook.build(md)
    assert any("without real alt text" in p for p in check_pairs.check_tree(fig_book))


def test_real_alt_text_is_not_missing():
    assert not check_pairs.missing_alt("A blue parabola from x = 0 to 5 touching a dashed line.")
    assert check_pairs.missing_alt(None) and check_pairs.missing_alt("C:\\figs\\a.png")


# ---- a toc entry pointing at a missing notebook is named, never swallowed ---------------------

def test_toc_names_a_missing_notebook(book, capsys):
    (book / "chapters" / "01-tiny.ipynb").unlink()
    assert toc.main([str(book)]) == 1
    err = capsys.readouterr().err
    assert "chapters/01-tiny.ipynb, which does not exist" in err
    assert toc.main(["--sources", str(book)]) == 0       # `make notebooks` can still create it


def test_audit_names_a_missing_notebook(book):
    report = _report(book / "r.xml", [("Cell 0", "passed"), ("Cell 1", "passed")])
    (book / "chapters" / "01-tiny.ipynb").unlink()
    problems = check_nbval_report.audit(report, book)
    assert any("chapters/01-tiny.ipynb, which does not exist" in p for p in problems)


def test_make_nbval_stops_on_the_toc_check():
    recipe = (ROOT / "Makefile").read_text().split("\nnbval:")[1].split("\n\n")[0]
    assert 'notebooks="$$($(PY) -m tools.toc)"' in recipe, "a failing toc check must stop make nbval"
    assert "-p tools.nbval_hints" in recipe


# ---- nbval: the error type is compared, and a mismatch says what to do ------------------------

def _nbval_run(path: Path, *extra: str):
    import subprocess
    import sys
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:xdist", "-p", "no:cacheprovider", "--nbval",
           "--nbval-current-env", "--nbval-sanitize-with", str(ROOT / "tests" / "nbval_sanitize.cfg"),
           *extra, str(path)]
    env = dict(__import__("os").environ, PYTHONPATH=str(ROOT))
    return subprocess.run(cmd, cwd=path.parent, capture_output=True, text=True, env=env)


def test_nbval_compares_the_error_type(fig_book):
    path, nb = _stored(fig_book)
    assert _nbval_run(path).returncode == 0
    cell = next(c for c in nb.cells if "1 / 0" in c.source)
    cell.outputs[0]["ename"] = "RuntimeError"
    nbformat.write(nb, path)
    assert _nbval_run(path).returncode == 1


def test_nbval_failure_says_how_to_regenerate_or_restore(book):
    path = book / "chapters" / "01-tiny.ipynb"
    nb = nbformat.read(path, as_version=4)
    next(c for c in nb.cells if c.cell_type == "code").outputs[0]["text"] = "43\n"
    nbformat.write(nb, path)
    run = _nbval_run(path, "-p", "tools.nbval_hints")
    assert run.returncode == 1 and "Cell outputs differ" in run.stdout
    assert "make notebook NB=" in run.stdout and "git checkout -- " in run.stdout
    assert "01-tiny.ipynb" in run.stdout.split("what to do")[-1]


def test_notebook_merges_stream_pieces_into_one_output():
    import nbformat as _nbf

    from tools.notebook import merge_streams

    nb = _nbf.v4.new_notebook()
    cell = _nbf.v4.new_code_cell("print('a'); print('b')")
    cell.outputs = [_nbf.v4.new_output("stream", name="stdout", text="a\n"),
                    _nbf.v4.new_output("stream", name="stdout", text="b\n"),
                    _nbf.v4.new_output("stream", name="stderr", text="w\n"),
                    _nbf.v4.new_output("stream", name="stdout", text="c\n")]
    nb.cells = [cell, _nbf.v4.new_markdown_cell("text")]
    merge_streams(nb)
    assert [(o["name"], o["text"]) for o in nb.cells[0].outputs] == [
        ("stdout", "a\nb\n"), ("stderr", "w\n"), ("stdout", "c\n")]
