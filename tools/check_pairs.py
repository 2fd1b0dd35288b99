"""The pair check: every toc chapter's .ipynb is its .md, executed.

Fails (exit 1, one line per problem) when, for a notebook listed in _toc.yml:
- its .md source or its .ipynb is missing;
- their cells differ (type, source or tags, markdown included: the book renders the .ipynb's prose);
- a code cell was never executed, or the execution counts are not 1, 2, 3, ... in order
  (the notebook was not run top to bottom in one fresh kernel), or no code cell has an output
  (nbval would compare nothing);
and when a MyST notebook under chapters/ is not in the toc at all.

    python -m tools.check_pairs [ROOT]
"""
from __future__ import annotations

import sys
from pathlib import Path

import jupytext
import nbformat

from tools.toc import toc_notebooks


def _cells(nb) -> list[tuple[str, str, tuple]]:
    return [(c.cell_type, c.source.strip(), tuple(sorted(c.metadata.get("tags", []))))
            for c in nb.cells]


def check_pair(md: Path, ipynb: Path) -> list[str]:
    problems = []
    if not md.exists():
        return [f"{md}: missing; every chapter notebook is generated from its .md"]
    if not ipynb.exists():
        return [f"{ipynb}: missing; run `make notebook NB={md}`"]
    source = _cells(jupytext.read(md))
    nb = nbformat.read(ipynb, as_version=4)
    stored = _cells(nb)
    if source != stored:
        first = next((i for i, (a, b) in enumerate(zip(source, stored)) if a != b), min(len(source), len(stored)))
        problems.append(f"{ipynb}: cells differ from {md.name} from cell {first + 1} on "
                        f"({len(source)} cells in .md, {len(stored)} in .ipynb); run `make notebook NB={md}`")
    code = [c for c in nb.cells if c.cell_type == "code"]
    counts = [c.get("execution_count") for c in code]
    if code and any(n is None for n in counts):
        missing = sum(n is None for n in counts)
        problems.append(f"{ipynb}: {missing} of {len(code)} code cells were never executed, so nbval would not compare them")
    elif counts != list(range(1, len(code) + 1)):
        problems.append(f"{ipynb}: execution counts {counts[:8]}... are not 1..{len(code)} in order; "
                        f"execute it top to bottom in a fresh kernel (`make notebook NB={md}`)")
    if code and not any(c.get("outputs") for c in code):
        problems.append(f"{ipynb}: no code cell has a stored output, so nbval would compare nothing")
    return problems


def check_tree(root: Path) -> list[str]:
    root = Path(root)
    notebooks = [root / p for p in toc_notebooks(root)]
    problems = []
    if not notebooks:
        problems.append(f"{root / '_toc.yml'}: lists no .ipynb chapter, so nothing would be validated")
    for ipynb in notebooks:
        problems += check_pair(ipynb.with_suffix(".md"), ipynb)
    listed = {p.with_suffix(".md").resolve() for p in notebooks}
    for md in sorted((root / "chapters").glob("*.md")):
        if md.resolve() not in listed and "{code-cell}" in md.read_text(encoding="utf-8"):
            problems.append(f"{md}: a chapter notebook that _toc.yml does not list (add it, or remove it)")
    return problems


def main(argv: list[str]) -> int:
    root = Path(argv[0]) if argv else Path(__file__).resolve().parent.parent
    problems = check_tree(root)
    for p in problems:
        print(p)
    if not problems:
        print(f"pair check: {len(toc_notebooks(root))} notebooks match their .md and are executed")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
