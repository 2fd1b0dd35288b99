"""The notebooks the book is made of, read from _toc.yml (the single list every check uses).

    python -m tools.toc          # one path per line: chapters/....ipynb
    python -m tools.toc --sources   # their .md sources (the notebooks need not exist yet)

Exits 1, naming each one on stderr, when a toc notebook does not exist (so that `make nbval`
stops with the name instead of validating nothing).
"""
from __future__ import annotations

import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def _files(node) -> list[str]:
    out = []
    if isinstance(node, dict):
        if "file" in node:
            out.append(node["file"])
        for key in ("root", ):
            if key in node:
                out.append(node[key])
        for key in ("parts", "chapters", "sections"):
            for child in node.get(key, []) or []:
                out.extend(_files(child))
    return out


def toc_files(root: Path = ROOT) -> list[str]:
    """Every document of the toc, as written there (root first)."""
    return _files(yaml.safe_load((root / "_toc.yml").read_text(encoding="utf-8")))


def toc_notebooks(root: Path = ROOT) -> list[Path]:
    """The executable chapters: toc entries that are .ipynb files, relative to ``root``."""
    return [Path(f) for f in toc_files(root) if f.endswith(".ipynb")]


def missing_notebooks(root: Path = ROOT) -> list[str]:
    """One message per toc notebook that is not there."""
    return [f"_toc.yml lists {p}, which does not exist; run `make notebook NB={p.with_suffix('.md')}` "
            f"or remove the entry" for p in toc_notebooks(root) if not (root / p).is_file()]


def main(argv: list[str]) -> int:
    sources = "--sources" in argv
    argv = [a for a in argv if a != "--sources"]
    root = Path(argv[0]) if argv else ROOT
    if sources:
        sys.stdout.write("".join(f"{p.with_suffix('.md')}\n" for p in toc_notebooks(root)))
        return 0
    missing = missing_notebooks(root)
    for line in missing:
        print(line, file=sys.stderr)
    if missing:
        return 1
    notebooks = toc_notebooks(root)
    if not notebooks:
        print(f"{root / '_toc.yml'}: lists no .ipynb chapter", file=sys.stderr)
        return 1
    sys.stdout.write("".join(f"{p}\n" for p in notebooks))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
