"""The whole book as one PDF, printed by headless Chromium from a single-page build; and its check.

    .venv/bin/python -m tools.pdf                 # -> _build/pdf/gradients-by-hand.pdf, checked
    .venv/bin/python -m tools.pdf --check FILE    # check a PDF already written

1. ``jupyter-book build . --builder singlehtml --path-output _build/pdf`` (warnings are errors):
   every page of ``_toc.yml`` in order in one HTML page, chapters numbered, cross-references
   rewritten as links within that page. ``_ext/single_page.py`` makes it a book for paper: ids
   unique across pages (so every cross-reference and citation lands on its target), solutions
   moved to a "Solutions" part at the end and linked both ways, the check scaffolding removed,
   the licence (``_ext/licence_footer.py``) on the title page.
2. That page is served on 127.0.0.1 and opened in the Chromium of the browser test
   (``tools.chromium``). Everything folded away on the web (hidden inputs) is opened; links to
   files of the build (a figure's image) are dropped, so none points at the temporary server; the
   script waits until MathJax (vendored in ``_static/mathjax``) has typeset every formula and
   every image has loaded, and fails if one has not.
3. Laid out for print at the text width (``_LAYOUT``): a display equation or table wider than
   its column is scaled to fit it; code is set at a size that holds ``CODE_COLUMNS`` columns
   and a longer line is broken at the column limit, continuing indented after a marker; each
   chapter is a named page whose running head is its title; a contents page (every chapter and
   section, linked) follows the title page. It fails if anything is still too wide or an id is
   used twice.
4. Chromium prints it to A4 with page numbers; ``finish_pdf`` (pypdf) adds a bookmark per
   heading at its destination, writes each contents entry's page number (the page its link
   leads to) and the metadata (title, author, subject, keywords). No TeX, nothing downloaded.
5. The check (also run by the browser test on the copy in ``_build/html``; text through PDFium,
   structure through pypdf). ``check_pdf``: at least ``MIN_PAGES`` pages; every toc page's title
   in the text, numbered ("3. Title") in a numbered part; no raw TeX; at least as many embedded
   images as the single page shows; internal links, all leading to a destination in the file.
   ``check_book_pdf``: a level-1 bookmark per toc page in order and Solutions, section
   bookmarks; every contents number equal to its heading's page; every citation link on a
   References page at its own entry (first author and year); each exercise's link to its
   solution at the back and each solution's link back to its exercise; no link to a local
   server; no text past the right margin; no answer key or "no answer yet" row; the licence,
   repository, version and build date on the title page; the metadata.

``make pdf`` copies the PDF into ``_build/html``, where every page's download menu links it
(``_ext/pair_downloads.py``); ``make book`` does the same.
"""
from __future__ import annotations

import argparse
import functools
import http.server
import json
import logging
import re
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
PDF_NAME = "gradients-by-hand.pdf"
OUT = ROOT / "_build" / "pdf"
MIN_PAGES = 20
RAW_TEX = ("$$", "\\frac")

# Paper, not screen. A4 with 14 mm side margins: a text column of 182 mm (688 CSS px). Code at 11 px
# fits 100 columns of DejaVu Sans Mono (88 are the budget of a code line); a longer line is broken
# by _LAYOUT at the column limit and continues with a hanging indent and a marker. Admonitions and
# code blocks may break across pages (the theme keeps each whole, which leaves half-empty pages);
# figures, display math and tables stay whole; headings stay with what follows. Page numbers and
# running heads come from CSS page-margin boxes (Chromium's own header/footer templates cost twice
# the printing time); each chapter is a named page whose head is its title.
PAGE_MARGIN_MM = (16, 14, 18, 14)
TEXT_WIDTH_PX = round((210 - PAGE_MARGIN_MM[1] - PAGE_MARGIN_MM[3]) / 25.4 * 96)
CODE_COLUMNS = 88
CONTENTS_FONT_PT = 10
CONTENTS_LINE = 1.5
PRINT_CSS = """
@page {
  size: A4;
  margin: %dmm %dmm %dmm %dmm;
  @bottom-center { content: counter(page) " / " counter(pages); font-size: 8pt; color: #555; }
}
@media print {
  .bd-content { margin: 0 !important; }
  article.bd-article { padding-left: 0 !important; padding-right: 0 !important; }
  div.admonition { padding-left: 0.8rem !important; padding-right: 0.8rem !important; }
  pre, pre code, .highlight pre { white-space: pre !important; overflow: visible !important; }
  div.highlight pre { font-size: 11px !important; line-height: 1.35; }
  .code-line { display: block; min-height: 1lh; }
  .code-cont { display: block; }
  .code-cont::before { content: "\\21AA"; display: inline-block; width: 2ch; margin-left: -2ch;
                       color: #888; }
  .admonition, div.admonition, div.highlight, div[class*=highlight-], .cell, .cell_output,
  section, details { break-inside: auto !important; }
  figure, img, div.math, table { break-inside: avoid; }
  h1, h2, h3, h4, .admonition-title, summary { break-after: avoid; }
  .chapter-start, .book-solutions { break-before: page; }
  .book-licence { margin-top: 3em; font-size: 9pt; color: #333; break-after: page; }
  nav.book-contents { break-after: page; font-size: %dpt; line-height: %s; }
  nav.book-contents h2 { font-size: 1.6em; margin: 0 0 1em; }
  nav.book-contents ol { list-style: none; margin: 0; padding: 0; }
  nav.book-contents a { display: flex; align-items: baseline; color: inherit;
                        text-decoration: none; }
  nav.book-contents li.level-1 { margin-top: 0.5em; font-weight: bold; }
  nav.book-contents li.level-2 { padding-left: 2em; }
  nav.book-contents .dots { flex: 1 1 auto; border-bottom: 1px dotted #999; margin: 0 0.4em; }
  nav.book-contents .page { flex: 0 0 2.2em; }
  .solution-pointer { font-style: italic; }
}
""" % (PAGE_MARGIN_MM + (CONTENTS_FONT_PT, CONTENTS_LINE))

