"""Build a preview of the book plus chapters not yet in the toc, into its own folder, warnings as errors.

    python -m tools.preview chapters/03-x.md [more ...]     # -> /tmp/preview-03-x/_build/html

For authors working on chapters that are not in _toc.yml yet, or several at once: each preview
has its own toc (the book's chapters plus the requested ones) and output folder, so previews never
disturb _build/ or each other.
"""
from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from tools.toc import toc_notebooks

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__)
        return 2
    requested = [Path(a).with_suffix(".ipynb").as_posix() for a in argv]
    # Every toc chapter is built too, so that links to them (the landing page has one to each) resolve.
    start = "chapters/00-getting-started.ipynb"
    chapters = [c for c in dict.fromkeys([p.as_posix() for p in toc_notebooks(ROOT)] + requested) if c != start]
    toc = {
        "format": "jb-book",
        "root": "intro",
        "parts": [
            {"caption": "Start here", "chapters": [{"file": start}]},
            {"caption": "Chapters", "numbered": True, "chapters": [{"file": c} for c in chapters]},
            {"caption": "Reference", "chapters": [{"file": "glossary"}, {"file": "running-locally"}, {"file": "references"}]},
        ],
    }
    out = Path(tempfile.gettempdir()) / ("preview-" + Path(requested[0]).stem)
    out.mkdir(parents=True, exist_ok=True)
    toc_path = out / "_toc.yml"
    toc_path.write_text(yaml.safe_dump(toc, sort_keys=False), encoding="utf-8")
    cmd = [str(Path(sys.executable).parent / "jupyter-book"), "build", str(ROOT), "--toc", str(toc_path),
           "--path-output", str(out), "--all", "--warningiserror", "--keep-going"]
    rc = subprocess.call(cmd)
    print(f"preview {'built' if rc == 0 else 'FAILED (see warnings above)'}: {out / '_build' / 'html'}")
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
