"""The page's download menu: each chapter's MyST markdown source, and the whole book as one PDF.

* A chapter page is rendered from its executed ``.ipynb``; its ``.md`` twin (the file authors edit,
  which opens as a notebook through jupytext) is excluded from the build. This extension copies the
  twin into ``_sources/`` and adds a ``.md`` entry to sphinx-book-theme's download button.
* Every page's download menu links ``gradients-by-hand.pdf`` at the root of the site: the whole
  book, which ``make pdf`` (run by ``make book``) prints from a single-page build of it
  (``tools/pdf.py``) and copies there. The browser test fails on a page whose link dangles.
* The single-page build (``singlehtml``) gets every HTML visitor that an extension registered for
  the ``html`` builder only: Sphinx looks a builder's node handlers up by its name first, and as
  sphinx-exercise registers some for ``singlehtml``, myst-nb's ``HideCodeCellNode`` (registered
  for ``html``) would otherwise stop that build with "unknown node type".
"""
from __future__ import annotations

import shutil
from pathlib import Path

BOOK_PDF = "gradients-by-hand.pdf"


def _twin(app, pagename: str) -> Path | None:
    source = Path(app.srcdir, pagename + ".ipynb")
    md = source.with_suffix(".md")
    return md if source.exists() and md.exists() else None


def _download_group(context) -> dict | None:
    for group in context.get("header_buttons", []):
        if group.get("label") == "download-buttons":
            return group
    return None


def add_md_download(app, pagename, templatename, context, doctree):
    md = _twin(app, pagename)
    group = _download_group(context)
    if md is None or group is None:
        return
    pathto = context["pathto"]
    group["buttons"].insert(1, {
        "type": "link",
        "url": f"{pathto('_sources', 1)}/{pagename}.md",
        "text": ".md",
        "tooltip": "Download the MyST markdown source (opens as a notebook with jupytext)",
        "icon": "fas fa-file-lines",
        "label": "download-md-button",
    })


def add_book_pdf_download(app, pagename, templatename, context, doctree):
    group = _download_group(context)
    if app.builder.name != "html" or group is None:  # the PDF's own single page links nothing
        return
    group["buttons"].append({
        "type": "link",
        "url": context["pathto"](BOOK_PDF, 1),
        "text": "book .pdf",
        "tooltip": "Download the whole book as one PDF",
        "icon": "fas fa-book",
        "label": "download-book-pdf-button",
    })


def html_handlers_for_singlehtml(app):
    if app.builder.name != "singlehtml":
        return
    handlers = app.registry.translation_handlers
    single = handlers.setdefault("singlehtml", {})
    for name, visitors in handlers.get("html", {}).items():
        single.setdefault(name, visitors)


def copy_twins(app, exception):
    if exception is not None or app.builder.format != "html":
        return
    for pagename in app.env.found_docs:
        md = _twin(app, pagename)
        if md is not None:
            target = Path(app.outdir, "_sources", pagename + ".md")
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(md, target)


def setup(app):
    app.connect("builder-inited", html_handlers_for_singlehtml)
    app.connect("html-page-context", add_md_download, priority=502)
    app.connect("html-page-context", add_book_pdf_download, priority=503)
    app.connect("build-finished", copy_twins)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
