"""At a 1280 px window, no code cell and no printed output of a chapter scrolls sideways.

Code lines fit 88 columns and printed lines 100 (tools.check_pages); _static/page-width.css sizes
the content column and the fonts so that they also fit on the page. Hidden content (closed
solutions) has no width and is not judged.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.browser.test_site import _pages

_OVERFLOW = """() => [...document.querySelectorAll('div.cell_input pre, div.cell_output pre')]
  .filter(p => p.clientWidth > 0 && p.scrollWidth > p.clientWidth + 1)
  .map(p => ({width: p.clientWidth, needed: p.scrollWidth,
              line: p.textContent.split('\\n').reduce((a, b) => b.length > a.length ? b : a, '')}))"""


@pytest.mark.parametrize("page_path", [p for p in _pages() if p.startswith("chapters/")]
                         or ["<no built site>"])
def test_no_code_or_output_scrolls_sideways_at_1280px(page_path, site, base_url, browser_context):
    assert (site / page_path).is_file(), f"no built chapter at {site / page_path}: run `make book`"
    page = browser_context.new_page()
    try:
        page.set_viewport_size({"width": 1280, "height": 900})
        page.goto(base_url + page_path, wait_until="load")
        wide = page.evaluate(_OVERFLOW)
    finally:
        page.close()
    assert not wide, f"{page_path}: {len(wide)} block(s) scroll sideways at 1280 px, e.g. " + "; ".join(
        f"{w['needed']} px in {w['width']} px: {w['line'][:70]!r}" for w in wide[:3])


def test_the_width_rules_are_in_the_stylesheet():
    css = (Path(__file__).resolve().parents[2] / "_static" / "page-width.css").read_text()
    assert "font-size" in css and "bd-article-container" in css
