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


# -- the reader's book (issue 23): the single page's transforms, the licence, the book check ------

import single_page  # noqa: E402  (from _ext, on the path above)
import licence_footer  # noqa: E402
from docutils import nodes  # noqa: E402
from sphinx import addnodes  # noqa: E402

from tools.pdf import (  # noqa: E402
    _licence_phrases, bib_first_authors, book_metadata, check_book_pdf, finish_pdf)


@pytest.mark.parametrize("source, expected", [
    # a value exercise: the answer stays, the check with its answer key goes
    ('answer = None   # your list here\ncheck(answer, "gx1:f:3:1e-03:1e-08:596:a5e2")\n',
     "answer = None   # your list here"),
    # a coding exercise's check cell: helpers, their import and the call all go
    ("from gradlab.exercises import check_code, Rules\n\ndef make_case(g):\n    return {}\n\n"
     "def reference(x):\n    return {}\n\n# run it\ncheck_code(linear_backward, make_case, "
     "reference, rules=Rules())\n", None),
    # a solution: the function stays, the call of its check goes
    ("def f(x):\n    return 2 * x\n\ncheck_f();\n", "def f(x):\n    return 2 * x"),
    ("def check_f():\n    return check_tensors({}, {})\n\ncheck_f();\n", None),
    ("assert check_f()\nprint(1)\n", "print(1)"),
    ("result = check_code(f, make_case, reference)\n", None),
    # a check joined to another: both go, and the helper only the other part calls
    ("def hints():\n    print(1)\n\nx = 3\ncheck_code(f, make_case, ref) or hints();\n", "x = 3"),
    ("check_backward() and check_backward(calls=2);\n", None),
])
def test_check_scaffolding_is_stripped(source, expected):
    text, had = single_page.strip_checks(source)
    assert had and text == expected


@pytest.mark.parametrize("source", ["x = compare(a, b)\n", "%timeit f(x)\ncheck(x, 'k')\n",
                                    "def f():\n    check(x, 'k')\n"])
def test_code_without_a_top_level_check_is_kept(source):
    assert single_page.strip_checks(source) == (source, False)


def _page(doc, *children):
    start = addnodes.start_of_file(docname=doc)
    start.extend(children)
    return start


def test_ids_repeated_across_pages_are_renamed_and_links_follow():
    root = nodes.document(None, None)
    root["docname"] = "intro"
    a = nodes.section(ids=["summary"])
    a += nodes.title("", "Summary")
    cite_a = nodes.inline(ids=["id1"])
    link_a = nodes.reference("", "x", refid="summary")
    b = nodes.section(ids=["summary"])
    b += nodes.title("", "Summary")
    entry = nodes.citation(ids=["id1"])
    link_b = nodes.reference("", "y", refuri="#document-refs#id1")
    only = nodes.section(ids=["unique"])
    root += _page("ch1", a, cite_a, link_a, link_b, only)
    root += _page("refs", b, entry)
    renamed = single_page.unique_ids(root, {"ch1": {"#summary": (1, 3)}})
    assert a["ids"] == ["ch1--summary"] and b["ids"] == ["refs--summary"]
    assert a[0]["secnumber"] == (1, 3), "a renamed section keeps its number"
    assert link_a["refid"] == "ch1--summary"
    assert entry["ids"] == ["refs--id1"] and link_b["refuri"] == "#document-refs#refs--id1"
    assert only["ids"] == ["unique"] and "unique" not in renamed["ch1"]


def test_licence_block_and_build_date():
    assert licence_footer.build_date({"SOURCE_DATE_EPOCH": "1700000000"}) == "2023-11-14"
    root = Path(__file__).resolve().parent.parent
    config = __import__("yaml").safe_load((root / "_config.yml").read_text())
    facts = licence_footer.facts(root, config["repository"]["url"], config["author"],
                                 {"SOURCE_DATE_EPOCH": "1700000000"})
    text = licence_footer.licence_text(facts)
    assert "built 2023-11-14" in text and "CC BY 4.0" in text and "MIT" in text
    for phrase in _licence_phrases(root):  # what the PDF check looks for on the title page
        assert phrase in text, phrase