# Runs in the single page before printing: unfold, drop links to the local server, wait for
# MathJax and images, report.
_PREPARE = """
async (css) => {
  const style = document.createElement('style');
  style.textContent = css;
  document.head.appendChild(style);
  // every page of the book after the first starts on a new sheet
  const starts = Array.from(document.querySelectorAll('span[id^="document-"]'));
  for (const span of starts) {
    const next = span.nextElementSibling;
    if (next) next.classList.add('chapter-start');
  }
  for (const d of document.querySelectorAll('details')) d.open = true;
  for (const el of document.querySelectorAll('.toggle-hidden')) {
    el.classList.remove('toggle-hidden');
  }
  for (const b of document.querySelectorAll('button.toggle-button')) b.remove();
  // A link to a file of the single-page build (a figure's full-size image, a download) would
  // point at this temporary server in the PDF: keep its content, drop the link.
  const here = location.origin + location.pathname;
  let unlinked = 0;
  for (const a of Array.from(document.querySelectorAll('a[href]'))) {
    if (!a.href.startsWith(location.origin) || a.href.startsWith(here + '#')) continue;
    a.replaceWith(...a.childNodes);
    unlinked += 1;
  }
  const out = {mathjax: 'absent', math: 0, unrendered: [], errors: 0, images: [], broken: [],
               unlinked};
  const mj = window.MathJax;
  if (mj && mj.startup && mj.startup.promise) {
    try { await mj.startup.promise; out.mathjax = 'ok'; }
    catch (e) { out.mathjax = 'MathJax failed: ' + e; }
  }
  for (const el of document.querySelectorAll('span.math, div.math')) {
    out.math += 1;
    if (!el.querySelector('mjx-container')) out.unrendered.push(el.textContent.trim().slice(0, 80));
  }
  out.errors = document.querySelectorAll('mjx-merror, [data-mjx-error]').length;
  const imgs = Array.from(document.querySelectorAll('article img, main img'));
  for (const img of imgs) img.loading = 'eager';
  await Promise.all(imgs.map(img => img.complete ? null : new Promise(done => {
    img.addEventListener('load', done); img.addEventListener('error', done);
    setTimeout(done, 15000);
  })));
  for (const img of imgs) {
    const src = img.getAttribute('src') || '';
    if (img.complete && img.naturalWidth > 0) out.images.push(src); else out.broken.push(src);
  }
  return out;
}
"""

