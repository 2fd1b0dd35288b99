"""Offer each chapter's MyST markdown source beside its notebook in the page's download menu.

A chapter page is rendered from its executed ``.ipynb``; its ``.md`` twin (the file authors edit,
which opens as a notebook through jupytext) is excluded from the build. This extension copies the
twin into ``_sources/`` and adds a ``.md`` entry to sphinx-book-theme's download button.
"""
from __future__ import annotations

import shutil
from pathlib import Path


def _twin(app, pagename: str) -> Path | None:
    source = Path(app.srcdir, pagename + ".ipynb")
    md = source.with_suffix(".md")
    return md if source.exists() and md.exists() else None


def add_md_download(app, pagename, templatename, context, doctree):
    md = _twin(app, pagename)
    if md is None:
        return
    pathto = context["pathto"]
    for group in context.get("header_buttons", []):
        if group.get("label") == "download-buttons":
            group["buttons"].insert(1, {
                "type": "link",
                "url": f"{pathto('_sources', 1)}/{pagename}.md",
                "text": ".md",
                "tooltip": "Download the MyST markdown source (opens as a notebook with jupytext)",
                "icon": "fas fa-file-lines",
                "label": "download-md-button",
            })


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
    app.connect("html-page-context", add_md_download, priority=502)
    app.connect("build-finished", copy_twins)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
