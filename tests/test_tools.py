"""The book's checks must be able to fail: the pair check and the nbval audit on broken trees."""
import shutil
import textwrap
from pathlib import Path

import nbformat
import pytest

from tools import check_nbval_report, check_pairs, notebook, toc

HEADER = textwrap.dedent("""\
    ---
    jupytext:
      formats: ipynb,md:myst
      text_representation:
        extension: .md
        format_name: myst
        format_version: 0.13
    kernelspec:
      display_name: Python 3 (ipykernel)
      language: python
      name: python3
    ---
    """)

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


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    """A one-chapter book whose notebook was really regenerated and executed (once per module)."""
    root = tmp_path_factory.mktemp("book")
    (root / "chapters").mkdir()
    (root / "chapters" / "01-tiny.md").write_text(CHAPTER)
    (root / "_toc.yml").write_text("format: jb-book\nroot: intro\nchapters:\n  - file: chapters/01-tiny.ipynb\n")
    notebook.build(root / "chapters" / "01-tiny.md")
    return root


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