# Runs after the page is laid out for print at the text width: code broken at the column limit,
# wide equations and tables scaled to the text width, a running head per chapter, the contents
# (its page numbers are filled in after printing), every id once. Returns what it did and the
# headings, in order, for the bookmarks.
_LAYOUT = """
() => {
  const out = {widest_math_before: 0, widest_math_after: 0, widest_table_before: 0,
               widest_table_after: 0, scaled: [], code_columns: 0, wrapped: 0, too_wide: [],
               headings: [], duplicate_ids: []};
  // a heading as text (its formulas as their TeX) and as nodes (its formulas typeset)
  const tex = new Map();
  try {
    for (const item of MathJax.startup.document.math) tex.set(item.typesetRoot, item.math);
  } catch (e) { /* no MathJax: no formulas */ }
  const bare = (h) => {
    const c = h.cloneNode(true);
    for (const a of c.querySelectorAll('a.headerlink')) a.remove();
    return c;
  };
  const clean = (h) => {
    const c = bare(h);
    const originals = h.querySelectorAll('mjx-container');
    c.querySelectorAll('mjx-container').forEach((m, i) => {
      m.replaceWith(document.createTextNode(tex.get(originals[i]) || m.textContent));
    });
    return c.textContent.replace(/\\s+/g, ' ').trim();
  };
  // 1. Code: one block per source line; a line longer than the column limit is broken there
  //    (at a space when one is near) and continues indented, after a marker.
  const probe = (pre) => {
    const s = document.createElement('span');
    s.textContent = '0'.repeat(100);
    s.style.cssText = 'position:absolute;visibility:hidden;white-space:pre';
    pre.appendChild(s);
    const w = s.getBoundingClientRect().width / 100;
    s.remove();
    return w;
  };
  let minCols = Infinity;
  for (const pre of document.querySelectorAll('div.highlight pre')) {
    const cs = getComputedStyle(pre);
    const inner = pre.clientWidth - parseFloat(cs.paddingLeft) - parseFloat(cs.paddingRight);
    const cols = Math.floor(inner / probe(pre) + 0.01);
    if (pre.closest('.cell_input')) minCols = Math.min(minCols, cols);
    const texts = [];
    let total = 0;
    const walker = document.createTreeWalker(pre, NodeFilter.SHOW_TEXT);
    while (walker.nextNode()) { texts.push([walker.currentNode, total]); total += walker.currentNode.length; }
    if (!texts.length) continue;
    let k = 0;
    const at = (off) => {
      while (k + 1 < texts.length && texts[k + 1][1] <= off) k += 1;
      while (k > 0 && texts[k][1] > off) k -= 1;
      return [texts[k][0], Math.min(off - texts[k][1], texts[k][0].length)];
    };
    const text = texts.map(t => t[0].data).join('');
    const lines = text.split('\\n');
    if (lines.length && lines[lines.length - 1] === '') lines.pop();
    const piece = (s, e) => {
      const r = document.createRange();
      r.setStart(...at(s)); r.setEnd(...at(e));
      return r.cloneContents();
    };
    const frag = document.createDocumentFragment();
    let start = 0;
    for (const line of lines) {
      const el = document.createElement('span');
      el.className = 'code-line';
      // a continuation starts 4 columns right of the line's own indentation, its marker 2
      const indent = Math.min(line.length - line.trimStart().length, Math.floor(cols / 2));
      let s = 0, width = cols;
      const cuts = [];
      while (line.length - s > width) {
        let e = s + width;
        const space = line.lastIndexOf(' ', e - 1);
        if (space > s + width / 2) e = space + 1;
        cuts.push([s, e]);
        s = e;
        width = cols - indent - 4;
      }
      cuts.push([s, line.length]);
      cuts.forEach(([a, b], i) => {
        const part = piece(start + a, start + b);
        if (i === 0) { el.appendChild(part); return; }
        const cont = document.createElement('span');
        cont.className = 'code-cont';
        cont.style.paddingLeft = (indent + 4) + 'ch';
        cont.appendChild(part);
        el.appendChild(cont);
      });
      if (cuts.length > 1) out.wrapped += 1;
      frag.appendChild(el);
      start += line.length + 1;
    }
    pre.replaceChildren(frag);
    if (pre.scrollWidth > pre.clientWidth + 1) out.too_wide.push('code: ' + text.slice(0, 60));
  }
  out.code_columns = minCols === Infinity ? 0 : minCols;
  // 2. Display math and tables wider than their column: scaled down to fit it.
  const fit = (el, box, kind) => {
    const avail = box.clientWidth - parseFloat(getComputedStyle(box).paddingLeft)
                  - parseFloat(getComputedStyle(box).paddingRight);
    const w = kind === 'math' ? (el.firstElementChild || el).getBoundingClientRect().width
                              : el.getBoundingClientRect().width;
    const ratio = avail > 0 ? w / avail : 0;
    const key = 'widest_' + kind + '_before';
    out[key] = Math.max(out[key], ratio);
    if (ratio > 1.001 && kind === 'math') {
      const svg = el.firstElementChild, r = svg.getBoundingClientRect(), k = 0.995 / ratio;
      svg.style.width = (r.width * k) + 'px';
      svg.style.height = (r.height * k) + 'px';
      out.scaled.push(kind + ' ' + ratio.toFixed(2) + ': ' + el.textContent.slice(0, 50));
    } else if (ratio > 1.001) {
      el.style.zoom = String(Math.floor(995 / ratio) / 1000);
      out.scaled.push(kind + ' ' + ratio.toFixed(2) + ': ' + el.textContent.slice(0, 50));
    }
    const w2 = kind === 'math' ? (el.firstElementChild || el).getBoundingClientRect().width
                               : el.getBoundingClientRect().width;
    const after = avail > 0 ? w2 / avail : 0;
    out['widest_' + kind + '_after'] = Math.max(out['widest_' + kind + '_after'], after);
    if (after > 1.001) out.too_wide.push(kind + ' ' + after.toFixed(3) + ': ' + el.textContent.slice(0, 60));
  };
  for (const m of document.querySelectorAll('mjx-container[display="true"]')) {
    fit(m, m.parentElement, 'math');
  }
  for (const t of document.querySelectorAll('main table')) {
    const box = t.parentElement.closest('div, section, td') || t.parentElement;
    fit(t, box, 'table');
  }
  // 3. The book's parts: the title page's sections, each page of the toc, the solutions.
  const top = document.querySelector('main section');
  const parts = [];
  if (top) parts.push({el: top, title: clean(top.querySelector('h1')), head: null,
                       sub: Array.from(top.children).filter(c => c.tagName === 'SECTION')});
  for (const span of document.querySelectorAll('span[id^="document-"]')) {
    const sec = span.nextElementSibling;
    if (!sec || sec.tagName !== 'SECTION') continue;
    const h = sec.querySelector('h1, h2');
    parts.push({el: sec, h, title: clean(h), head: clean(h),
                sub: Array.from(sec.children).filter(c => c.tagName === 'SECTION')});
  }
  const sols = document.querySelector('section.book-solutions');
  if (sols) parts.push({el: sols, h: sols.querySelector('h1, h2'), title: 'Solutions',
                        head: 'Solutions',
                        sub: Array.from(sols.querySelectorAll('section.book-solutions-chapter'))});
  // running heads: one named page per part
  const quote = (s) => '"' + s.replace(/\\\\/g, '\\\\\\\\').replace(/"/g, '\\\\"') + '"';
  let rules = '';
  parts.forEach((p, i) => {
    if (!p.head) return;
    p.el.style.page = 'part-' + i;
    rules += '@page part-' + i + ' { @top-center { content: ' + quote(p.head) +
             '; font-size: 8pt; color: #555; } }\\n';
  });
  const heads = document.createElement('style');
  heads.textContent = rules;
  document.head.appendChild(heads);
  // 4. The contents, after the title page: every part and its sections, linked.
  const nav = document.createElement('nav');
  nav.className = 'book-contents';
  nav.id = 'book-contents';
  nav.innerHTML = '<h2>Contents</h2>';
  const ol = document.createElement('ol');
  const entry = (level, h, id, title) => {
    title = title || clean(h);
    const li = document.createElement('li');
    li.className = 'level-' + level;
    const a = document.createElement('a');
    a.href = '#' + id;
    const t = document.createElement('span'); t.className = 'title';
    if (h) t.append(...bare(h).childNodes); else t.textContent = title;
    for (const a of t.querySelectorAll('a')) a.replaceWith(...a.childNodes);
    for (const el of t.querySelectorAll('[id]')) el.removeAttribute('id');
    const d = document.createElement('span'); d.className = 'dots';
    const n = document.createElement('span'); n.className = 'page';
    a.append(t, d, n);
    li.appendChild(a);
    ol.appendChild(li);
    out.headings.push({level, title, id});
  };
  parts.forEach((p, i) => {
    if (i === 0) {
      out.headings.push({level: 1, title: p.title, id: p.el.id});
      out.headings.push({level: 1, title: 'Contents', id: nav.id});
      for (const s of p.sub) entry(1, s.querySelector('h2, h3'), s.id);
      return;
    }
    entry(1, p.h, p.el.id, p.title);
    for (const s of p.sub) entry(2, s.querySelector('h2, h3, h4'), s.id);
  });
  nav.appendChild(ol);
  const licence = document.querySelector('main .book-licence');
  if (licence) licence.after(nav); else if (top) top.querySelector('h1').after(nav);
  // 5. Every id once (a link to a repeated id lands on its first use).
  const seen = new Map();
  for (const el of document.querySelectorAll('[id]')) seen.set(el.id, (seen.get(el.id) || 0) + 1);
  out.duplicate_ids = Array.from(seen).filter(([, n]) => n > 1).map(([id]) => id);
  return out;
}
"""


