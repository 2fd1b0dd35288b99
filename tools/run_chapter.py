"""Run a chapter as a plain script would, without stopping at the errors the lesson expects.

    python -m tools.run_chapter chapters/01-chain-rule.md      # or a learner/NN-name.ipynb

Executes the chapter's code cells in order in a fresh Jupyter kernel (IPython, so the chapters'
``%`` magics work) and prints what each prints. A cell tagged ``raises-exception`` shows its
error as one line and the run goes on; any other error stops the run with exit status 1.
Writes no file: the chapter's .md and .ipynb stay as they are.
"""
from __future__ import annotations

import sys
from pathlib import Path

import jupytext
import nbformat

from tools.kernel import NotebookFailed, running


def _print_outputs(cell) -> None:
    for out in cell.get("outputs", []):
        kind = out.get("output_type")
        if kind == "stream":
            (sys.stderr if out.get("name") == "stderr" else sys.stdout).write(out.get("text", ""))
        elif kind in ("execute_result", "display_data"):
            data = out.get("data", {})
            if any(k.startswith("image/") for k in data):
                print("[figure]")
            elif "text/plain" in data:
                print(data["text/plain"])
        elif kind == "error":
            print(f"{out.get('ename')}: {out.get('evalue')}   (expected: the cell is tagged raises-exception)")


def load(path: Path):
    path = Path(path)
    if path.suffix == ".md" or (not path.suffix and path.with_suffix(".md").is_file()):
        return jupytext.read(path.with_suffix(".md"))
    return nbformat.read(path, as_version=4)


def run(path: Path) -> int:
    path = Path(path)
    nb = load(path)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    code = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    with running(nb, path.parent) as run_cell:
        for index in code:
            try:
                run_cell(index, str(path))
            except NotebookFailed as err:
                cell = nb.cells[index]
                _print_outputs({"outputs": [o for o in cell.outputs if o.get("output_type") != "error"]})
                print(err, file=sys.stderr)
                return 1
            _print_outputs(nb.cells[index])
    print(f"{path}: all {len(code)} code cells ran", file=sys.stderr)
    return 0


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__)
        return 2
    path = Path(argv[0])
    if not (path.is_file() or path.with_suffix(".md").is_file()):
        print(f"tools.run_chapter: {path}: no such chapter", file=sys.stderr)
        return 2
    return run(path)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
