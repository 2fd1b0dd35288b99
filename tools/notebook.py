"""Regenerate a chapter's .ipynb from its .md and execute it top to bottom in a fresh kernel.

    python -m tools.notebook chapters/01-chain-rule.md [more ...]

A chapter is named by its source, ``chapters/NN-name.md``, with or without the ``.md`` suffix
(``chapters/NN-name.ipynb`` names the same chapter); anything else (``glossary.md``, a folder, a
file outside ``chapters/``, a Markdown file that is not a notebook) is refused with a message.

The .md is the source; the .ipynb is always rebuilt from scratch (never updated in place, so no
stale output survives). Cell ids are numbered and timing metadata is off, so re-running an
unchanged chapter rewrites an identical file apart from what its code prints.

Both files are written in exactly the form jupytext writes them (with the repository's
jupytext.toml), so that opening a chapter in JupyterLab (jupytext's contents manager) and saving it
changes neither file: the .md is rewritten in jupytext's canonical form when it is not in it
already (YAML cell metadata re-wrapped, for example), and the .ipynb is serialised the way the
contents manager saves the .ipynb twin (without ``jupytext.text_representation``).
"""
from __future__ import annotations

import re
import sys
import time
from pathlib import Path

import jupytext
import nbformat
from jupytext.config import load_jupytext_config

from tools.kernel import KERNEL, NotebookFailed, execute
CHAPTER_NAME = re.compile(r"\d\d-[a-z0-9][a-z0-9-]*")
USAGE = "usage: make notebook NB=chapters/NN-name.md   (or: python -m tools.notebook chapters/NN-name.md)"


class NotAChapter(ValueError):
    """The argument does not name a chapter source."""


def chapter_source(arg: str | Path) -> Path:
    """The chapter .md that ``arg`` names, or NotAChapter with what was wrong and what to pass."""
    text = str(arg).strip()
    if not text:
        raise NotAChapter(f"no chapter given; {USAGE}")
    path = Path(text)
    if path.is_dir():
        raise NotAChapter(f"{text}: is a folder, not a chapter; name one chapter, e.g. "
                          f"chapters/01-chain-rule.md (`make notebooks` regenerates them all)")
    if path.suffix in (".md", ".ipynb"):
        path = path.with_suffix(".md")
    elif path.suffix:
        raise NotAChapter(f"{text}: not a chapter source (a chapter is chapters/NN-name.md)")
    else:
        path = path.with_name(path.name + ".md")
    if path.resolve().parent.name != "chapters" or not CHAPTER_NAME.fullmatch(path.stem):
        raise NotAChapter(f"{text}: not a chapter; chapters are chapters/NN-name.md "
                          f"(glossary, intro and the other plain pages have no notebook)")
    if not path.is_file():
        raise NotAChapter(f"{text}: no such chapter source ({path} does not exist)")
    header = path.read_text(encoding="utf-8")[:2000]
    if not (header.startswith("---") and "format_name: myst" in header):
        raise NotAChapter(f"{path}: not a MyST markdown notebook (it needs the jupytext header of "
                          f"chapters/00-getting-started.md)")
    return path


def canonical_md(md: Path) -> str:
    """The chapter source exactly as jupytext (and so JupyterLab) writes it.

    The notebook goes through its JSON form first, which sorts every cell's metadata keys, so the
    .md is also exactly what jupytext makes of the paired .ipynb. JupyterLab compares the two when
    the .ipynb is the newer file (as after `make notebook`), and refuses to open a chapter whose
    two texts differ even in the order of two metadata keys.
    """
    config = load_jupytext_config(str(md.resolve()))
    nb = nbformat.reads(nbformat.writes(jupytext.read(md)), as_version=4)
    return jupytext.writes(nb, fmt="md:myst", config=config)


def ipynb_text(nb) -> str:
    """The executed notebook as jupytext's contents manager saves a paired .ipynb."""
    return jupytext.writes(nb, fmt="ipynb") + "\n"


def merge_streams(nb) -> None:
    """Join consecutive stdout (or stderr) pieces of a cell into one output, as nbval compares them.

    A kernel may flush a printed table in several pieces; stored apart, they render with stray
    breaks in the book.
    """
    for cell in nb.cells:
        merged = []
        for out in cell.get("outputs", []):
            if (out.get("output_type") == "stream" and merged
                    and merged[-1].get("output_type") == "stream" and merged[-1]["name"] == out["name"]):
                merged[-1]["text"] += out["text"]
            else:
                merged.append(out)
        if "outputs" in cell:
            cell["outputs"] = merged


def build(md: Path) -> Path:
    md = Path(md)
    if md.suffix == ".ipynb":
        md = md.with_suffix(".md")
    if not md.exists():
        raise SystemExit(f"{md}: no such chapter source (expected a MyST markdown notebook).")
    text = canonical_md(md)
    if text != md.read_text(encoding="utf-8"):
        md.write_text(text, encoding="utf-8")
        print(f"{md}: rewritten in jupytext's canonical form (what JupyterLab saves)")
    nb = jupytext.read(md)
    nb.metadata.get("jupytext", {}).get("text_representation", {}).pop("jupytext_version", None)
    nb.metadata["kernelspec"] = {"name": KERNEL, "display_name": "Python 3 (ipykernel)", "language": "python"}
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"cell-{i:03d}"
    execute(nb, md.parent, str(md))
    merge_streams(nb)
    out = md.with_suffix(".ipynb")
    nbformat.validate(nb)
    out.write_text(ipynb_text(nb), encoding="utf-8")
    return out


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__)
        return 2
    try:
        chapters = [chapter_source(arg) for arg in argv]
    except NotAChapter as err:
        print(f"tools.notebook: {err}", file=sys.stderr)
        return 2
    for md in chapters:
        start = time.perf_counter()
        try:
            out = build(md)
        except NotebookFailed as err:
            print(f"tools.notebook: {err}\n(the .ipynb was not written; fix the .md and run again)",
                  file=sys.stderr)
            return 1
        print(f"{out}: regenerated and executed in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