class PdfError(RuntimeError):
    pass


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def toc_entries(root: Path = ROOT) -> list[tuple[Path, int | None]]:
    """Every page of the toc in order (the root page, then each part's chapters), each with its
    chapter number: numbered parts count on from one part to the next (multitoc numbering)."""
    toc = yaml.safe_load((root / "_toc.yml").read_text(encoding="utf-8"))
    entries: list[tuple[str, int | None]] = [(toc["root"], None)]
    number = 0
    for part in toc.get("parts", [{"chapters": toc.get("chapters", [])}]):
        for chapter in part.get("chapters", []):
            if part.get("numbered"):
                number += 1
            entries.append((chapter["file"], number if part.get("numbered") else None))
    out = []
    for name, num in entries:
        path = root / name
        if not path.suffix:
            path = next((path.with_suffix(s) for s in (".md", ".ipynb")
                         if path.with_suffix(s).exists()), path.with_suffix(".md"))
        out.append((path, num))
    return out


def toc_files(root: Path = ROOT) -> list[Path]:
    return [path for path, _ in toc_entries(root)]


def printed_titles(root: Path = ROOT) -> list[str]:
    """The title of every toc page as the PDF prints it: "3. Title" in a numbered part."""
    return [f"{num}. {page_title(path)}" if num else page_title(path)
            for path, num in toc_entries(root)]


def _markdown_title(text: str) -> str | None:
    for line in text.splitlines():
        m = re.match(r"#\s+(.+?)\s*#*\s*$", line)
        if m:
            return m.group(1)
    return None


def page_title(path: Path) -> str:
    """A page's title as printed: its first level-1 heading, markup removed."""
    if path.suffix == ".ipynb":
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        text = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
    else:
        text = re.sub(r"\A---\n.*?\n---\n", "", path.read_text(encoding="utf-8"), flags=re.S)
    title = _markdown_title(text)
    if title is None:
        raise PdfError(f"{path.name}: no '# title' heading")
    title = re.sub(r"\{[a-z:]+\}`([^`<]*?)\s*(<[^>]*>)?`", r"\1", title)  # {role}`text <target>`
    title = re.sub(r"[`*_]", "", title)
    return re.sub(r"\s+", " ", title).strip()


def _normalise(text: str) -> str:
    text = text.replace("\u2019", "'").replace("\u2018", "'").replace("\u00ad", "")
    return re.sub(r"\s+", " ", text)


@dataclass
class Report:
    pages: int = 0
    images: int = 0
    links: int = 0
    size: int = 0
    problems: list[str] = field(default_factory=list)

    def line(self) -> str:
        return (f"{self.pages} pages, {self.images} images, {self.links} internal links, "
                f"{self.size / 1e6:.1f} MB")


def pdf_text(pdf: Path) -> str:
    """The text of every page (PDFium: a second or two where pypdf takes a minute)."""
    import pypdfium2

    doc = pypdfium2.PdfDocument(str(pdf))
    try:
        parts = []
        for page in doc:
            textpage = page.get_textpage()
            parts.append(textpage.get_text_range())
            textpage.close()
            page.close()
        return "\n".join(parts)
    finally:
        doc.close()


def check_pdf(pdf: Path, titles: list[str], min_images: int = 0,
              min_pages: int = MIN_PAGES) -> Report:
    """Everything wrong with the PDF, in report.problems (empty: the PDF is good)."""
    from pypdf import PdfReader

    report = Report(size=pdf.stat().st_size)
    reader = PdfReader(pdf)
    report.pages = len(reader.pages)
    if report.pages < min_pages:
        report.problems.append(f"{report.pages} pages, expected at least {min_pages}")

    text = _normalise(pdf_text(pdf))
    for title in titles:
        if _normalise(title) not in text:
            report.problems.append(f"title {title!r} is not in the PDF's text")
    for tex in RAW_TEX:
        if tex in text:
            at = text.index(tex)
            around = text[max(0, at - 40):at + 40]
            report.problems.append(f"raw TeX {tex!r} in the text: ...{around}...")

    images: set = set()
    destinations = set(reader.named_destinations)
    links = 0
    unresolved = []

    def collect_images(resources, seen_forms):
        xobjects = (resources or {}).get("/XObject") or {}
        for obj in xobjects.values():
            ref = getattr(obj, "idnum", None)
            x = obj.get_object()
            if x.get("/Subtype") == "/Image":
                images.add(ref if ref is not None else id(x))
            elif x.get("/Subtype") == "/Form" and ref not in seen_forms:
                seen_forms.add(ref)
                collect_images(x.get("/Resources"), seen_forms)

    for page in reader.pages:
        collect_images(page.get("/Resources"), set())
        for annot in page.get("/Annots") or []:
            a = annot.get_object()
            if a.get("/Subtype") != "/Link":
                continue
            dest = a.get("/Dest")
            action = a.get("/A") or {}
            if dest is None and action.get("/S") == "/GoTo":
                dest = action.get("/D")
            if dest is None:
                continue  # a link to a web address
            links += 1
            if isinstance(dest, str) and str(dest) not in destinations:
                unresolved.append(str(dest))
    report.images = len(images)
    report.links = links
    if report.images < min_images:
        report.problems.append(f"{report.images} images in the PDF, the book shows {min_images}")
    if not links:
        report.problems.append("no internal link")
    if unresolved:
        report.problems.append(f"{len(unresolved)} internal links to no destination, e.g. "
                               f"{unresolved[:3]}")
    return report


