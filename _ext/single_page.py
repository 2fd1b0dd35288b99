"""The single-page build that ``tools/pdf.py`` prints: a book for paper, not a copy of the site.

Runs only for the ``singlehtml`` builder, on the assembled book (every toc page inlined into the
root page), after every reference is resolved and before Sphinx rewrites the links within the page:

1. **Ids unique across pages.** Each page numbers its own anonymous targets (``id1``, ``id2``, ...)
   and names its sections (``summary``, ``exercises``, ...), so the single page holds the same id
   many times and a link to one lands on the first in the book (a citation in chapter 3 jumped to
   chapter 1). Every id that occurs more than once is renamed ``<page>--<id>`` (and numbered
   within a page if needed); the links within a page (``refid``, back-references) and the links
   from other pages (``#document-<page>#<id>``) follow the renaming.
2. **No check scaffolding in the exercises.** A print reader cannot run a check: in the code cells
   right after an exercise, and in every solution, a top-level call of a check (``check(...)``,
   ``check_code(...)``, ``check_tensors(...)``, ``check_<name>(...)``, also under ``assert`` or
   assigned) is removed with the helpers only it uses (``make_case``, ``reference``, ``check_*``)
   and their imports, and so is the cell's output (the "no answer yet" rows); a cell left empty
   goes. Hidden cells of a solution go too.
3. **Solutions at the back.** Every solution leaves its exercise for a "Solutions" part at the
   end of the book, one section per chapter, shown open (not as a dropdown); in its place, a link
   to it; its title links back to the exercise.
4. **The licence on the title page**: ``_ext/licence_footer.py``'s block, after the subtitle.
"""
from __future__ import annotations

import ast
import re
from collections import Counter, defaultdict

from docutils import nodes
from sphinx import addnodes

CHECK_NAME = re.compile(r"check(_\w+)?$")
SOLUTIONS_ID = "book-solutions"


# -- 2. check scaffolding, on a cell's source ---------------------------------------------------

def _check_call(stmt: ast.stmt) -> ast.Call | None:
    value = None
    if isinstance(stmt, ast.Expr):
        value = stmt.value
    elif isinstance(stmt, ast.Assert):
        value = stmt.test
    elif isinstance(stmt, (ast.Assign, ast.AnnAssign)):
        value = stmt.value
    parts = value.values if isinstance(value, ast.BoolOp) else [value]   # check(...) or hints()
    for part in parts:
        if isinstance(part, ast.Call):
            func = part.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
            if CHECK_NAME.match(name or ""):
                return part
    return None


def _other_parts(stmt: ast.stmt, call: ast.Call) -> list[ast.expr]:
    """The parts of a ``check(...) or hints()`` statement besides the check call itself."""
    value = getattr(stmt, "value", None) or getattr(stmt, "test", None)
    return [p for p in value.values if p is not call] if isinstance(value, ast.BoolOp) else []


def strip_checks(source: str) -> tuple[str | None, bool]:
    """The source without its check scaffolding, and whether it had any. (None: nothing is left.)

    Removed: top-level statements that call a check; the functions and imports only those calls
    use besides their first argument (the learner's answer stays); functions named ``check_*``;
    comment lines right above a removed statement."""
    try:
        tree = ast.parse(source)
    except SyntaxError:  # IPython magics: not scaffolding
        return source, False
    calls = {id(s): c for s in tree.body if (c := _check_call(s)) is not None}
    if not calls:
        return source, False
    helpers: set[str] = set()
    for stmt in tree.body:
        if id(stmt) not in calls:
            continue
        call = calls[id(stmt)]
        args = list(call.args[1:]) + [k.value for k in call.keywords] + _other_parts(stmt, call)
        helpers |= {n.id for a in args for n in ast.walk(a) if isinstance(n, ast.Name)}
    drop = []
    for stmt in tree.body:
        if id(stmt) in calls:
            drop.append(stmt)
        elif isinstance(stmt, (ast.FunctionDef, ast.ClassDef)) and (
                stmt.name in helpers or CHECK_NAME.match(stmt.name)):
            drop.append(stmt)
        elif isinstance(stmt, (ast.Import, ast.ImportFrom)) and all(
                (a.asname or a.name) in helpers or CHECK_NAME.match(a.asname or a.name)
                or (a.asname or a.name) == "Rules" for a in stmt.names):
            drop.append(stmt)
    lines = source.splitlines()
    gone: set[int] = set()
    for stmt in drop:
        first = min([stmt.lineno] + [d.lineno for d in getattr(stmt, "decorator_list", [])])
        gone.update(range(first - 1, stmt.end_lineno))
        above = first - 2
        while above >= 0 and lines[above].lstrip().startswith("#"):
            gone.add(above)
            above -= 1
    kept = [line for i, line in enumerate(lines) if i not in gone]
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(kept)).strip("\n")
    return (text if text.strip() else None), True


