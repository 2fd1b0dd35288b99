"""The page check: every toc chapter fits one sitting and a clean page.

Fails (exit 1, one line per problem) when a chapter listed in _toc.yml has:
- more than 3,000 words of prose or more than 250 shown code lines (see :func:`measure`);
- no stated time ("about N minutes", 30 to 60), or fewer than two coding exercises (an exercise
  whose self-check runs the learner's code: ``check_tensors`` or ``check_function``);
- a code line over 88 columns, or a stored output line over 100 columns;
- a stored traceback over 12 lines, or a machine path in any stored output;
- a PNG figure stored at 1x (its pixel width must be twice the width it is displayed at);
- ``torch.set_num_threads`` outside a timing cell (tagged ``nbval-ignore-output``): it would hide
  the thread-count differences that ``make test-threads`` exists to catch.

    python -m tools.check_pages [chapters/NN-name.md ...]     # default: every toc chapter
"""
from __future__ import annotations

import base64
import re
import struct
import sys
from dataclasses import dataclass, field
from pathlib import Path

import jupytext
import nbformat

from tools.toc import toc_notebooks

ROOT = Path(__file__).resolve().parent.parent
MAX_WORDS, MAX_CODE_LINES, MIN_CODING_EXERCISES = 3000, 250, 2
MAX_CODE_COLUMNS, MAX_OUTPUT_COLUMNS, MAX_TRACEBACK_LINES = 88, 100, 12
MINUTES = (30, 60)
HIDDEN_INPUT = {"remove-input", "remove-cell", "hide-input", "hide-cell"}
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# An absolute path of the machine that executed the notebook: a home, a venv, site-packages, ...
MACHINE_PATH = re.compile(r"(?<![\w.])(/(home|root|tmp|work|usr|opt|var|Users|private)/[\w.-]+"
                          r"|site-packages|\.venv[/\\]|[A-Za-z]:\\[\w])")
DIRECTIVE_LINE = re.compile(r"^\s*(`{3,}|:{3,}|:(label|class|name|nonumber|hidden):)")
EXERCISE = re.compile(r"^\s*(:{3,}|`{3,})\{exercise(-start)?\}", re.M)
SOLUTION_START = re.compile(r"^\s*(:{3,}|`{3,})\{solution(-start)?\}", re.M)
SET_THREADS = re.compile(r"\btorch\.set_num_threads\(")
CODING_CHECK = re.compile(r"\b(check_tensors|check_function)\(")
STATED_TIME = re.compile(r"\b(\d+) minutes\b")


@dataclass
class PageMeasure:
    words: int = 0
    code_lines: int = 0
    minutes: int | None = None
    exercises: int = 0
    coding_exercises: int = 0
    problems: list[str] = field(default_factory=list)


def prose_words(markdown: str) -> int:
    """Words of prose: fenced blocks, display math, directive fences/options and comments removed."""
    text = re.sub(r"<!--.*?-->", " ", markdown, flags=re.S)
    text = re.sub(r"^(\s*)(`{3,})(?!\{).*?^\1\2\s*$", " ", text, flags=re.S | re.M)  # code blocks
    text = re.sub(r"\$\$.*?\$\$", " ", text, flags=re.S)
    text = re.sub(r"^\s*`{3,}\{math\}.*?^\s*`{3,}\s*$", " ", text, flags=re.S | re.M)
    return sum(len(line.split()) for line in text.splitlines() if not DIRECTIVE_LINE.match(line))


def _shown(cell) -> bool:
    return not (set(cell.metadata.get("tags", [])) & HIDDEN_INPUT)