# What a print reader must never see: a check's answer key, its "no answer yet" rows.
SCAFFOLDING = (re.compile(r"\bgx\d:[a-z]+:"), re.compile(r"no answer yet \("))
LOCAL_SERVER = re.compile(r"^https?://(127\.0\.0\.1|localhost)([:/]|$)")


@dataclass
class BookReport:
    """What check_book_pdf measured; problems empty: the PDF is a book a reader can use."""
    bookmarks: int = 0
    levels: dict = field(default_factory=dict)
    contents_checked: int = 0
    citations: int = 0
    citation_pages: tuple = ()
    solutions: int = 0
    back_links: int = 0
    problems: list[str] = field(default_factory=list)

    def line(self) -> str:
        levels = ", ".join(f"{n} at level {k + 1}" for k, n in sorted(self.levels.items()))
        pages = (f"pages {self.citation_pages[0]}-{self.citation_pages[1]}"
                 if self.citation_pages else "no page")
        return (f"{self.bookmarks} bookmarks ({levels}); {self.contents_checked} contents "
                f"numbers checked; {self.citations} citation links, all to their entry in "
                f"References ({pages}); {self.solutions} solutions at the back, "
                f"{self.back_links} links back")


def _outline(reader) -> list[tuple[int, str, int]]:
    out = []

    def walk(items, depth):
        for item in items:
            if isinstance(item, list):
                walk(item, depth + 1)
            else:
                out.append((depth, str(item.title), reader.get_destination_page_number(item)))
    walk(reader.outline, 0)
    return out


def _links(reader):
    """Every link annotation: (page index, rect, named destination or None, URI or None)."""
    for i, page in enumerate(reader.pages):
        for annot in page.get("/Annots") or []:
            a = annot.get_object()
            if a.get("/Subtype") != "/Link":
                continue
            action = a.get("/A") or {}
            dest = a.get("/Dest")
            if dest is None and action.get("/S") == "/GoTo":
                dest = action.get("/D")
            rect = tuple(float(v) for v in a["/Rect"])
            yield i, rect, (_dest_name(dest) if isinstance(dest, str) else None), action.get("/URI")


def check_book_pdf(pdf: Path, titles: list[str], *, root: Path = ROOT,
                   licence: tuple[str, ...] | None = None) -> BookReport:
    """The reader's book: bookmarks for every toc page (and sections), the contents' page numbers
    where the headings are, each citation link on its entry in References, solutions at the back
    linked both ways, no link to a local server, no text past the right margin, no check
    scaffolding, the licence on the title page, the metadata."""
    import pypdfium2
    from pypdf import PdfReader

    report = BookReport()
    problems = report.problems
    reader = PdfReader(pdf)
    doc = pypdfium2.PdfDocument(str(pdf))
    texts = [doc[i].get_textpage() for i in range(len(doc))]
    try:
        # bookmarks: every toc page at level 1, in order, then Solutions; sections below
        outline = _outline(reader)
        report.bookmarks = len(outline)
        for depth, _, _ in outline:
            report.levels[depth] = report.levels.get(depth, 0) + 1
        top = [(t, p) for d, t, p in outline if d == 0]
        names = [_normalise(t) for t, _ in top]
        expected = [_normalise(t) for t in titles] + ["Solutions"]
        at = 0
        for title in expected:
            if title in names[at:]:
                at = names.index(title, at) + 1
            else:
                problems.append(f"no bookmark {title!r} (in toc order)")
        if not report.levels.get(1):
            problems.append("no bookmark for a section")
        page_of = {_normalise(t): p for t, p in top}
        starts = sorted({p for _, p in top})

        def part_pages(title):
            first = page_of.get(title)
            if first is None:
                return range(0)
            later = [p for p in starts if p > first]
            return range(first, later[0] if later else len(reader.pages))

        # the contents: each entry's number is the page its link leads to
        dests = {_dest_name(k): v for k, v in reader.named_destinations.items()}
        contents = part_pages("Contents")
        if not contents:
            problems.append("no Contents bookmark")
        wrong = []
        links = list(_links(reader))
        for i, rect, dest, uri in links:
            if uri and LOCAL_SERVER.match(str(uri)):
                problems.append(f"page {i + 1} links the local server: {uri}")
            if i not in contents or dest is None or dest not in dests:
                continue
            x0, y0, x1, y1 = rect
            shown = texts[i].get_text_bounded(x1 - 40, y0, x1 + 1, y1).split()
            target = reader.get_destination_page_number(dests[dest]) + 1
            report.contents_checked += 1
            if not shown or shown[-1] != str(target):
                wrong.append(f"{dest}: {shown[-1] if shown else 'none'} for page {target}")
        if contents and not report.contents_checked:
            problems.append("the contents link no heading")
        if wrong:
            problems.append(f"{len(wrong)} contents numbers are not their heading's page: "
                            f"{wrong[:3]}")

        # citations: every link to a bibliography entry lands on References, at that entry
        references = part_pages("References")
        authors = bib_first_authors(root)
        misplaced, landed = [], []
        for i, rect, dest, _ in links:
            if not dest or not dest.startswith("cite-"):
                continue
            report.citations += 1
            d = dests.get(dest)
            if d is None:
                misplaced.append(f"{dest} (no destination)")
                continue
            page = reader.get_destination_page_number(d)
            _, top_y = _dest_position(d)
            width = float(reader.pages[page].mediabox.width)
            entry = _entry_at(texts[page], top_y, width)
            if page + 1 < len(reader.pages):
                # an entry that starts low on a page may end at the top of the next one
                height = float(reader.pages[page + 1].mediabox.height)
                entry += " " + texts[page + 1].get_text_bounded(0, height - 160, width, height)
            cited = _normalise(texts[i].get_text_bounded(*rect)).strip()
            name = authors.get(dest[len("cite-"):], "")
            years = re.findall(r"\b\d{4}\b", cited)
            if page not in references or name not in entry or any(y not in entry for y in years):
                misplaced.append(f"p. {i + 1} {cited!r} -> {dest} on p. {page + 1}")
            else:
                landed.append(page + 1)
        if references and landed:
            report.citation_pages = (min(landed), max(landed))
        if references and not report.citations:
            problems.append("no citation links to an entry in References (cite-<key>)")
        if misplaced:
            problems.append(f"{len(misplaced)} of {report.citations} citation links do not land "
                            f"on their entry in References: {misplaced[:3]}")

        # solutions at the back: linked from the exercise, and back
        solutions = part_pages("Solutions")
        first_solution = solutions.start if solutions else len(reader.pages)
        astray, page_text = [], {}
        for i, rect, dest, _ in links:
            if not dest or dest not in dests:
                continue
            page = reader.get_destination_page_number(dests[dest])
            label = " ".join(texts[i].get_text_bounded(*rect).split())
            if i < first_solution <= page and label.startswith("Solution to"):
                report.solutions += 1
            elif i >= first_solution and page < first_solution and label.startswith("Exercise"):
                report.back_links += 1
                if page not in page_text:
                    page_text[page] = " ".join(texts[page].get_text_range().split())
                if label not in page_text[page]:
                    astray.append(f"{label} -> p. {page + 1}")
        if solutions and not report.solutions:
            problems.append("no exercise links a solution at the back")
        if astray:
            problems.append(f"links back from solutions land away from their exercise: "
                            f"{astray[:3]}")
        if report.back_links < report.solutions:
            problems.append(f"{report.solutions} solutions at the back, only "
                            f"{report.back_links} link back to their exercise")
        for i in range(first_solution):
            body = re.sub(r"Solution to\s+Exercise\s+[\d.]+:\s+in\s+Solutions", "",
                          texts[i].get_text_range())
            if re.search(r"Solution to\s+Exercise", body):
                problems.append(f"a solution is printed under its exercise (p. {i + 1})")
                break

        # the page itself: nothing past the right margin, no scaffolding
        mm = 72 / 25.4
        for i, tp in enumerate(texts):
            right = float(reader.pages[i].mediabox.width) - PAGE_MARGIN_MM[1] * mm + 1.5
            for k in range(tp.count_rects()):
                x0, y0, x1, y1 = tp.get_rect(k)
                if x1 > right:
                    problems.append(f"text past the right margin on p. {i + 1}: "
                                    f"{tp.get_text_bounded(x0, y0, x1, y1)[:50]!r}")
                    break
            body = tp.get_text_range()
            for pattern in SCAFFOLDING:
                m = pattern.search(body)
                if m:
                    problems.append(f"check scaffolding on p. {i + 1}: {m.group()!r}")

        # the licence on the title page; the metadata
        first = _normalise(texts[0].get_text_range())
        for phrase in licence if licence is not None else _licence_phrases(root):
            if phrase not in first:
                problems.append(f"the title page does not say {phrase!r}")
        meta = reader.metadata or {}
        for key, value in book_metadata(root).items():
            if meta.get(key) != value:
                problems.append(f"metadata {key} is {meta.get(key)!r}, not {value!r}")
    finally:
        _LABELS.clear()
        for tp in texts:
            tp.close()
        doc.close()
    return report


