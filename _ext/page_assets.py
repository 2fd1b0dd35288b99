"""Keep every page's scripts local and free of JavaScript errors.

Three fixes to what Sphinx writes into each page's ``<head>``:

1. **THEBE_JS_URL declared twice.** Sphinx 7.4's ``app.add_js_file(None, body=...)`` registers an
   inline script twice when called after the builder is initialised (``builder-inited`` or later):
   once in the builder's list as ``_JavaScript(None, ...)`` and once in the registry, which
   ``StandaloneHTMLBuilder.prepare_writing`` adds again as ``_JavaScript('', ...)``. ``None != ''``,
   so the builder's de-duplication misses it and the page gets the script twice. sphinx-thebe adds
   ``const THEBE_JS_URL = ...`` at ``env-before-read-docs``, so the second copy throws
   ``SyntaxError: Identifier 'THEBE_JS_URL' has already been declared`` (sphinx-togglebutton's
   ``var togglebuttonSelector`` is duplicated the same way, silently). Before each page is
   rendered, this extension normalises inline scripts to ``''`` and drops the duplicates.

2. **MathJax served from the book.** ``mathjax_path`` (``_config.yml``) points at the vendored
   ``_static/mathjax/tex-svg.js``: ``es5/tex-svg.js`` of ``npm pack mathjax@3.2.2`` (sha256
   ``d4295dc33744836935c1399feece5159577b34c5c8ffb9f1c6324cd82e03a882``, Apache-2.0, ``LICENSE``
   beside it), one self-contained file whose SVG output needs no web fonts. Sphinx takes a
   relative ``mathjax_path`` relative to ``_static/``; MathJax finds its components relative to its
   own ``<script src>``. Jupyter Book adds every ``*.js`` under ``_static/`` to ``html_js_files``,
   which would load MathJax a second time (and any component as a plain script) on every page;
   this extension takes ``_static/mathjax/`` out of that list, and fails the build if a local
   ``mathjax_path`` does not exist.

3. **Nothing else in the console on a first visit.** pydata-sphinx-theme logs "Got invalid theme
   mode: . Resetting to auto." when a reader with no stored preference opens a page, because
   ``default_mode`` in its template context is empty: it is set to ``auto`` (what the theme falls
   back to anyway) unless ``html_context`` chooses one. A book without ``html_favicon`` makes the
   browser request ``/favicon.ico`` from the server root (a 404 in the console): such a book gets
   an empty inline icon instead. That includes ``index.html``, the redirect to the root page, which
   sphinx-external-toc writes as a bare ``<meta>`` tag when it is missing: this extension writes it
   first, as a small valid page with the same redirect.

To vendor another MathJax component (for example a TeX extension that ``autoload`` fetches, such
as ``input/tex/extensions/boldsymbol.js``), copy it from the same ``npm pack mathjax@3.2.2`` into
``_static/mathjax/`` under the same relative path; the browser test reports a missing one as a
failed request.
"""
from __future__ import annotations

import html
from pathlib import Path

from sphinx.errors import ConfigError

MATHJAX_DIR = "mathjax/"


def _is_vendored_mathjax(entry) -> bool:
    filename = entry[0] if isinstance(entry, (tuple, list)) else entry
    return isinstance(filename, str) and filename.replace("\\", "/").startswith(MATHJAX_DIR)


def drop_auto_added_mathjax(app, config):
    """Jupyter Book lists every _static/**/*.js in html_js_files: keep MathJax's files out."""
    config.html_js_files = [e for e in config.html_js_files if not _is_vendored_mathjax(e)]
    path = getattr(config, "mathjax_path", None)
    if path and "://" not in path and not path.startswith("/"):
        local = Path(app.srcdir, "_static", path)
        if not local.is_file():
            raise ConfigError(f"mathjax_path {path!r}: {local} does not exist")


def set_theme_defaults(app, pagename, templatename, context, doctree):
    if not context.get("default_mode"):  # pydata-sphinx-theme reads it from html_context
        context["default_mode"] = "auto"


def no_favicon_request(app, pagename, templatename, context, doctree):
    if not app.config.html_favicon:
        context["metatags"] = context.get("metatags", "") + '\n    <link rel="icon" href="data:,">'


REDIRECT_PAGE = """<!DOCTYPE html>
<html lang="{lang}">
<head>
  <meta charset="utf-8">
  <title>{title}</title>
  {icon}<meta http-equiv="refresh" content="0; url={url}">
  <link rel="canonical" href="{url}">
</head>
<body><p><a href="{url}">{title}</a></p></body>
</html>
"""


def write_index_redirect(app, exception):
    """Write index.html as a redirect to the root page (before sphinx-external-toc would)."""
    if exception is not None or app.builder.name != "html" or "index" in app.env.found_docs:
        return
    icon = "" if app.config.html_favicon else '<link rel="icon" href="data:,">\n  '
    page = REDIRECT_PAGE.format(lang=html.escape(app.config.language or "en"),
                                title=html.escape(app.config.html_title or app.config.project),
                                url=html.escape(app.builder.get_target_uri(app.config.root_doc)),
                                icon=icon)
    Path(app.outdir, "index.html").write_text(page, encoding="utf-8")


def dedupe_scripts(app, pagename, templatename, context, doctree):
    """Render each script once: inline scripts registered as None and as '' are the same."""
    scripts = context.get("script_files")
    if not scripts:
        return
    from sphinx.builders.html._assets import _JavaScript

    unique = []
    for js in scripts:
        if isinstance(js, _JavaScript) and js.filename is None:
            js = _JavaScript("", priority=js.priority, **js.attributes)
        if js not in unique:
            unique.append(js)
    scripts[:] = unique


def setup(app):
    app.connect("config-inited", drop_auto_added_mathjax, priority=900)
    app.connect("html-page-context", set_theme_defaults)
    app.connect("html-page-context", no_favicon_request)
    # after sphinx.ext.mathjax (500) and every other extension has added its page scripts
    app.connect("html-page-context", dedupe_scripts, priority=990)
    app.connect("build-finished", write_index_redirect, priority=400)  # etoc's runs at 500
    return {"parallel_read_safe": True, "parallel_write_safe": True}
