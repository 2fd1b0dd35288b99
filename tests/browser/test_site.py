"""Open every page of the built book in headless Chromium and check what a reader would hit.

On every page: no console error or warning, no uncaught exception, every content image with alt
text and a figure caption, no failed request (network
error or HTTP status >= 400), no request to a host other than 127.0.0.1, every <img> loaded, every
internal link and its #anchor resolving (targets parsed from the built HTML), every math element
rendered by MathJax without a math error. search.html is opened as search.html?q=Jacobian and
must list at least one result. Counts are printed in the final summary line.

    make browser                                    # tests _build/html
    BOOK_HTML=/tmp/preview-00-getting-started/_build/html .venv/bin/python -m pytest -q tests/browser
"""
from __future__ import annotations

import os
import re
from functools import lru_cache
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

import pytest

# The same site as conftest.py's `site` fixture, needed here at collection to list the pages.
SITE = Path(os.environ.get("BOOK_HTML")
            or Path(__file__).resolve().parents[2] / "_build" / "html").resolve()

SEARCH_PAGE = "search.html"
SEARCH_TERM = "Jacobian"
LOCAL_HOST = "127.0.0.1"


def _pages() -> list[str]:
    if not SITE.is_dir():
        return []
    pages = (p.relative_to(SITE).as_posix() for p in SITE.rglob("*.html"))
    return sorted(p for p in pages if not p.startswith("_static/") and p != SEARCH_PAGE)