_LABELS: dict = {}


def _entry_at(textpage, top: float, width: float) -> str:
    """The text of the bibliography entry whose label ("[BPRS18]") is at the top y: from that
    label's line down to the next label's."""
    if id(textpage) in _LABELS:
        return _entry_below(textpage, _LABELS[id(textpage)], top, width)
    labels = []
    for k in range(textpage.count_rects()):
        x0, y0, x1, y1 = textpage.get_rect(k)
        if textpage.get_text_bounded(x0, y0, x1, y1).strip().startswith("["):
            labels.append((y1, y0, x0))
    left = min((lab[2] for lab in labels), default=0)
    labels = [lab for lab in labels if lab[2] <= left + 2]  # the label column
    labels.sort(reverse=True)
    _LABELS[id(textpage)] = labels
    return _entry_below(textpage, labels, top, width)


def _entry_below(textpage, labels, top: float, width: float) -> str:
    here = [lab for lab in labels if top - 20 <= lab[0] <= top + 4]
    if not here:
        return ""
    y1, y0, x0 = here[0]
    below = [lab[0] for lab in labels if lab[0] < y0]
    bottom = max(below) if below else 0
    return _normalise(textpage.get_text_bounded(x0, bottom + 0.5, width, y1 + 1))


def bib_first_authors(root: Path = ROOT) -> dict[str, str]:
    """Each references.bib entry's id in the book (cite-<key>, as docutils makes ids) and the
    name its printed entry starts with: the first author's surname (or the whole {{name}})."""
    from docutils.nodes import make_id

    text = (root / "references.bib").read_text(encoding="utf-8")
    out = {}
    for m in re.finditer(r"@\w+\{([^,\s]+),(.*?)\n\}", text, re.S):
        author = re.search(r"\bauthor\s*=\s*\{(.*?)\},?\s*\n", m.group(2) + "\n", re.S)
        if not author:
            continue
        first = re.split(r"\s+and\s+", author.group(1))[0].strip()
        if first.startswith("{"):
            name = first.strip("{}")
        elif "," in first:
            name = first.split(",")[0]
        else:
            name = first.split()[-1]
        out[make_id(m.group(1))] = re.sub(r"[{}\\]", "", name).strip()
    return out


def _licence_phrases(root: Path = ROOT) -> tuple[str, ...]:
    import tomllib

    config = yaml.safe_load((root / "_config.yml").read_text(encoding="utf-8"))
    version = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    return ("licensed under CC BY 4.0", "under the MIT licence", "To reuse the text or figures",
            config["repository"]["url"], f"version {version['project']['version']}, built ")


