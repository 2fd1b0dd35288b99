"""Regenerate a chapter's .ipynb from its .md and execute it top to bottom in a fresh kernel.

    python -m tools.notebook chapters/01-chain-rule.md [more.md ...]

The .md is the source; the .ipynb is always rebuilt from scratch (never updated in place, so no
stale output survives). Cell ids are numbered and timing metadata is off, so re-running an
unchanged chapter rewrites an identical file apart from what its code prints.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import jupytext
import nbformat
from nbclient import NotebookClient

KERNEL = "python3"
TIMEOUT = 600


def build(md: Path) -> Path:
    md = Path(md)
    if md.suffix == ".ipynb":
        md = md.with_suffix(".md")
    if not md.exists():
        raise SystemExit(f"{md}: no such chapter source (expected a MyST markdown notebook).")
    nb = jupytext.read(md)
    nb.metadata.get("jupytext", {}).get("text_representation", {}).pop("jupytext_version", None)
    nb.metadata["kernelspec"] = {"name": KERNEL, "display_name": "Python 3 (ipykernel)", "language": "python"}
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"cell-{i:03d}"
    NotebookClient(nb, timeout=TIMEOUT, kernel_name=KERNEL, record_timing=False,
                   resources={"metadata": {"path": str(md.parent.resolve())}}).execute()
    out = md.with_suffix(".ipynb")
    nbformat.validate(nb)
    out.write_text(nbformat.writes(nb) + "\n", encoding="utf-8")
    return out


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__)
        return 2
    for arg in argv:
        start = time.perf_counter()
        out = build(Path(arg))
        print(f"{out}: regenerated and executed in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