def measure(md: Path) -> PageMeasure:
    """Size of a chapter source: prose words, shown code lines, stated minutes, exercises."""
    nb = jupytext.read(md)
    m = PageMeasure()
    in_exercise = coding = False
    for cell in nb.cells:
        src = cell.source
        if cell.cell_type == "markdown":
            m.words += prose_words(src)
            found = STATED_TIME.search(src)
            if found and m.minutes is None:
                m.minutes = int(found.group(1))
            if SOLUTION_START.search(src) and in_exercise:
                m.coding_exercises += coding
                in_exercise = False
            if EXERCISE.search(src):
                m.exercises += len(EXERCISE.findall(src))
                in_exercise, coding = True, False
        elif cell.cell_type == "code":
            if _shown(cell):
                m.code_lines += sum(1 for line in src.splitlines() if line.strip())
            if in_exercise and CODING_CHECK.search(src):
                coding = True
            if SET_THREADS.search(src) and "nbval-ignore-output" not in cell.metadata.get("tags", []):
                m.problems.append("torch.set_num_threads outside a timing cell (tag nbval-ignore-output): "
                                  "it hides thread-count differences from make test-threads")
            for i, line in enumerate(src.splitlines(), 1):
                if len(line) > MAX_CODE_COLUMNS:
                    m.problems.append(f"code line over {MAX_CODE_COLUMNS} columns ({len(line)}): "
                                      f"{line.strip()[:60]}...")
    if in_exercise:
        m.coding_exercises += coding
    if m.words > MAX_WORDS:
        m.problems.append(f"{m.words} words of prose, over the budget of {MAX_WORDS}: cut, or split "
                          "the chapter")
    if m.code_lines > MAX_CODE_LINES:
        m.problems.append(f"{m.code_lines} shown code lines, over the budget of {MAX_CODE_LINES}: move "
                          "checks into hidden cells, cut, or split the chapter")
    if m.minutes is None or not MINUTES[0] <= m.minutes <= MINUTES[1]:
        m.problems.append(f"no stated time of {MINUTES[0]}-{MINUTES[1]} minutes ('about N minutes') "
                          f"in the introduction (found {m.minutes})")
    if m.coding_exercises < MIN_CODING_EXERCISES:
        m.problems.append(f"{m.coding_exercises} coding exercises (self-checked with check_tensors or "
                          f"check_function); a chapter needs at least {MIN_CODING_EXERCISES}")
    return m


def _png_size(data: str) -> tuple[int, int]:
    png = base64.b64decode(data)
    return struct.unpack(">II", png[16:24])


def output_problems(ipynb: Path) -> list[str]:
    """Problems in the stored outputs of an executed notebook."""
    nb = nbformat.read(ipynb, as_version=4)
    problems = []
    for n, cell in enumerate(nb.cells, 1):
        if cell.cell_type != "code":
            continue
        for out in cell.get("outputs", []):
            texts = []
            if out.output_type == "stream":
                texts.append(out.text)
            elif out.output_type == "error":
                lines = ANSI.sub("", "\n".join(out.traceback)).splitlines()
                if len(lines) > MAX_TRACEBACK_LINES:
                    problems.append(f"cell {n}: a traceback of {len(lines)} lines (at most "
                                    f"{MAX_TRACEBACK_LINES}: start the chapter with %xmode Minimal)")
                texts.append("\n".join(lines))
            else:
                data = out.get("data", {})
                texts.append(data.get("text/plain", ""))
                if "image/png" in data:
                    width, _ = _png_size(data["image/png"])
                    shown = out.get("metadata", {}).get("image/png", {}).get("width")
                    if not shown or abs(width - 2 * shown) > 1:
                        problems.append(f"cell {n}: a PNG figure stored at 1x ({width} px wide, shown "
                                        f"at {shown or width}); call gradlab.plotting.use_book_style()")
            for text in texts:
                text = ANSI.sub("", text if isinstance(text, str) else "".join(text))
                found = MACHINE_PATH.search(text)
                if found:
                    problems.append(f"cell {n}: a machine path in the stored output ({found.group(0)!r})")
                wide = [line for line in text.splitlines() if len(line) > MAX_OUTPUT_COLUMNS]
                if wide:
                    problems.append(f"cell {n}: {len(wide)} output line(s) over {MAX_OUTPUT_COLUMNS} "
                                    f"columns: {wide[0][:50]}...")
    return problems


def check_chapter(md: Path) -> tuple[PageMeasure, list[str]]:
    md = Path(md).absolute()
    m = measure(md)
    name = md.relative_to(ROOT) if md.resolve().is_relative_to(ROOT) else md
    problems = [f"{name}: {p}" for p in m.problems]
    ipynb = md.with_suffix(".ipynb")
    if ipynb.exists():
        problems += [f"{Path(name).with_suffix('.ipynb')}: {p}" for p in output_problems(ipynb)]
    return m, problems


def main(argv: list[str]) -> int:
    chapters = [Path(a).with_suffix(".md") for a in argv] or [
        ROOT / p.with_suffix(".md") for p in toc_notebooks(ROOT)]
    problems = []
    print(f"{'chapter':<40} {'words':>6} {'code':>5} {'min':>4} {'exercises':>9} {'coding':>6}")
    for md in chapters:
        if not md.exists():
            problems.append(f"{md}: no such chapter source")
            continue
        m, found = check_chapter(md)
        problems += found
        print(f"{md.stem:<40} {m.words:>6} {m.code_lines:>5} {m.minutes or '-':>4} "
              f"{m.exercises:>9} {m.coding_exercises:>6}")
    for p in problems:
        print(p)
    print(f"page check: {len(chapters)} chapters, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