class _Images(HTMLParser):
    def __init__(self):
        super().__init__()
        self.srcs: set[str] = set()

    def handle_starttag(self, tag, attrs):
        src = dict(attrs).get("src") or ""
        if tag == "img" and src.startswith("_images/"):
            self.srcs.add(src)


def book_images(single_page: Path) -> int:
    """How many distinct images the single-page build shows (the PDF must embed at least these)."""
    parser = _Images()
    parser.feed(single_page.read_text(encoding="utf-8"))
    return len(parser.srcs)


def build_single_page(out: Path = OUT) -> Path:
    """The book as one HTML page (incremental: Sphinx's state is kept in out/_build)."""
    log = out / "singlehtml.log"
    out.mkdir(parents=True, exist_ok=True)
    cmd = [str(Path(sys.executable).parent / "jupyter-book"), "build", str(ROOT),
           "--builder", "singlehtml", "--path-output", str(out), "--warningiserror", "--keep-going"]
    with log.open("w", encoding="utf-8") as f:
        rc = subprocess.call(cmd, stdout=f, stderr=subprocess.STDOUT)
    if rc != 0:
        sys.stderr.write(log.read_text(encoding="utf-8", errors="replace")[-6000:])
        raise PdfError(f"the single-page build failed (log: {log})")
    root = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))["root"]
    return out / "_build" / "singlehtml" / f"{Path(root).with_suffix('').as_posix()}.html"


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass


def print_page(page_file: Path, pdf: Path, chromium: str) -> dict:
    """Print the HTML page to pdf with Chromium (unfinished: no bookmarks, contents numbers or
    metadata yet, see finish_pdf); what the page showed and what _LAYOUT did."""
    from playwright.sync_api import sync_playwright

    from tools.chromium import CHROMIUM_ARGS

    handler = functools.partial(_Quiet, directory=str(page_file.parent))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/{page_file.name}"
    start = time.monotonic()
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium, headless=True,
                                         args=CHROMIUM_ARGS)
            page = browser.new_page(color_scheme="light")
            page.set_default_timeout(120_000)
            page.goto(url, wait_until="load")
            found = page.evaluate(_PREPARE, PRINT_CSS)
            problems = []
            if found["math"] and found["mathjax"] != "ok":
                problems.append(f"MathJax did not start: {found['mathjax']}")
            problems += [f"math not rendered: {t!r}" for t in found["unrendered"][:5]]
            if found["errors"]:
                problems.append(f"{found['errors']} MathJax errors")
            problems += [f"image not loaded: {s}" for s in found["broken"][:5]]
            if problems:
                raise PdfError("the single page is not ready to print:\n  " + "\n  ".join(problems))
            # Lay the page out as it prints (print media, the text column's width), then fit it.
            page.emulate_media(media="print")
            page.set_viewport_size({"width": TEXT_WIDTH_PX, "height": 1000})
            found["layout"] = laid = page.evaluate(_LAYOUT)
            typeset = time.monotonic()
            problems += [f"wider than the text column: {t}" for t in laid["too_wide"][:5]]
            if laid["code_columns"] < CODE_COLUMNS:
                problems.append(f"a code cell holds {laid['code_columns']} columns, "
                                f"not {CODE_COLUMNS}")
            if laid["duplicate_ids"]:
                problems.append(f"{len(laid['duplicate_ids'])} ids used more than once "
                                f"(a link to one lands on its first use): "
                                f"{laid['duplicate_ids'][:5]}")
            if problems:
                raise PdfError("the single page does not fit the paper:\n  " + "\n  ".join(problems))
            tmp = pdf.with_suffix(".tmp.pdf")
            # Not tagged: Chromium's outline needs a tagged PDF (70% larger, 15 s slower); the
            # bookmarks are added from the headings' destinations instead (finish_pdf).
            page.pdf(path=str(tmp), format="A4", prefer_css_page_size=True,
                     print_background=True)
            found["seconds"] = (typeset - start, time.monotonic() - typeset)
            browser.close()
    finally:
        server.shutdown()
        server.server_close()
    return found


# Chromium writes a destination's position relative to the page's content box, not the sheet.
def _dest_position(dest) -> tuple[float, float]:
    mm = 72 / 25.4
    return (float(dest.get("/Left", 0)) + PAGE_MARGIN_MM[3] * mm,
            float(dest.get("/Top", 0)) - PAGE_MARGIN_MM[0] * mm)


def _dest_name(value) -> str:
    return str(value)[1:] if str(value).startswith("/") else str(value)


def book_metadata(root: Path = ROOT) -> dict:
    """Title, author, subject and keywords of the PDF (from _config.yml and CITATION.cff)."""
    config = yaml.safe_load((root / "_config.yml").read_text(encoding="utf-8"))
    cff = yaml.safe_load((root / "CITATION.cff").read_text(encoding="utf-8"))
    subject = cff["title"].split(": ", 1)[-1]
    return {"/Title": config["title"], "/Author": config["author"],
            "/Subject": subject[:1].upper() + subject[1:],
            "/Keywords": ", ".join(cff.get("keywords", []))}


