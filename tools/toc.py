"""The notebooks the book is made of, read from _toc.yml (the single list every check uses).

    python -m tools.toc          # one path per line: chapters/....ipynb
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


if __name__ == "__main__":
    sys.stdout.write("".join(f"{p}\n" for p in toc_notebooks()))
