"""The licence, the repository, the version and the build date on every page, and on the PDF's title page.

Every HTML page's footer (sphinx-book-theme's ``extra_footer``) and the title page of the book's PDF
(``tools/pdf.py`` prints the single-page build, where this block follows the book's subtitle) say:

* the book's version (``[project] version`` of ``pyproject.toml``) and build date: the UTC date of
  ``SOURCE_DATE_EPOCH`` when it is set (reproducible builds), else today;
* the repository's address (``repository.url`` of ``_config.yml``, as ``html_theme_options``);
* the licences: text and figures CC BY 4.0 (``LICENSE-CONTENT``), code MIT (``LICENSE``);
* how to credit the course, in the words ``LICENSE-CONTENT`` asks for.

``licence_text(app)`` is the same block as plain text (the PDF's check looks for it).
"""
from __future__ import annotations

import datetime as _dt
import html
import os
import tomllib
from pathlib import Path

CC_BY = "https://creativecommons.org/licenses/by/4.0/"
TITLE = "Gradients by Hand"


def build_date(environ=os.environ) -> str:
    """SOURCE_DATE_EPOCH's UTC date when set (an integer), else today's UTC date."""
    epoch = environ.get("SOURCE_DATE_EPOCH", "").strip()
    moment = (_dt.datetime.fromtimestamp(int(epoch), _dt.timezone.utc) if epoch
              else _dt.datetime.now(_dt.timezone.utc))
    return moment.date().isoformat()


def version(srcdir) -> str:
    pyproject = Path(srcdir, "pyproject.toml")
    return tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["version"]


def facts(srcdir, repository: str, author: str, environ=os.environ) -> dict:
    return {"title": TITLE, "version": version(srcdir), "date": build_date(environ),
            "url": repository.rstrip("/"), "author": author}


def licence_html(f: dict) -> str:
    e = {k: html.escape(v) for k, v in f.items()}
    return (
        f'<div class="book-licence">'
        f'<p><strong>{e["title"]}</strong>, version {e["version"]}, built {e["date"]}: '
        f'<a href="{e["url"]}">{e["url"]}</a></p>'
        f'<p>The text and figures are licensed under '
        f'<a href="{CC_BY}">CC BY 4.0</a>; the code (the gradlab package, the tools and the code '
        f'cells of the chapters) under the <a href="{e["url"]}/blob/main/LICENSE">MIT licence</a>. '
        f'To reuse the text or figures, credit them as &ldquo;{e["title"]}, by {e["author"]}, '
        f'CC BY 4.0&rdquo;, link to the licence and the repository, and say whether you made '
        f'changes.</p></div>')


def licence_text(f: dict) -> str:
    """The block as a reader sees it (no markup), one space between words."""
    import re

    text = re.sub(r"<[^>]+>", "", licence_html(f).replace("</p><p>", " "))
    return " ".join(html.unescape(text).split())


def book_facts(app) -> dict:
    """The facts of this build: title, version, date, repository URL, author."""
    options = app.config.html_theme_options or {}
    return facts(app.srcdir, options.get("repository_url") or "", app.config.author)


def add_footer(app, config):
    options = dict(config.html_theme_options or {})
    options["extra_footer"] = licence_html(book_facts(app))
    config.html_theme_options = options


def setup(app):
    app.connect("config-inited", add_footer, priority=950)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