# -- the assembled tree ---------------------------------------------------------------------------

def _docs_of(tree) -> list[tuple[nodes.Element, str]]:
    """Every element with the page it comes from (the root page outside any inlined page)."""
    out = []
    stack = [(tree, tree.get("docname", ""))]
    while stack:
        node, doc = stack.pop()
        if isinstance(node, addnodes.start_of_file):
            doc = node["docname"]
        out.append((node, doc))
        stack.extend((c, doc) for c in reversed(node.children) if isinstance(c, nodes.Element))
    return out


def _slug(doc: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", doc).strip("-")


def unique_ids(tree, secnumbers: dict | None = None) -> dict[str, dict[str, str]]:
    """Rename every id that occurs more than once; return {page: {old id: new id}}.

    secnumbers (the environment's toc_secnumbers): a renamed section keeps its number, which the
    writer looks up by the section's first id."""
    secnumbers = secnumbers or {}
    elements = _docs_of(tree)
    for node, doc in elements:
        if isinstance(node, nodes.section) and node.get("ids") and node.children:
            number = secnumbers.get(doc, {}).get("#" + node["ids"][0])
            if number and isinstance(node[0], nodes.title) and not node[0].get("secnumber"):
                node[0]["secnumber"] = number
    count = Counter(i for node, _ in elements for i in node.get("ids", []))
    renamed: dict[str, dict[str, str]] = defaultdict(dict)
    taken = set(count)
    for node, doc in elements:
        ids = node.get("ids", [])
        for k, old in enumerate(ids):
            if count[old] < 2:
                continue
            if old in renamed[doc]:  # a second element with this id in the same page
                base, n = f"{_slug(doc)}--{old}", 2
                while f"{base}-{n}" in taken:
                    n += 1
                ids[k] = f"{base}-{n}"
            else:
                new = f"{_slug(doc)}--{old}"
                renamed[doc][old] = ids[k] = new
            taken.add(ids[k])
    for node, doc in elements:
        mapping = renamed.get(doc, {})
        if node.get("refid") in mapping:
            node["refid"] = mapping[node["refid"]]
        for attr in ("backrefs",):
            if node.get(attr):
                node[attr] = [mapping.get(r, r) for r in node[attr]]
        uri = node.get("refuri", "")
        m = re.fullmatch(r"#document-(.+?)#(.+)", uri)
        if m and m.group(2) in renamed.get(m.group(1), {}):
            node["refuri"] = f"#document-{m.group(1)}#{renamed[m.group(1)][m.group(2)]}"
    return renamed


def _is_cell(node) -> bool:
    return isinstance(node, nodes.container) and node.get("nb_element") == "cell_code"


def _cell_of(node):
    """The code cell a top-level node is or wraps (myst-nb's hide wrapper), or None."""
    if _is_cell(node):
        return node
    if type(node).__name__ == "HideCodeCellNode":
        return next((c for c in node.children if _is_cell(c)), None)
    return None


def _strip_cell(top, cell, *, in_solution: bool) -> bool:
    """Strip one cell's scaffolding; True when the whole cell (top) was removed."""
    tags = cell.get("cell_metadata", {}).get("tags", [])
    if in_solution and any(t.startswith("hide-") for t in tags):
        top.parent.remove(top)
        return True
    for source in cell.children:
        if source.get("nb_element") != "cell_code_source":
            continue
        for block in source.findall(nodes.literal_block):
            text, had = strip_checks(block.astext())
            if not had:
                return False
            if text is None:
                top.parent.remove(top)
                return True
            block.rawsource = text
            block.children = []
            block += nodes.Text(text)
            for output in [c for c in cell.children if c.get("nb_element") == "cell_code_output"]:
                cell.remove(output)
    return False


def strip_scaffolding(tree, exercise_types, solution_type) -> int:
    """Strip the cells after each exercise and in each solution; how many cells changed."""
    changed = 0
    for parent in list(tree.findall(nodes.Element)):
        after_exercise = False
        for child in list(parent.children):
            if isinstance(child, exercise_types):
                after_exercise = True
                continue
            cell = _cell_of(child)
            if cell is not None and after_exercise:
                changed += 1
                _strip_cell(child, cell, in_solution=False)
            elif cell is None and not isinstance(child, nodes.target):
                after_exercise = False  # prose, or the exercise's solution, ends its cells
    for solution in list(tree.findall(solution_type)):
        for node in list(solution.findall(nodes.Element)):
            if _is_cell(node) and node.parent is not None:
                top = node.parent if type(node.parent).__name__ == "HideCodeCellNode" else node
                changed += 1
                _strip_cell(top, node, in_solution=True)
    return changed


def move_solutions(app, tree, solution_type) -> int:
    """Every solution to a Solutions part at the end, a link to it where it was; how many."""
    docs = dict((id(n), d) for n, d in _docs_of(tree))
    solutions = list(tree.findall(solution_type))
    starts = list(tree.findall(addnodes.start_of_file))
    if not solutions or not starts:
        return 0
    part = nodes.section(ids=[SOLUTIONS_ID], names=["book solutions"], classes=["book-solutions"])
    part += nodes.title("", "Solutions")
    part += nodes.paragraph("", "The solutions to the exercises, chapter by chapter. Each "
                            "solution's title links back to its exercise.")
    by_doc: dict[str, nodes.section] = {}
    env = app.env
    for solution in solutions:
        doc = docs.get(id(solution), "")
        if doc not in by_doc:
            number = env.toc_secnumbers.get(doc, {}).get("")
            prefix = ".".join(map(str, number)) + ". " if number else ""
            title = env.titles[doc].astext() if doc in env.titles else doc
            sec = nodes.section(ids=[f"{SOLUTIONS_ID}-{_slug(doc)}"], names=[f"solutions {doc}"],
                                classes=["book-solutions-chapter"])
            sec += nodes.title("", f"{prefix}{title}")
            by_doc[doc] = sec
            part += sec
        if not solution.get("ids"):
            solution["ids"] = [f"{SOLUTIONS_ID}-{_slug(doc)}-{len(by_doc[doc].children)}"]
        heading = next(iter(solution.findall(nodes.title)), None)
        label = " ".join(heading.astext().split()) if heading else "The solution"
        pointer = nodes.paragraph(classes=["solution-pointer"])
        pointer += nodes.reference("", f"{label}: in Solutions, at the end of the book",
                                   refid=solution["ids"][0], internal=True)
        parent = solution.parent
        parent[parent.index(solution)] = pointer  # (replace_self would copy the ids over)
        solution["classes"] = [c for c in solution["classes"] if c != "dropdown"]
        by_doc[doc] += solution
    last = starts[-1]
    last.parent.insert(last.parent.index(last) + 1, part)
    return len(solutions)


def add_title_page_licence(app, tree) -> None:
    from licence_footer import book_facts, licence_html

    top = next(iter(tree.findall(nodes.section)), None)
    if top is None:
        return
    first = next((i for i, c in enumerate(top.children) if isinstance(c, nodes.paragraph)), 0)
    top.insert(first + 1, nodes.raw("", licence_html(book_facts(app)), format="html"))


def prepare_single_page(app, doctree, docname):
    if app.builder.name != "singlehtml" or docname != app.config.root_doc:
        return
    from sphinx_exercise.nodes import exercise_enumerable_node, exercise_node, solution_node

    strip_scaffolding(doctree, (exercise_node, exercise_enumerable_node), solution_node)
    unique_ids(doctree, app.env.toc_secnumbers)
    move_solutions(app, doctree, solution_node)
    add_title_page_licence(app, doctree)


def setup(app):
    app.connect("doctree-resolved", prepare_single_page, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
