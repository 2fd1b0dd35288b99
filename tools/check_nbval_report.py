"""Nothing skipped: every toc notebook had every code cell validated by nbval, and passed.

Reads the JUnit XML that `pytest --nbval --junitxml=... -o junit_family=xunit1` wrote and fails
unless each notebook listed in _toc.yml shows exactly one passing test per code cell.

    python -m tools.check_nbval_report REPORT.xml [ROOT]
"""
from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

import nbformat

from tools.toc import toc_notebooks


def audit(report: Path, root: Path) -> list[str]:
    if not report.exists():
        return [f"{report}: no nbval report; did the nbval run happen?"]
    passed, bad = Counter(), []
    for case in ET.parse(report).getroot().iter("testcase"):
        file = case.get("file") or ""
        outcome = next((child.tag for child in case if child.tag in ("failure", "error", "skipped")), "passed")
        if outcome == "passed":
            passed[Path(file).as_posix()] += 1
        else:
            bad.append(f"{file}::{case.get('name')}: {outcome}")
    problems = [f"nbval did not pass {b}" for b in bad]
    notebooks = toc_notebooks(root)
    for nb_path in notebooks:
        if not (root / nb_path).is_file():
            problems.append(f"_toc.yml lists {nb_path}, which does not exist, so nbval validated nothing "
                            f"of it; run `make notebook NB={nb_path.with_suffix('.md')}` or remove the entry")
            continue
        cells = sum(1 for c in nbformat.read(root / nb_path, as_version=4).cells if c.cell_type == "code")
        got = passed.get(nb_path.as_posix(), 0)
        if got != cells:
            problems.append(f"{nb_path}: nbval validated {got} of its {cells} code cells")
    if not notebooks:
        problems.append("_toc.yml lists no notebook: nothing was validated")
    return problems


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__)
        return 2
    report = Path(argv[0])
    root = Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parent.parent
    problems = audit(report, root)
    for p in problems:
        print(p)
    if not problems:
        total = len(toc_notebooks(root))
        print(f"nbval audit: all {total} toc notebooks validated, every code cell passed")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
