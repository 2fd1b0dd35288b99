"""Every chapter is stored exactly as jupytext writes it, so JupyterLab's save changes nothing.

The .md must be what jupytext (with the repository's jupytext.toml) writes for it; the .ipynb
what jupytext's contents manager writes for the paired .ipynb (no ``text_representation``).
`make notebook` writes both forms; tests/test_jupyter_local.py proves it through a real server.
"""
from pathlib import Path

import jupytext
import nbformat
import pytest
from jupytext.config import load_jupytext_config

from tools.notebook import canonical_md, ipynb_text
from tools.toc import toc_notebooks

ROOT = Path(__file__).resolve().parent.parent
CHAPTERS = [ROOT / p for p in toc_notebooks(ROOT)]


@pytest.mark.parametrize("ipynb", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_chapter_md_round_trips_through_jupytext(ipynb):
    md = ipynb.with_suffix(".md")
    text = md.read_text(encoding="utf-8")
    assert canonical_md(md) == text, (
        f"{md.name} is not in jupytext's canonical form, so saving it in JupyterLab rewrites it; "
        f"`make notebook NB=chapters/{md.name}` rewrites it in that form")
    config = load_jupytext_config(str(md))
    assert jupytext.writes(jupytext.reads(text, fmt="md:myst"), fmt="md:myst", config=config) == text


@pytest.mark.parametrize("ipynb", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_chapter_ipynb_is_what_jupytext_saves(ipynb):
    text = ipynb.read_text(encoding="utf-8")
    nb = nbformat.reads(text, as_version=4)
    assert "text_representation" not in nb.metadata.get("jupytext", {}), (
        f"{ipynb.name} keeps jupytext.text_representation, which JupyterLab drops when it saves; "
        f"run `make notebook NB=chapters/{ipynb.with_suffix('.md').name}`")
    assert ipynb_text(nb) == text, f"{ipynb.name} is not serialised as jupytext saves it"


@pytest.mark.parametrize("ipynb", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_the_ipynb_as_text_is_the_md(ipynb):
    # What jupytext's contents manager checks when the .ipynb is newer than the .md (as after
    # `make notebook`, or a checkout): if the two texts differ, JupyterLab refuses to open the .md.
    md = ipynb.with_suffix(".md")
    config = load_jupytext_config(str(md))
    from_ipynb = jupytext.writes(nbformat.read(ipynb, as_version=4), fmt="md:myst", config=config)
    assert from_ipynb == md.read_text(encoding="utf-8"), (
        f"{ipynb.name} and {md.name} differ as text (e.g. the order of a cell's metadata keys), so "
        f"JupyterLab refuses to open {md.name}; run `make notebook NB=chapters/{md.name}`")
