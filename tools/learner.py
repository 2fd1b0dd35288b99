"""The learner edition: each chapter as a plain notebook with the solutions left out.

    python -m tools.learner                      # every toc chapter -> learner/NN-name.ipynb
    python -m tools.learner chapters/01-chain-rule.md [--out DIR] [--execute] [--check]

Generated from the chapter's .md (the source), never edited: ``learner/`` is gitignored and
rewritten by ``make learner`` (``make lab`` runs it first). In each notebook:

- every cell between a ``{solution-start}`` fence and its ``{solution-end}`` fence is gone, prose
  and code; so is a hidden (``remove-cell``) cell outside them that would fail without the solution
  (one that asserts a self-check, or uses a name only a solution defines);
- the MyST-only syntax becomes Markdown that JupyterLab, Notebook 7 and VS Code render: an
  exercise is a quoted block headed "Exercise N", admonitions are quoted blocks, roles become
  their text ({term}, {ref}), links to the other learner notebooks ({doc}), "Figure N" ({numref},
  with a visible caption under each figure), or "Author (year)" ({cite:t}, {cite:p});
- outputs are cleared (the learner runs it); cells the book hides are collapsed, one click away.

``--check`` fails (exit 1) when a notebook still has a solution or raw MyST syntax; ``--execute``
runs each one top to bottom in a fresh kernel (only cells tagged ``raises-exception`` may raise).
"""
from __future__ import annotations

import argparse
import ast
import hashlib
import json
import platform
import re
import sys
from pathlib import Path

import jupytext
import nbformat

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "learner"
KERNEL = "python3"

FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|:{3,})\s*\{(?P<name>[\w:-]+)\}\s*(?P<args>.*)$")
PLAIN_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})(?!.*\{)")
ROLE = re.compile(r"\{(?P<role>[\w:-]+)\}`(?P<body>[^`]*)`")
TARGET = re.compile(r"^(?P<text>.*?)\s*<(?P<target>[^<>]+)>$", re.S)
LABEL_LINE = re.compile(r"^\((?P<label>[\w.:-]+)\)=\s*$")
HIDDEN_TAGS = {"remove-cell", "remove-input", "hide-input", "hide-cell"}
ADMONITIONS = {"note", "tip", "hint", "important", "warning", "caution", "attention", "danger",
               "error", "seealso", "admonition", "margin", "sidebar", "topic", "dropdown"}
# What --check refuses in a learner notebook's prose (outside code blocks).
RAW_MYST = [(re.compile(r"^\s*(`{3,}|:{3,})\s*\{"), "a MyST directive fence"),
            (re.compile(r"\{[\w:-]+\}`"), "a MyST role"),
            (re.compile(r"^\s*:(label|class|tags|name|alt|width|align):", re.M), "a directive option"),
            (re.compile(r"^\([\w.:-]+\)=\s*$", re.M), "a MyST target"),
            (re.compile(r"solution-(start|end)"), "a solution marker")]
NOTE = ("*Learner edition: the solutions are left out. Write your answer in each exercise's cell "
        "and run its check; the worked solutions are in the book, behind each exercise's "
        "Solution button.*")


# ---- references ------------------------------------------------------------------------------

def _clean_tex(text: str) -> str:
    text = re.sub(r"\\[a-zA-Z]+\s*", "", text)           # \c{s} -> {s}, \i -> ''
    text = re.sub(r"\\.", "", text)                       # {\"u} -> {u}
    return text.replace("{", "").replace("}", "").strip()


def load_citations(bib: Path) -> dict[str, tuple[str, str]]:
    """key -> (authors as the book shows them, year)."""
    if not bib.is_file():
        return {}
    from pybtex.database import parse_file
    out = {}
    for key, entry in parse_file(str(bib)).entries.items():
        people = entry.persons.get("author") or entry.persons.get("editor") or []
        names = [_clean_tex(" ".join(p.last_names) or str(p)) for p in people]
        others = any(str(p).strip() == "others" for p in people)
        names = [n for n in names if n and n != "others"]
        if not names:
            authors = _clean_tex(entry.fields.get("organization", entry.fields.get("title", key)))
        elif len(names) == 1 and not others:
            authors = names[0]
        elif len(names) == 2 and not others:
            authors = f"{names[0]} and {names[1]}"
        else:
            authors = f"{names[0]} et al."
        out[key] = (authors, _clean_tex(entry.fields.get("year", "n.d.")))
    return out


# ---- the book's settings ---------------------------------------------------------------------

def book_settings(config: Path | None = None) -> dict:
    """``baseurl`` (the published book, may be empty) and ``repository`` (its URL) from _config.yml."""
    import yaml
    data = yaml.safe_load((config or ROOT / "_config.yml").read_text(encoding="utf-8")) or {}
    return {"baseurl": str((data.get("html") or {}).get("baseurl") or ""),
            "repository": str((data.get("repository") or {}).get("url") or "")}


def install_cell_source(repository: str) -> str:
    """Every chapter's first cell: install gradlab from the repository only where it is missing.

    A no-op wherever make venv or make lab installed gradlab; on Colab (the book's launch button, or
    a learner notebook uploaded there) it installs it. ``tests/test_learner.py`` holds every chapter
    to exactly this text, with the repository URL of _config.yml."""
    return ("# Only where the course's package is missing (Colab, a fresh machine): install it from\n"
            "# the course's repository. Where make lab or make venv installed it, this does nothing.\n"
            "import importlib.util\n\n"
            "if importlib.util.find_spec(\"gradlab\") is None:\n"
            f"    repository = \"{repository}\"\n"
            "    %pip install --quiet \"gradlab @ git+{repository}\"")


# ---- the chapter's own labels ----------------------------------------------------------------

class Context:
    """What the roles of one chapter can point at."""

    def __init__(self, md: Path, nb, citations: dict):
        self.md, self.citations = md, citations
        self.labels: dict[str, str] = {}
        self.figures: dict[str, int] = {}
        exercises = 0
        for cell in nb.cells:
            if cell.cell_type == "code":
                name = cell.metadata.get("mystnb", {}).get("figure", {}).get("name")
                if name or _is_figure(cell):
                    self.figures[name or f"_anon{len(self.figures)}"] = len(self.figures) + 1
                continue
            if cell.cell_type != "markdown":
                continue
            lines = cell.source.splitlines()
            for i, line in enumerate(lines):
                m = FENCE.match(line)
                if m and m.group("name") == "exercise":
                    exercises += 1
                    for option in lines[i + 1:i + 6]:
                        lm = re.match(r"^\s*:label:\s*(\S+)", option)
                        if lm:
                            self.labels[lm.group(1)] = f"Exercise {exercises}"
                lm = LABEL_LINE.match(line)
                if lm:
                    heading = next((l for l in lines[i + 1:] if l.strip()), "")
                    self.labels[lm.group("label")] = heading.lstrip("#").strip() or lm.group("label")
        for name, n in self.figures.items():
            self.labels.setdefault(name, f"Figure {n}")

    def solution_link(self, label: str, number: int) -> str:
        """A Markdown link to the worked solution of exercise ``label``: the book page's exercise when
        the book's URL is set (``html.baseurl`` in _config.yml), else the local built page, else the
        chapter's source, where the solution follows the exercise."""
        page = f"chapters/{self.md.stem}.html"
        anchor = f"#{label}" if label else ""
        base = book_settings().get("baseurl", "")
        if base:
            return f"[Open the solution to Exercise {number}]({base.rstrip('/')}/{page}{anchor}) in the book."
        if (ROOT / "_build" / "html" / page).is_file():
            return (f"[Open the solution to Exercise {number}](../_build/html/{page}{anchor}) in the "
                    f"book you built (the Solution button under the exercise).")
        return (f"[Open the solution to Exercise {number}](../chapters/{self.md.name}) in the chapter's "
                f"source: the worked solution follows the exercise there.")

    def doc(self, target: str) -> tuple[str, str]:
        """(title, link) of a {doc} target, relative to the chapter; links point at learner/."""
        path = (self.md.parent / target).resolve()
        source = path.with_suffix(".md") if path.suffix != ".md" else path
        title = target
        if source.is_file():
            heading = re.search(r"^# (.+)$", source.read_text(encoding="utf-8"), re.M)
            title = heading.group(1).strip() if heading else target
        if source.parent.name == "chapters" and re.match(r"\d\d-", source.stem):
            return title, source.stem + ".ipynb"
        return title, "../" + source.relative_to(self.md.parent.parent).as_posix() \
            if source.is_relative_to(self.md.parent.parent) else source.name

    def cite(self, role: str, keys: str) -> str:
        found = [self.citations.get(k.strip(), (k.strip(), "")) for k in keys.split(",") if k.strip()]
        if role in ("cite:t", "cite:ts"):
            return "; ".join(f"{a} ({y})" if y else a for a, y in found)
        inner = "; ".join(f"{a}, {y}" if y else a for a, y in found)
        return inner if role in ("cite:alp", "cite:alps") else f"({inner})"


def _is_figure(cell) -> bool:
    mystnb = cell.metadata.get("mystnb", {})
    return "figure" in mystnb


def _role(m: re.Match, ctx: Context) -> str:
    role, body = m.group("role"), m.group("body")
    t = TARGET.match(body)
    text, target = (t.group("text"), t.group("target")) if t else (None, body)
    if role == "doc":
        title, link = ctx.doc(target)
        return f"[{text or title}]({link})"
    if role.startswith("cite"):
        return ctx.cite(role, target)
    if role == "numref":
        label = ctx.labels.get(target, target)
        number = label.split()[-1] if label.split() and label.split()[-1].isdigit() else ""
        if text:
            return text.replace("%s", number).replace("{number}", number)
        return label
    if role in ("ref", "eq"):
        return text or ctx.labels.get(target, target)
    if role == "math":
        return f"${body}$"
    return text if text is not None else body        # term, abbr, sub, sup, kbd, ...


def convert_roles(text: str, ctx: Context) -> str:
    return ROLE.sub(lambda m: _role(m, ctx), text)


# ---- directives ------------------------------------------------------------------------------

def _quote(lines: list[str]) -> list[str]:
    return [("> " + l) if l.strip() else ">" for l in lines]


def _strip_options(body: list[str]) -> tuple[dict, list[str]]:
    """Directive options (`:key: value` lines or a --- YAML block) and the content after them."""
    options, i = {}, 0
    if body and body[0].strip() == "---":
        end = next((j for j in range(1, len(body)) if body[j].strip() == "---"), None)
        if end is not None:
            import yaml
            try:
                options = yaml.safe_load("\n".join(body[1:end])) or {}
            except yaml.YAMLError:
                options = {}
            i = end + 1
    while i < len(body) and re.match(r"^\s*:[\w-]+:", body[i]):
        m = re.match(r"^\s*:([\w-]+):\s*(.*)$", body[i])
        options[m.group(1)] = m.group(2)
        i += 1
    while i < len(body) and not body[i].strip():
        i += 1
    return options, body[i:]


def _directive(name: str, args: str, body: list[str], ctx: Context, counters: dict) -> list[str]:
    options, content = _strip_options(body)
    content = convert_lines(content, ctx, counters)
    if name == "exercise":
        counters["exercise"] += 1
        number = counters["exercise"]
        head = f"**Exercise {number}" + (f": {args.strip()}" if args.strip() else "") + "**"
        link = ctx.solution_link(options.get("label", ""), number)
        return _quote([head, ""] + content + ["", link])
    if name in ("math",):
        return ["$$"] + content + ["$$"]
    if name in ("code-block", "code", "sourcecode", "code-cell"):
        return ["```" + args.split()[0] if args.split() else "```"] + content + ["```"]
    if name in ("figure", "image"):
        alt = options.get("alt", "figure")
        return [f"![{alt}]({args.strip()})", ""] + ([f"*{' '.join(content)}*"] if content else [])
    if name in ("bibliography", "tableofcontents", "toctree", "glossary-index"):
        return []
    if name in ADMONITIONS:
        title = args.strip() or name.capitalize()
        if name == "seealso":
            title = args.strip() or "See also"
        return _quote([f"**{convert_roles(title, ctx)}**", ""] + content)
    return content                                        # unknown: keep its text


def convert_lines(lines: list[str], ctx: Context, counters: dict) -> list[str]:
    """MyST markdown lines -> plain Markdown lines (directives, roles, targets, comments)."""
    out, i = [], 0
    while i < len(lines):
        line = lines[i]
        m = FENCE.match(line)
        if m:
            fence = m.group("fence")
            closing = re.compile(r"^\s*" + re.escape(fence[0]) + "{" + str(len(fence)) + r",}\s*$")
            depth, j = 1, i + 1
            while j < len(lines):
                inner = FENCE.match(lines[j])
                if inner and inner.group("fence")[0] == fence[0] and len(inner.group("fence")) == len(fence):
                    depth += 1
                elif closing.match(lines[j]):
                    depth -= 1
                    if depth == 0:
                        break
                j += 1
            body = lines[i + 1:j]
            out += _directive(m.group("name"), m.group("args"), body, ctx, counters)
            i = j + 1
            continue
        pm = PLAIN_FENCE.match(line)
        if pm:                                            # a plain code block: copied as it is
            j = i + 1
            while j < len(lines) and not lines[j].strip().startswith(pm.group(1)):
                j += 1
            out += lines[i:j + 1]
            i = j + 1
            continue
        if LABEL_LINE.match(line) or re.match(r"^%(?!%)", line):
            i += 1                                        # (target)= and MyST % comments
            continue
        line = re.sub(r"(\$\$)\s*\([\w.:-]+\)\s*$", r"\1", line)   # $$ ... $$ (eq-label)
        out.append(convert_roles(line, ctx))
        i += 1
    return out


# ---- solutions -------------------------------------------------------------------------------

def _split_solutions(nb):
    """Yield (cell or None, dropped) pieces: markdown cells cut at solution fences."""
    in_solution = False
    kept, dropped = [], []
    for cell in nb.cells:
        if cell.cell_type != "markdown":
            (dropped if in_solution else kept).append(cell)
            continue
        lines, keep_lines, gone_lines, i = cell.source.splitlines(), [], [], 0
        while i < len(lines):
            m = FENCE.match(lines[i])
            if m and m.group("name") == "solution-start":
                in_solution = True
                i += 1
                while i < len(lines) and not re.match(r"^\s*" + re.escape(m.group("fence")) + r"\s*$", lines[i]):
                    i += 1                                # its options, up to its closing fence
                i += 1
                continue
            if m and m.group("name") == "solution-end":
                in_solution = False
                i += 1
                while i < len(lines) and not re.match(r"^\s*" + re.escape(m.group("fence")) + r"\s*$", lines[i]):
                    i += 1
                i += 1
                continue
            if m and m.group("name") == "solution":       # the ungated form: one block
                fence = m.group("fence")
                i += 1
                while i < len(lines) and not re.match(r"^\s*" + re.escape(fence) + r"\s*$", lines[i]):
                    gone_lines.append(lines[i])
                    i += 1
                i += 1
                continue
            (gone_lines if in_solution else keep_lines).append(lines[i])
            i += 1
        if "\n".join(keep_lines).strip():
            new = nbformat.v4.new_markdown_cell("\n".join(keep_lines).strip("\n"))
            new.metadata = dict(cell.metadata)
            kept.append(new)
        if "\n".join(gone_lines).strip():
            dropped.append(nbformat.v4.new_markdown_cell("\n".join(gone_lines)))
    return kept, dropped


def _names(source: str, kind: str) -> set[str]:
    src = "\n".join("pass" if l.lstrip().startswith(("%", "!")) else l for l in source.splitlines())
    try:
        tree = ast.parse(src)
    except SyntaxError:
        return set()
    found = set()
    for node in ast.walk(tree):
        if kind == "defined":
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                found.add(node.name)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                found.add(node.id)
            elif isinstance(node, ast.alias):
                found.add((node.asname or node.name).split(".")[0])
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
            found.add(node.id)
    return found


def _asserts_a_check(source: str) -> bool:
    return bool(re.search(r"^\s*assert\b.*\bcheck\w*\s*\(", source, re.M))


# ---- the learner notebook --------------------------------------------------------------------

def learner_notebook(md: Path, citations: dict | None = None):
    """The learner edition of one chapter, as an nbformat notebook (not executed)."""
    md = Path(md)
    nb = jupytext.read(md)
    if citations is None:
        citations = load_citations(md.parent.parent / "references.bib")
    ctx = Context(md, nb, citations)
    kept, dropped = _split_solutions(nb)
    solution_only = set()
    for cell in dropped:
        if cell.cell_type == "code":
            solution_only |= _names(cell.source, "defined")
    outside = set()
    for cell in kept:
        if cell.cell_type == "code" and not (HIDDEN_TAGS & set(cell.metadata.get("tags", []))):
            outside |= _names(cell.source, "defined")
    solution_only -= outside
    counters = {"exercise": 0}
    cells, figure = [], 0
    for cell in kept:
        tags = set(cell.metadata.get("tags", []))
        if cell.cell_type == "markdown":
            text = "\n".join(convert_lines(cell.source.splitlines(), ctx, counters)).strip("\n")
            if text.strip():
                cells.append(nbformat.v4.new_markdown_cell(text))
            continue
        if cell.cell_type != "code":
            continue
        if "remove-cell" in tags and (_asserts_a_check(cell.source)
                                      or _names(cell.source, "used") & solution_only):
            continue                                      # it needs the solution to pass
        new = nbformat.v4.new_code_cell(cell.source)
        metadata = {k: v for k, v in cell.metadata.items() if k in ("tags", "mystnb", "jupyter")}
        if tags & HIDDEN_TAGS:
            metadata.setdefault("jupyter", {})["source_hidden"] = True
        new.metadata = metadata
        cells.append(new)
        if _is_figure(cell):
            figure += 1
            caption = str(cell.metadata["mystnb"]["figure"].get("caption", "")).strip()
            if caption:
                cells.append(nbformat.v4.new_markdown_cell(
                    f"*Figure {figure}. {convert_roles(caption, ctx)}*"))
    first_heading = next((i for i, c in enumerate(cells) if c.cell_type == "markdown"
                          and c.source.lstrip().startswith("# ")), -1)
    cells.insert(first_heading + 1, nbformat.v4.new_markdown_cell(NOTE))

    for i, cell in enumerate(cells):
        cell["id"] = f"cell-{i:03d}"
    out = nbformat.v4.new_notebook(cells=cells)
    out.metadata = {"kernelspec": {"name": KERNEL, "display_name": "Python 3 (ipykernel)",
                                   "language": "python"},
                    "language_info": _language_info()}
    return out


def _language_info() -> dict:
    """What ipykernel reports for this interpreter, so JupyterLab has nothing to update on open."""
    return {"codemirror_mode": {"name": "ipython", "version": 3}, "file_extension": ".py",
            "mimetype": "text/x-python", "name": "python", "nbconvert_exporter": "python",
            "pygments_lexer": "ipython3", "version": platform.python_version()}


def problems(nb, path: Path | str = "") -> list[str]:
    """Raw MyST syntax or solution markers left in a learner notebook's prose."""
    found = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "markdown":
            continue
        prose = re.sub(r"^ {0,3}(`{3,}|~{3,})[^\n{]*\n.*?^ {0,3}\1\s*$", "", cell.source, flags=re.S | re.M)
        for pattern, what in RAW_MYST:
            m = pattern.search(prose)
            if m:
                line = prose[:m.start()].count("\n")
                found.append(f"{path}: cell {i + 1}: {what} left in the prose: "
                             f"{prose.splitlines()[line].strip()[:80]!r}")
    return found


MANIFEST = ".generated.json"   # in the output folder: notebook name -> sha256 of the bytes we wrote


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _manifest(out_dir: Path) -> dict:
    try:
        return json.loads((out_dir / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def write(md: Path, out_dir: Path = OUT, citations: dict | None = None, *,
          force: bool = False) -> tuple[Path, str]:
    """Write the learner notebook of ``md`` unless the learner has changed theirs; say what happened.

    A notebook is the learner's once its bytes differ from what this tool last wrote there (the
    manifest ``learner/.generated.json`` keeps a hash of each). Such a notebook is never changed:
    the status is ``"kept"`` (``"kept, older than the book"`` when the book's version differs).
    ``force`` writes the book's version anyway and first moves the learner's to ``NAME.ipynb.bak``
    (``.bak2``, ... if that exists). Statuses: created, updated, unchanged, kept..., replaced.
    """
    nb = learner_notebook(md, citations)
    nbformat.validate(nb)
    text = (nbformat.writes(nb) + "\n").encode("utf-8")
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / (Path(md).stem + ".ipynb")
    manifest = _manifest(out_dir)
    status = "created"
    if path.exists():
        current = path.read_bytes()
        if current == text:
            status = "unchanged"
        elif manifest.get(path.name) == _sha(current):
            status = "updated"                       # still exactly what we wrote: not the learner's
        elif not force:
            # the learner's; older than the book only if the book changed since we wrote it
            if manifest.get(path.name) == _sha(text):
                return path, "kept (yours)"
            return path, "kept, older than the book"
        else:
            n, backup = 1, path.with_name(path.name + ".bak")
            while backup.exists():
                n += 1
                backup = path.with_name(f"{path.name}.bak{n}")
            path.rename(backup)
            status = f"replaced; yours is now {backup.name}"
    if status != "unchanged":
        path.write_bytes(text)
    manifest[path.name] = _sha(text)
    (out_dir / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return path, status


def execute(path: Path) -> None:
    """Run a learner notebook top to bottom in a fresh kernel; only raises-exception cells may raise."""
    from tools.kernel import execute as run_all
    run_all(nbformat.read(path, as_version=4), Path(path).parent, str(path))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.learner", description=__doc__.split("\n")[0])
    parser.add_argument("chapters", nargs="*", help="chapter sources (default: every toc chapter)")
    parser.add_argument("--out", type=Path, default=OUT, help="output folder (default: learner/)")
    parser.add_argument("--check", action="store_true", help="fail on raw MyST or solution markers")
    parser.add_argument("--execute", action="store_true", help="run each notebook in a fresh kernel")
    parser.add_argument("--force", action="store_true",
                        help="also replace notebooks you edited (yours is kept as NAME.ipynb.bak)")
    args = parser.parse_args(argv)
    from tools.kernel import NotebookFailed
    from tools.notebook import NotAChapter, chapter_source
    from tools.toc import toc_notebooks
    try:
        chapters = ([chapter_source(c) for c in args.chapters] if args.chapters
                    else [ROOT / p.with_suffix(".md") for p in toc_notebooks(ROOT)])
    except NotAChapter as err:
        print(f"tools.learner: {err}", file=sys.stderr)
        return 2
    citations = load_citations(ROOT / "references.bib")
    failed, kept = [], []
    for md in chapters:
        path, status = write(md, args.out, citations, force=args.force)
        if status == "kept, older than the book":
            kept.append(path)
        found = problems(nbformat.read(path, as_version=4), path) if args.check else []
        failed += found
        for line in found:
            print(line, file=sys.stderr)
        if args.execute and not found:
            try:
                execute(path)
            except NotebookFailed as err:
                failed.append(path)
                print(f"does not run top to bottom: {err}", file=sys.stderr)
                continue
        print(f"{path}: {status}" + (" (ran top to bottom)" if args.execute else ""))
    if kept:
        print(f"\nYour work is kept: {len(kept)} notebook(s) you changed were left as they are, and the "
              f"book's version of each has changed since:\n" + "".join(f"  {p}\n" for p in kept)
              + "To get the book's version of one, rename or delete yours and run make learner again, "
              "or run make learner FORCE=1 (it keeps each of yours as NAME.ipynb.bak).")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