def _overlay(width: float, height: float, numbers: list[tuple[float, float, str]]):
    """A transparent page with each (right x, baseline y, text) in the book's DejaVu Sans."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from pypdf import PdfReader

    with plt.rc_context({"pdf.fonttype": 42, "font.family": "DejaVu Sans"}):
        fig = plt.figure(figsize=(width / 72, height / 72), dpi=72)
        fig.patch.set_alpha(0)
        for x, y, text in numbers:
            fig.text(x / width, y / height, text, ha="right", va="baseline",
                     fontsize=CONTENTS_FONT_PT, color="#222")
        buf = io.BytesIO()
        fig.savefig(buf, format="pdf", transparent=True)
        plt.close(fig)
    return PdfReader(io.BytesIO(buf.getvalue())).pages[0]


def finish_pdf(tmp: Path, pdf: Path, headings: list[dict], metadata: dict) -> dict:
    """Bookmarks (one per heading, at its destination), the contents' page numbers (written
    over the contents at the right end of each entry's link), metadata; then tmp -> pdf."""
    from pypdf import PdfReader, PdfWriter
    from pypdf.generic import Fit

    logging.getLogger("pypdf").setLevel(logging.ERROR)  # Chromium's xref table: a size warning
    reader = PdfReader(tmp)
    dests = {_dest_name(k): v for k, v in reader.named_destinations.items()}
    writer = PdfWriter(clone_from=reader)
    where = {}
    for h in headings:
        d = dests.get(h["id"])
        if d is not None:
            where[h["id"]] = (reader.get_destination_page_number(d), *_dest_position(d))
    # the contents: the pages of the links to its entries
    entries = {h["id"] for h in headings[headings.index(next(
        h for h in headings if h["id"] == "book-contents")) + 1:]} if headings else set()
    numbers: dict[int, list] = {}
    for i, page in enumerate(reader.pages):
        for annot in page.get("/Annots") or []:
            a = annot.get_object()
            target = _dest_name(a.get("/Dest", ""))
            if a.get("/Subtype") != "/Link" or target not in entries or target not in where:
                continue
            x0, y0, x1, y1 = (float(v) for v in a["/Rect"])
            line = CONTENTS_FONT_PT * CONTENTS_LINE
            baseline = y0 + line / 2 - 0.346 * CONTENTS_FONT_PT  # DejaVu Sans in a CSS line box
            numbers.setdefault(i, []).append((x1, baseline, str(where[target][0] + 1)))
    contents_pages = sorted(numbers)
    if contents_pages:
        where["book-contents"] = (contents_pages[0], 0.0, float(reader.pages[0].mediabox.top))
    for i, items in numbers.items():
        box = writer.pages[i].mediabox
        writer.pages[i].merge_page(_overlay(float(box.width), float(box.height), items))
    parent = None
    outline = []
    for k, h in enumerate(headings):
        page, left, top = where.get(h["id"], (0, 0.0, float(reader.pages[0].mediabox.top)))
        if k == 0:
            page, top = 0, float(reader.pages[0].mediabox.top)
        item = writer.add_outline_item(title=h["title"], page_number=page,
                                       parent=parent if h["level"] > 1 else None,
                                       fit=Fit.xyz(left, top, 0))
        if h["level"] == 1:
            parent = item
        outline.append((h["level"], h["title"], page))
    writer.page_mode = "/UseOutlines"
    writer.add_metadata({**metadata, "/Creator": "Gradients by Hand tools/pdf.py (Chromium)"})
    with open(pdf, "wb") as f:
        writer.write(f)
    tmp.unlink()
    return {"bookmarks": len(outline), "contents_pages": len(contents_pages),
            "numbers": sum(len(v) for v in numbers.values())}


def build(pdf: Path = OUT / PDF_NAME) -> Report:
    from tools.chromium import obtain

    start = time.monotonic()
    chromium = obtain()
    page_file = build_single_page(pdf.parent)
    built = time.monotonic()
    found = print_page(page_file, pdf, chromium)
    printed = time.monotonic()
    finished = finish_pdf(pdf.with_suffix(".tmp.pdf"), pdf, found["layout"]["headings"],
                          book_metadata())
    done = time.monotonic()
    report = check_pdf(pdf, printed_titles(), min_images=book_images(page_file))
    book = check_book_pdf(pdf, printed_titles())
    if report.problems or book.problems:
        raise PdfError(f"{pdf}: " + "; ".join(report.problems + book.problems))
    load, write = found["seconds"]
    laid = found["layout"]
    _log(f"{pdf.relative_to(ROOT) if pdf.is_relative_to(ROOT) else pdf}: {report.line()}, "
         f"{found['math']} formulas; single-page build {built - start:.1f} s, typeset and lay out "
         f"{load:.1f} s, print {write:.1f} s, bookmarks and contents {done - printed:.1f} s, "
         f"check {time.monotonic() - done:.1f} s")
    _log(f"  widest display equation {laid['widest_math_before']:.2f} of the text width before "
         f"fitting, {laid['widest_math_after']:.2f} after; widest table "
         f"{laid['widest_table_before']:.2f} / {laid['widest_table_after']:.2f}; "
         f"{len(laid['scaled'])} scaled; code holds {laid['code_columns']} columns, "
         f"{laid['wrapped']} lines continued; {found['unlinked']} links to local files dropped; "
         f"{finished['bookmarks']} bookmarks, {finished['numbers']} contents entries")
    for scaled in laid["scaled"]:
        _log(f"  scaled to the text width: {scaled}")
    _log(f"  {book.line()}")
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", type=Path, metavar="FILE", help="only check this PDF")
    parser.add_argument("--out", type=Path, default=OUT / PDF_NAME, help="the PDF to write")
    parser.add_argument("--copy-to", type=Path, default=None,
                        help="also copy the PDF into this folder (make pdf: _build/html)")
    args = parser.parse_args(argv)
    try:
        if args.check:
            single = OUT / "_build" / "singlehtml"
            pages = sorted(single.glob("*.html")) if single.is_dir() else []
            images = max((book_images(p) for p in pages), default=0)
            report = check_pdf(args.check, printed_titles(), images)
            book = check_book_pdf(args.check, printed_titles())
            if report.problems or book.problems:
                raise PdfError(f"{args.check}: " + "; ".join(report.problems + book.problems))
            print(f"{args.check}: {report.line()}; {book.line()}")
            return 0
        args.out = args.out.resolve()
        build(args.out)
        if args.copy_to and args.copy_to.is_dir():
            shutil.copyfile(args.out, args.copy_to / PDF_NAME)
    except PdfError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
