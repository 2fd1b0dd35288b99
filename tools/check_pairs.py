"""The pair check: every toc chapter's .ipynb is its .md, executed, and shows what the lesson says.

Fails (exit 1, one line per problem) when, for a notebook listed in _toc.yml:
- its .md source or its .ipynb is missing;
- their cells differ: type, source, tags or any other cell metadata the book renders (figure
  caption and name, image alt text, hidden flags), markdown included (the book renders the .ipynb);
- a code cell was never executed, or the execution counts are not 1, 2, 3, ... in order
  (the notebook was not run top to bottom in one fresh kernel), or no code cell has an output
  (nbval would compare nothing);
- a cell that must produce output has none stored: a figure cell without an image, a cell tagged
  ``raises-exception`` without its error, a cell that calls ``print``/``display`` at top level or
  ends in a value (a literal, arithmetic, a comparison, ...) without any output (nbval then
  re-executes every cell and compares the rest);
- an expected error is not the one the lesson names: a ``raises-exception`` cell's stored error
  type (``RuntimeError``, ...) must be named in the prose right before or right after the cell, or
  in a tag ``raises:RuntimeError`` on the cell; a SyntaxError or NameError from a typo therefore
  never passes as the lesson's error;
- a figure has no caption, or no real alt text (empty, or a file name or path);
and when a MyST notebook under chapters/ is not in the toc at all.

    python -m tools.check_pairs [ROOT]
"""
from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import jupytext
import nbformat

from tools.toc import toc_notebooks

# Cell metadata that Jupyter front ends keep as UI state and jupytext leaves out of the .md;
# the book renders none of it.
UI_STATE = {"collapsed", "scrolled", "autoscroll", "trusted", "ExecuteTime", "execution",
            "deletable", "editable", "id"}
VALUE_NODES = (ast.Constant, ast.BinOp, ast.UnaryOp, ast.Compare, ast.Tuple, ast.List, ast.Dict,
               ast.Set, ast.JoinedStr, ast.ListComp, ast.DictComp, ast.SetComp)
PRINTERS = {"print", "display"}
IMAGE_EXT = r"\.(png|jpe?g|gif|svg|pdf|webp)"


def _metadata(cell) -> dict:
    meta = {k: v for k, v in cell.metadata.items() if k not in UI_STATE}
    if "tags" in meta:
        meta["tags"] = sorted(meta["tags"])
    return meta


def _cells(nb) -> list[tuple[str, str, dict]]:
    return [(c.cell_type, c.source.strip(), _metadata(c)) for c in nb.cells]


def _differs(a, b) -> str:
    if a[0] != b[0]:
        return "cell type"
    if a[1] != b[1]:
        return "source"
    keys = sorted(k for k in set(a[2]) | set(b[2]) if a[2].get(k) != b[2].get(k))
    return "metadata (" + ", ".join(keys) + ")"


def _tags(cell) -> list[str]:
    return list(cell.metadata.get("tags", []))


def _parse(source: str):
    """The cell's Python AST, IPython magics and shell lines blanked out; None if it does not parse."""
    lines = ["pass" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines()]
    try:
        return ast.parse("\n".join(lines))
    except SyntaxError:
        return None


def _top_level(body):
    for node in body:
        yield node
        if isinstance(node, (ast.With, ast.Try)):
            yield from _top_level(node.body)


def _must_print(cell) -> str | None:
    """Why this code cell certainly produces output, or None when that depends on its values."""
    mystnb = cell.metadata.get("mystnb", {})
    if "raises-exception" in _tags(cell):
        return "it is tagged raises-exception, so its error is the output"
    if "figure" in mystnb or "image" in mystnb:
        return "it has figure metadata, so it draws a figure"
    tree = _parse(cell.source)
    if tree is None:
        return None
    for node in _top_level(tree.body):
        if (isinstance(node, ast.Expr) and isinstance(node.value, ast.Call)
                and isinstance(node.value.func, ast.Name) and node.value.func.id in PRINTERS):
            return f"it calls {node.value.func.id}() at top level"
    last = tree.body[-1] if tree.body else None
    if (isinstance(last, ast.Expr) and isinstance(last.value, VALUE_NODES)
            and not (isinstance(last.value, ast.Constant) and last.value.value is None)
            and not cell.source.rstrip().endswith(";")):
        return "it ends in a value, which Jupyter displays"
    return None


