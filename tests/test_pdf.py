"""tools.pdf's check on small PDFs made here (matplotlib + pypdf), and the download-menu extension.

The real book's PDF is checked by the browser test (tests/browser/test_pdf.py) and by `make pdf`.
"""
import json
import sys
from pathlib import Path
from types import SimpleNamespace

import matplotlib
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.backends.backend_pdf import PdfPages  # noqa: E402
from pypdf import PdfReader, PdfWriter  # noqa: E402
from pypdf.generic import (  # noqa: E402
    ArrayObject, DictionaryObject, FloatObject, NameObject, TextStringObject)

from tools.pdf import check_pdf, page_title, printed_titles, toc_files  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "_ext"))
import pair_downloads  # noqa: E402

TITLES = ["1. The chain rule", "2. Autograd mechanics"]


def _make_pdf(path: Path, pages: list[str], *, image_on: int | None = 0, link: str | None = "ok"):
    """One page per text; an image on page image_on; an internal link on page 0 (to a named
    destination that exists when link == "ok", to a missing one when link == "dangling")."""
    with plt.rc_context({"pdf.fonttype": 42}), PdfPages(path) as pdf:
        for i, text in enumerate(pages):
            fig = plt.figure(figsize=(8.27, 11.69))
            fig.text(0.1, 0.9, text, fontsize=14, usetex=False, parse_math=False)
            if i == image_on:
                ax = fig.add_axes([0.1, 0.3, 0.5, 0.4])
                ax.imshow(np.arange(64.0).reshape(8, 8))
            pdf.savefig(fig)
            plt.close(fig)
    if link is None:
        return
    writer = PdfWriter(clone_from=PdfReader(path))
    writer.add_named_destination("chapter-2", len(pages) - 1)
    target = "chapter-2" if link == "ok" else "no-such-place"
    annot = DictionaryObject({
        NameObject("/Type"): NameObject("/Annot"),
        NameObject("/Subtype"): NameObject("/Link"),
        NameObject("/Rect"): ArrayObject([FloatObject(v) for v in (50, 50, 200, 80)]),
        NameObject("/Dest"): TextStringObject(target),
    })
    writer.add_annotation(0, annot)
    with open(path, "wb") as f:
        writer.write(f)


def test_a_good_pdf_passes(tmp_path):
    pdf = tmp_path / "book.pdf"
    _make_pdf(pdf, [TITLES[0] + ": derivatives", TITLES[1] + " in PyTorch", "Summary"])
    report = check_pdf(pdf, TITLES, min_images=1, min_pages=3)
    assert report.problems == []
    assert (report.pages, report.images, report.links) == (3, 1, 1)


def test_a_missing_chapter_title_is_reported(tmp_path):
    pdf = tmp_path / "book.pdf"
    _make_pdf(pdf, [TITLES[0], "Summary"])
    problems = check_pdf(pdf, TITLES, min_pages=1).problems
    assert problems == [f"title {TITLES[1]!r} is not in the PDF's text"]


@pytest.mark.parametrize("tex", ["$$x^2$$", r"\frac{a}{b}"])
def test_raw_tex_is_reported(tmp_path, tex):
    pdf = tmp_path / "book.pdf"
    _make_pdf(pdf, [TITLES[0], TITLES[1], f"the gradient {tex} unrendered"])
    problems = check_pdf(pdf, TITLES, min_pages=1).problems
    assert len(problems) == 1 and problems[0].startswith("raw TeX")


def test_too_few_pages_and_missing_images_are_reported(tmp_path):
    pdf = tmp_path / "book.pdf"
    _make_pdf(pdf, TITLES, image_on=None)
    problems = check_pdf(pdf, TITLES, min_images=3, min_pages=20).problems
    assert problems == ["2 pages, expected at least 20", "0 images in the PDF, the book shows 3"]


def test_missing_and_dangling_internal_links_are_reported(tmp_path):
    pdf = tmp_path / "none.pdf"
    _make_pdf(pdf, TITLES, link=None)
    assert check_pdf(pdf, TITLES, min_pages=1).problems == ["no internal link"]
    pdf = tmp_path / "dangling.pdf"
    _make_pdf(pdf, TITLES, link="dangling")
    problems = check_pdf(pdf, TITLES, min_pages=1).problems
    assert problems == ["1 internal links to no destination, e.g. ['no-such-place']"]


def test_toc_files_and_titles_in_toc_order(tmp_path):
    (tmp_path / "_toc.yml").write_text(
        "format: jb-book\nroot: intro\nparts:\n"
        "  - caption: A\n    numbered: true\n    chapters:\n      - file: chapters/01-a.ipynb\n"
        "  - caption: B\n    chapters:\n      - file: glossary\n")
    (tmp_path / "intro.md").write_text("---\ntitle: x\n---\n# Gradients by *Hand*\n")
    (tmp_path / "glossary.md").write_text("(glossary)=\n# Glossary\n")
    (tmp_path / "chapters").mkdir()
    nb = {"cells": [{"cell_type": "code", "source": ["# not a title"]},
                    {"cell_type": "markdown",
                     "source": ["# The `chain` rule and {term}`graphs`\n"]}]}
    (tmp_path / "chapters" / "01-a.ipynb").write_text(json.dumps(nb))
    files = toc_files(tmp_path)
    assert [f.relative_to(tmp_path).as_posix() for f in files] == [
        "intro.md", "chapters/01-a.ipynb", "glossary.md"]
    assert [page_title(f) for f in files] == [
        "Gradients by Hand", "The chain rule and graphs", "Glossary"]
    assert printed_titles(tmp_path) == [
        "Gradients by Hand", "1. The chain rule and graphs", "Glossary"]


def _context(label="download-buttons"):
    return {"header_buttons": [{"label": label, "buttons": [{"label": "download-source-button"}]}],
            "pathto": lambda name, resource=0: f"../{name}"}


def test_every_html_page_links_the_book_pdf_and_the_single_page_does_not():
    context = _context()
    app = SimpleNamespace(builder=SimpleNamespace(name="html"))
    pair_downloads.add_book_pdf_download(app, "chapters/01-a", "page.html", context, None)
    link = context["header_buttons"][0]["buttons"][-1]
    assert link["url"] == "../gradients-by-hand.pdf" and link["type"] == "link"
    single = _context()
    app.builder.name = "singlehtml"
    pair_downloads.add_book_pdf_download(app, "intro", "page.html", single, None)
    assert len(single["header_buttons"][0]["buttons"]) == 1


def test_the_single_page_build_gets_the_html_visitors():
    visit, depart = object(), object()
    own = (object(), object())
    handlers = {"html": {"HideCodeCellNode": (visit, depart), "exercise_node": own},
                "singlehtml": {"exercise_node": ("theirs", "theirs")}}
    app = SimpleNamespace(builder=SimpleNamespace(name="singlehtml"),
                          registry=SimpleNamespace(translation_handlers=handlers))
    pair_downloads.html_handlers_for_singlehtml(app)
    assert handlers["singlehtml"]["HideCodeCellNode"] == (visit, depart)
    assert handlers["singlehtml"]["exercise_node"] == ("theirs", "theirs")  # theirs kept