def test_bib_first_authors(tmp_path):
    (tmp_path / "references.bib").write_text(
        "@article{baydin_2018,\n  author = {Baydin, At{\\i}l{\\i}m and Pearlmutter, B.},\n"
        "  year = {2018},\n}\n@misc{docs,\n  author       = {{PyTorch Contributors}},\n}\n"
        "@book{d2l,\n  author = {Aston Zhang and Zachary Lipton},\n}\n")
    assert bib_first_authors(tmp_path) == {
        "baydin-2018": "Baydin", "docs": "PyTorch Contributors", "d2l": "Zhang"}


def _book_sources(root: Path):
    (root / "_config.yml").write_text("title: A Book\nauthor: The Authors\n"
                                      "repository:\n  url: https://example.org/book\n")
    (root / "CITATION.cff").write_text("title: 'A Book: gradients, checked'\nkeywords: [a, b]\n")
    (root / "references.bib").write_text("")


def _book_pdf(path: Path, contents_numbers=True, local_link=False):
    """A tiny book: title page, contents (links to two headings), chapter, section."""
    _make_pdf(path, ["A Book", "Contents", "1. Chapter A", "1.1. Section B"], image_on=None,
              link=None)
    writer = PdfWriter(clone_from=PdfReader(path))
    for name, page in (("chapter-a", 2), ("section-b", 3)):
        writer.add_named_destination(name, page)
    for k, name in enumerate(("chapter-a", "section-b")):
        y = 600 - 30 * k
        writer.add_annotation(1, DictionaryObject({
            NameObject("/Type"): NameObject("/Annot"), NameObject("/Subtype"): NameObject("/Link"),
            NameObject("/Rect"): ArrayObject([FloatObject(v) for v in (60, y, 540, y + 15)]),
            NameObject("/Dest"): NameObject("/" + name)}))
    if local_link:
        writer.add_annotation(2, DictionaryObject({
            NameObject("/Type"): NameObject("/Annot"), NameObject("/Subtype"): NameObject("/Link"),
            NameObject("/Rect"): ArrayObject([FloatObject(v) for v in (60, 60, 200, 80)]),
            NameObject("/A"): DictionaryObject({
                NameObject("/S"): NameObject("/URI"),
                NameObject("/URI"): TextStringObject("http://127.0.0.1:4000/_images/a.png")})}))
    with open(path, "wb") as f:
        writer.write(f)
    headings = [{"level": 1, "title": "A Book", "id": "top"},
                {"level": 1, "title": "Contents", "id": "book-contents"},
                {"level": 1, "title": "1. Chapter A", "id": "chapter-a"},
                {"level": 2, "title": "1.1. Section B", "id": "section-b"}]
    return headings


def test_finished_book_has_bookmarks_contents_numbers_and_metadata(tmp_path):
    _book_sources(tmp_path)
    tmp, pdf = tmp_path / "book.tmp.pdf", tmp_path / "book.pdf"
    headings = _book_pdf(tmp)
    done = finish_pdf(tmp, pdf, headings, book_metadata(tmp_path))
    assert done == {"bookmarks": 4, "contents_pages": 1, "numbers": 2}
    report = check_book_pdf(pdf, ["A Book", "1. Chapter A"], root=tmp_path, licence=())
    assert report.bookmarks == 4 and report.levels == {0: 3, 1: 1}
    assert report.contents_checked == 2
    # only what this tiny book lacks: a Solutions part
    assert report.problems == ["no bookmark 'Solutions' (in toc order)"]
    assert PdfReader(pdf).metadata["/Subject"] == "Gradients, checked"


def test_the_book_check_reports_what_a_reader_would_miss(tmp_path):
    _book_sources(tmp_path)
    pdf = tmp_path / "book.pdf"
    _book_pdf(pdf, local_link=True)  # printed, never finished: no bookmarks, no numbers
    problems = check_book_pdf(pdf, ["A Book"], root=tmp_path,
                              licence=("licensed under CC BY 4.0",)).problems
    text = "\n".join(problems)
    assert "no bookmark 'A Book'" in text and "no Contents bookmark" in text
    assert "links the local server: http://127.0.0.1:4000/_images/a.png" in text
    assert "the title page does not say 'licensed under CC BY 4.0'" in text
    assert "metadata /Author is None, not 'The Authors'" in text
