"""The book as one PDF, as the built site offers it: present, linked from every page's download
menu, whole (tools.pdf's check: pages, numbered chapter titles, no raw TeX, images, internal
links) and usable as a book (check_book_pdf: bookmarks, contents page numbers, citation links on
their entries, solutions at the back, no local-server link, nothing past the margin, no check
scaffolding, the licence on the title page, metadata); every page's footer states the licence."""
from __future__ import annotations

import re

from tools.pdf import PDF_NAME, _licence_phrases, check_book_pdf, check_pdf, printed_titles

IMG = re.compile(r'<img[^>]*\ssrc="(?:\.\./)*(_images/[^"]+)"')


def _pages(site):
    return [p for p in site.rglob("*.html")
            if not p.relative_to(site).as_posix().startswith("_static/")
            and p.name not in ("search.html", "genindex.html", "index.html")]


def test_every_page_links_the_book_pdf(site):
    assert (site / PDF_NAME).is_file(), f"{PDF_NAME} is missing from {site} (run `make pdf`)"
    missing = [p.relative_to(site).as_posix() for p in _pages(site)
               if not re.search(r'href="(?:\.\./)*' + re.escape(PDF_NAME) + '"',
                                p.read_text(encoding="utf-8"))]
    assert not missing, f"pages whose download menu does not link {PDF_NAME}: {missing}"


def test_the_book_pdf_is_whole(site, stats):
    images = set()
    for page in _pages(site):
        images.update(IMG.findall(page.read_text(encoding="utf-8")))
    report = check_pdf(site / PDF_NAME, printed_titles(), min_images=len(images))
    stats["pdf"] = report.line()
    assert not report.problems, f"{PDF_NAME}: " + "; ".join(report.problems)


def test_the_book_pdf_is_a_book_a_reader_can_use(site, stats):
    report = check_book_pdf(site / PDF_NAME, printed_titles())
    stats["pdf"] = stats.get("pdf", "") + "; " + report.line()
    assert not report.problems, f"{PDF_NAME}: " + "; ".join(report.problems)


def test_every_page_footer_states_the_licence(site):
    phrases = list(_licence_phrases())
    missing = {p.relative_to(site).as_posix(): [w for w in phrases if w not in " ".join(
        re.sub(r"<[^>]+>", "", p.read_text(encoding="utf-8")).split())] for p in _pages(site)}
    missing = {k: v for k, v in missing.items() if v}
    assert not missing, f"pages whose footer lacks the licence: {missing}"


LONG_CODE = """<main><section id="t"><h1>T</h1>
<div class="cell"><div class="cell_input"><div class="highlight"><pre><span class="k">def</span> f(x):
    y = some_function_with_a_long_name(argument_one, argument_two, argument_three, argument_four, argument_five)
    return y
</pre></div></div></div>
<div class="math"><mjx-container display="true" style="display:block"><svg width="2000" height="20"
 viewBox="0 0 2000 20"></svg></mjx-container></div>
<table><tr><td style="white-space:nowrap">%s</td></tr></table>
</section></main>""" % ("wide " * 300)


def test_print_layout_fits_code_math_and_tables_to_the_text_column(browser_context):
    from tools.pdf import _LAYOUT, CODE_COLUMNS, PRINT_CSS, TEXT_WIDTH_PX

    page = browser_context.new_page()
    try:
        page.set_content(LONG_CODE)
        page.evaluate("(css) => { const s = document.createElement('style'); "
                      "s.textContent = css; document.head.appendChild(s); }", PRINT_CSS)
        page.emulate_media(media="print")
        page.set_viewport_size({"width": TEXT_WIDTH_PX, "height": 1000})
        laid = page.evaluate(_LAYOUT)
        lines = page.evaluate("() => Array.from(document.querySelectorAll('.code-line'), l => "
                              "[l.textContent, l.querySelectorAll('.code-cont').length, "
                              "(l.querySelector('.code-cont') || {style: {}}).style.paddingLeft])")
    finally:
        page.close()
    assert laid["code_columns"] >= CODE_COLUMNS and laid["too_wide"] == []
    assert laid["wrapped"] == 1 and lines[1][1:] == [1, "8ch"], lines  # indent 4, then 4 more
    assert [line[0] for line in lines][0] == "def f(x):" and len(lines) == 3
    assert laid["widest_math_before"] > 2 and laid["widest_math_after"] <= 1.001
    assert laid["widest_table_before"] > 1 and laid["widest_table_after"] <= 1.001
