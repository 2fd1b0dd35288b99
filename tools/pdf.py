"""The whole book as one PDF, printed by headless Chromium from a single-page build; and its check.

    .venv/bin/python -m tools.pdf                 # -> _build/pdf/gradients-by-hand.pdf, checked
    .venv/bin/python -m tools.pdf --check FILE    # check a PDF already written

1. ``jupyter-book build . --builder singlehtml --path-output _build/pdf`` (warnings are errors):
   every page of ``_toc.yml`` in order in one HTML page, chapters numbered, cross-references
   rewritten as links within that page.
2. That page is served on 127.0.0.1 and opened in the Chromium of the browser test
   (``tools.chromium``). Everything folded away on the web (hidden inputs, solutions) is opened;
   the script waits until MathJax (vendored in ``_static/mathjax``) has typeset every formula and
   every image has loaded, and fails if one has not.
3. Chromium prints it to A4 with page numbers and its internal links kept (the contents table
   on the first page, every cross-reference); long code lines wrap, every page of the book
   starts a new sheet, solutions and hidden inputs are shown. No TeX, nothing downloaded.
4. The check (also run by the browser test on the copy in ``_build/html``; text through PDFium,
   structure through pypdf): at least ``MIN_PAGES`` pages; every toc page's title in the text,
   numbered ("3. Title") in a numbered part; no raw TeX (``$$``, ``\\frac``) in the text; at
   least as many embedded images as the single page shows; internal links, all leading to a
   destination in the file.

``make pdf`` copies the PDF into ``_build/html``, where every page's download menu links it
(``_ext/pair_downloads.py``); ``make book`` does the same.
"""
from __future__ import annotations

import argparse
import functools
import http.server
import json
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

# Paper, not screen: long code lines wrap instead of being cut off; admonitions and code blocks
# may break across pages (the theme keeps each whole, which leaves half-empty pages); figures,
# display math and tables stay whole; headings stay with what follows. Page numbers come from
# CSS page-margin boxes (Chromium's own header/footer templates cost twice the printing time).
PRINT_CSS = """
@page {
  size: A4;
  margin: 16mm 14mm 18mm 14mm;
  @bottom-center { content: counter(page) " / " counter(pages); font-size: 8pt; color: #555; }
}
@media print {
  pre, pre code, .highlight pre { white-space: pre-wrap !important; overflow-wrap: anywhere; }
  .admonition, div.admonition, div.highlight, div[class*=highlight-], .cell, .cell_output,
  section, details { break-inside: auto !important; }
  figure, img, div.math, table { break-inside: avoid; }
  h1, h2, h3, h4, .admonition-title, summary { break-after: avoid; }
  .chapter-start { break-before: page; }
}
"""

# Runs in the single page before printing: unfold, wait for MathJax and images, report.
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
  const out = {mathjax: 'absent', math: 0, unrendered: [], errors: 0, images: [], broken: []};
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
    """Print the HTML page to pdf with Chromium; what the page showed (math, images)."""
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
            typeset = time.monotonic()
            problems = []
            if found["math"] and found["mathjax"] != "ok":
                problems.append(f"MathJax did not start: {found['mathjax']}")
            problems += [f"math not rendered: {t!r}" for t in found["unrendered"][:5]]
            if found["errors"]:
                problems.append(f"{found['errors']} MathJax errors")
            problems += [f"image not loaded: {s}" for s in found["broken"][:5]]
            if problems:
                raise PdfError("the single page is not ready to print:\n  " + "\n  ".join(problems))
            page.emulate_media(media="print")
            tmp = pdf.with_suffix(".tmp.pdf")
            # No tagged PDF and so no outline (bookmarks): Chromium makes an outline only for a
            # tagged PDF, which here takes 70% more space and 15 s more for one nested entry.
            page.pdf(path=str(tmp), format="A4", prefer_css_page_size=True,
                     print_background=True)
            tmp.replace(pdf)
            found["seconds"] = (typeset - start, time.monotonic() - typeset)
            browser.close()
    finally:
        server.shutdown()
        server.server_close()
    return found


def build(pdf: Path = OUT / PDF_NAME) -> Report:
    from tools.chromium import obtain

    start = time.monotonic()
    chromium = obtain()
    page_file = build_single_page(pdf.parent)
    built = time.monotonic()
    found = print_page(page_file, pdf, chromium)
    printed = time.monotonic()
    report = check_pdf(pdf, printed_titles(), min_images=book_images(page_file))
    if report.problems:
        raise PdfError(f"{pdf}: " + "; ".join(report.problems))
    load, write = found["seconds"]
    _log(f"{pdf.relative_to(ROOT) if pdf.is_relative_to(ROOT) else pdf}: {report.line()}, "
         f"{found['math']} formulas; single-page build {built - start:.1f} s, typeset "
         f"{load:.1f} s, print {write:.1f} s, check {time.monotonic() - printed:.1f} s")
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
            if report.problems:
                raise PdfError(f"{args.check}: " + "; ".join(report.problems))
            print(f"{args.check}: {report.line()}")
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