class _Scan(HTMLParser):
    """The ids (and <a name>) of a page, and its meta refresh target if it is a redirect."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.ids: set[str] = set()
        self.refresh: str | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if attrs.get("id"):
            self.ids.add(attrs["id"])
        if tag == "a" and attrs.get("name"):
            self.ids.add(attrs["name"])
        if tag == "meta" and (attrs.get("http-equiv") or "").lower() == "refresh":
            m = re.search(r"url\s*=\s*['\"]?([^'\";]+)", attrs.get("content") or "", re.I)
            self.refresh = m.group(1).strip() if m else None


@lru_cache(maxsize=None)
def _scan(path: Path) -> _Scan:
    scan = _Scan()
    scan.feed(path.read_text(encoding="utf-8", errors="replace"))
    return scan


def _check_link(site: Path, base_url: str, href: str) -> str | None:
    """None if the internal link resolves, else what is wrong with it."""
    parts = urlsplit(href)
    rel = unquote(parts.path)[len(urlsplit(base_url).path):]
    target = (site / rel).resolve()
    if target.is_dir():
        target = target / "index.html"
    if site not in target.parents and target != site:
        return "points outside the site"
    if not target.is_file():
        return f"target {target.relative_to(site).as_posix()} does not exist"
    fragment = unquote(parts.fragment)
    if fragment and target.suffix == ".html" and fragment not in _scan(target).ids:
        return f"no id {fragment!r} in {target.relative_to(site).as_posix()}"
    return None


# Runs in the page once it has loaded: waits for MathJax's first typeset and for every image,
# then reports math, images and links.
_INSPECT = """
async () => {
  const out = {mathjax: null, math: [], errors: [], images: [], links: []};
  const math = Array.from(document.querySelectorAll('span.math, div.math'));
  const mj = window.MathJax;
  if (mj && mj.startup && mj.startup.promise) {
    try { await mj.startup.promise; out.mathjax = 'ok'; }
    catch (e) { out.mathjax = 'MathJax startup failed: ' + e; }
  }
  for (const el of math) {
    const rendered = el.querySelector('mjx-container') !== null;
    out.math.push({rendered, id: el.id || '', text: rendered ? '' : el.textContent.trim().slice(0, 80)});
  }
  for (const el of document.querySelectorAll('mjx-merror, [data-mml-node="merror"], [data-mjx-error]')) {
    const box = el.closest('.math');
    out.errors.push((el.getAttribute('data-mjx-error') || el.textContent || 'merror').slice(0, 120)
                    + (box && box.id ? ' (in #' + box.id + ')' : ''));
  }
  const imgs = Array.from(document.images);
  for (const img of imgs) img.loading = 'eager';
  await Promise.all(imgs.map(img => img.complete ? null : new Promise(done => {
    img.addEventListener('load', done); img.addEventListener('error', done); setTimeout(done, 10000);
  })));
  for (const img of imgs) {
    const fig = img.closest('figure');
    const cap = fig ? fig.querySelector('figcaption') : null;
    out.images.push({src: img.currentSrc || img.src || img.getAttribute('src') || '(no src)',
                     ok: img.complete && img.naturalWidth > 0,
                     alt: (img.getAttribute('alt') || '').trim(),
                     content: img.closest('article') !== null,
                     caption: cap ? cap.textContent.trim() : ''});
  }
  for (const a of document.querySelectorAll('a[href], area[href]')) out.links.push(a.href);
  return out;
}
"""


def _open(context, url: str, site: Path, base_url: str, stats: dict,
          redirect_to: str | None = None):
    """Open url in a new tab, check it; return (problems, page) with the page still open."""
    problems: list[str] = []
    page = context.new_page()

    def on_console(msg):
        if msg.type in ("error", "warning"):
            loc = msg.location or {}
            where = f" ({loc.get('url', '')}:{loc.get('lineNumber', '')})" if loc.get("url") else ""
            problems.append(f"console {msg.type}: {msg.text}{where}")

    def on_request(req):
        parts = urlsplit(req.url)
        if parts.scheme in ("http", "https", "ws", "wss") and parts.hostname != LOCAL_HOST:
            problems.append(f"request to another host: {req.url}")

    def on_failed(req):
        if urlsplit(req.url).hostname == LOCAL_HOST:
            problems.append(f"failed request: {req.url} ({req.failure})")

    def on_response(resp):
        if resp.status >= 400:
            problems.append(f"HTTP {resp.status}: {resp.url}")

    page.on("console", on_console)
    page.on("pageerror", lambda err: problems.append(f"uncaught exception: {err}"))
    page.on("request", on_request)
    page.on("requestfailed", on_failed)
    page.on("response", on_response)

    page.goto(url, wait_until="load")
    if redirect_to:
        page.wait_for_url(redirect_to, wait_until="load")
    found = page.evaluate(_INSPECT)

    if found["math"] and found["mathjax"] != "ok":
        problems.append(f"{len(found['math'])} math elements but MathJax did not start: "
                        f"{found['mathjax']}")
    for m in found["math"]:
        if not m["rendered"]:
            problems.append(f"math not rendered by MathJax: {m['id'] or m['text']!r}")
    problems += [f"MathJax error: {e}" for e in found["errors"]]
    problems += [f"image not loaded: {i['src']}" for i in found["images"] if not i["ok"]]
    # Accessible figures: every image in the page's content has alt text and a caption.
    for i in found["images"]:
        if i["content"] and not i["alt"]:
            problems.append(f"image without alt text: {i['src'][-60:]}")
        if i["content"] and not i["caption"]:
            problems.append(f"image without a figure caption: {i['src'][-60:]}")

    origin = base_url.rstrip("/")
    internal = [h for h in found["links"] if h.startswith(origin + "/") or h == origin]
    for href in sorted(set(internal)):
        why = _check_link(site, base_url, href)
        if why:
            problems.append(f"broken link {href[len(origin):]}: {why}")

    stats["pages"] += 1
    stats["math"] += len(found["math"])
    stats["images"] += len(found["images"])
    stats["links"] += len(internal)
    stats["anchors"] += sum(1 for h in internal if urlsplit(h).fragment)
    return problems, page


@pytest.mark.parametrize("page_path", _pages() or ["<no built site>"])
def test_page(page_path, site, base_url, browser_context, stats):
    redirect = _scan(site / page_path).refresh
    redirect_to = urljoin(base_url + page_path, redirect) if redirect else None
    if redirect_to:
        why = _check_link(site, base_url, redirect_to)
        assert why is None, f"{page_path}: redirect to {redirect}: {why}"
    problems, page = _open(browser_context, base_url + page_path, site, base_url, stats,
                           redirect_to)
    page.close()
    assert not problems, f"{page_path}:\n  " + "\n  ".join(problems)


def test_search_finds_jacobian(site, base_url, browser_context, stats):
    assert (site / SEARCH_PAGE).is_file(), f"{SEARCH_PAGE} is missing from {site}"
    url = f"{base_url}{SEARCH_PAGE}?q={SEARCH_TERM}"
    problems, page = _open(browser_context, url, site, base_url, stats)
    page.wait_for_function(
        """() => { const r = document.getElementById('search-results');
                   return r && (r.querySelector('ul.search li') !== null
                                || /Search finished|did not match/.test(r.textContent)); }""",
        timeout=30_000,
    )
    results = page.eval_on_selector_all("#search-results ul.search li a",
                                        "links => links.map(a => a.href)")
    page.close()
    stats["search_results"] = len(results)
    origin = base_url.rstrip("/")
    for href in sorted(set(results)):
        why = _check_link(site, base_url, href) if href.startswith(origin) else "not on this site"
        if why:
            problems.append(f"broken search result {href}: {why}")
    assert results, f"{SEARCH_PAGE}?q={SEARCH_TERM}: no search result"
    assert not problems, f"{SEARCH_PAGE}?q={SEARCH_TERM}:\n  " + "\n  ".join(problems)