def _has(outputs, kind: str) -> bool:
    if kind == "image":
        return any(k.startswith("image/") for o in outputs for k in o.get("data", {}))
    if kind == "error":
        return any(o.get("output_type") == "error" for o in outputs)
    return bool(outputs)


def missing_alt(alt) -> bool:
    """Alt text that describes nothing: empty, one word, or a file name or path."""
    text = str(alt or "").strip()
    if not text:
        return True
    if re.fullmatch(r"[\w.~:/\\-]+", text):           # one token: a name, a path, a URL
        return True
    return bool(re.search(r"[\w./\\-]+" + IMAGE_EXT + r"\b", text, re.I)) and len(text.split()) < 4


def _prose_names(cells, index: int, name: str) -> bool:
    before = next((c.source for c in reversed(cells[:index]) if c.cell_type == "markdown"), "")
    after = next((c.source for c in cells[index + 1:] if c.cell_type == "markdown"), "")
    return any(re.search(r"(?<![\w.])" + re.escape(name) + r"\b", text) for text in (before, after))


def check_cells(nb, ipynb: Path, md: Path) -> list[str]:
    """What every executed cell must show: outputs, the named error, captions and alt text."""
    problems = []
    fix = f"run `make notebook NB={md}`"
    for i, cell in enumerate(nb.cells):
        where = f"{ipynb}: cell {i + 1}"
        if cell.cell_type == "markdown":
            for alt in re.findall(r"!\[([^\]]*)\]\(", cell.source) + re.findall(r"^:alt:(.*)$", cell.source, re.M):
                if missing_alt(alt):
                    problems.append(f"{where}: an image with no real alt text ({alt.strip()!r}); "
                                    f"describe what a sighted reader sees (axes, ranges, shapes)")
            continue
        if cell.cell_type != "code":
            continue
        outputs = cell.get("outputs", [])
        reason = _must_print(cell)
        if reason:
            kind = ("error" if "raises-exception" in reason else "image" if "figure" in reason else "any")
            if not _has(outputs, kind):
                what = {"error": "error", "image": "image", "any": "output"}[kind]
                problems.append(f"{where}: no stored {what}, but {reason}; {fix}")
        if "raises-exception" in _tags(cell):
            declared = [t.split(":", 1)[1] for t in _tags(cell) if t.startswith("raises:")]
            for err in (o for o in outputs if o.get("output_type") == "error"):
                name = err.get("ename", "")
                if declared and name not in declared:
                    problems.append(f"{where}: raises {name}, but its tag says raises:{declared[0]}")
                elif not declared and not _prose_names(nb.cells, i, name):
                    problems.append(
                        f"{where}: raises {name} ({str(err.get('evalue', ''))[:60]!r}), which neither "
                        f"the prose right before or after it nor a `raises:{name}` tag names; "
                        f"name the error the lesson expects, or fix the cell")
        mystnb = cell.metadata.get("mystnb", {})
        if _has(outputs, "image") or "figure" in mystnb or "image" in mystnb:
            if missing_alt(mystnb.get("image", {}).get("alt")):
                problems.append(f"{where}: a figure without real alt text "
                                f"({mystnb.get('image', {}).get('alt')!r}); set mystnb.image.alt to "
                                f"what a sighted reader sees (axes, ranges, shapes), never a file name")
            if not str(mystnb.get("figure", {}).get("caption", "")).strip():
                problems.append(f"{where}: a figure without a caption; set mystnb.figure.caption")
    return problems


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
        what = _differs(source[first], stored[first]) if first < min(len(source), len(stored)) else "number of cells"
        problems.append(f"{ipynb}: cells differ from {md.name} from cell {first + 1} on, in its {what} "
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
    problems += check_cells(nb, ipynb, md)
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
