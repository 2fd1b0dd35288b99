"""The page check: every toc chapter fits one sitting and a clean page.

Fails (exit 1, one line per problem) when a chapter listed in _toc.yml has:
- more than 3,000 words of prose or more than 250 shown code lines (see :func:`measure`);
- a stated time ("about N minutes") under the honest floor, words/120 + shown code lines/8 + 10 per
  coding stub + 4 per value stub, or over 90 (a stub is a code cell outside the solutions marked
  ``# your code here`` / ``# your answer here``; a coding stub defines a function or class);
- fewer than three coding exercises (two in Getting started): exercises whose self-check runs the
  learner's code (``check_code``, ``check_tensors`` or ``check_function``);
- a headline backward pass of :data:`LEARNER_WRITES` that is not a stub the learner fills in, with
  its solution inside a solution block;
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
MAX_WORDS, MAX_CODE_LINES, MIN_CODING_EXERCISES = 3000, 250, 3
MIN_CODING_EXERCISES_BY_CHAPTER = {"00": 2}
MAX_CODE_COLUMNS, MAX_OUTPUT_COLUMNS, MAX_TRACEBACK_LINES = 88, 100, 12
MAX_MINUTES = 90
# Minutes a learner needs: reading, working through shown code, and each exercise they do.
WORDS_PER_MINUTE, CODE_LINES_PER_MINUTE, MINUTES_PER_CODING_STUB, MINUTES_PER_VALUE_STUB = 120, 8, 10, 4
#: What the learner writes in each chapter: the headline backward passes, as stubs with these names.
LEARNER_WRITES = {
    "01": ["neuron_backward"], "02": ["second_derivative"], "03": ["matmul_backward"],
    "04": ["Softplus"], "05": ["maximum_backward"],
    "06": ["rnn_step_backward", "rnn_backward", "train_truncated"], "07": ["mlp_backward"],
    "08": ["topological_order", "backward"], "09": ["unbroadcast"],
    "10": ["bn_backward", "bn_backward_compact", "layer_norm_backward", "rms_norm_backward",
           "embedding_backward"],
    "11": ["attention_backward", "block_backward", "attention_backward_tiled"],
    "12": ["jvp_via_vjp", "hvp"],
}
STUB = re.compile(r"#\s*your [\w ]+ here", re.I)
DEFINES = re.compile(r"^(?:def|class) (\w+)", re.M)
WORD = re.compile(r"[A-Za-z][A-Za-z'-]*")
HIDDEN_INPUT = {"remove-input", "remove-cell", "hide-input", "hide-cell"}
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# An absolute path of the machine that executed the notebook: a home, a venv, site-packages, ...
MACHINE_PATH = re.compile(r"(?<![\w.])(/(home|root|tmp|work|usr|opt|var|Users|private)/[\w.-]+"
                          r"|site-packages|\.venv[/\\]|[A-Za-z]:\\[\w])")
DIRECTIVE_LINE = re.compile(r"^\s*(`{3,}|:{3,}|:(label|class|name|nonumber|hidden):)")
EXERCISE = re.compile(r"^\s*(:{3,}|`{3,})\{exercise(-start)?\}", re.M)
SOLUTION_START = re.compile(r"^\s*(:{3,}|`{3,})\{solution(-start)?\}", re.M)
SET_THREADS = re.compile(r"\btorch\.set_num_threads\(")
CODING_CHECK = re.compile(r"\b(check_code|check_tensors|check_function)\(")
STATED_TIME = re.compile(r"\b(\d+) minutes\b")


@dataclass
class PageMeasure:
    words: int = 0
    code_lines: int = 0
    minutes: int | None = None
    exercises: int = 0
    coding_exercises: int = 0
    reading_words: int = 0            # every word token a reader meets, solutions included
    coding_stubs: list[str] = field(default_factory=list)
    value_stubs: int = 0
    solutions_define: set[str] = field(default_factory=set)
    problems: list[str] = field(default_factory=list)

    @property
    def floor_minutes(self) -> float:
        """The honest time: reading, shown code, and each exercise the learner does."""
        return (self.reading_words / WORDS_PER_MINUTE + self.code_lines / CODE_LINES_PER_MINUTE
                + MINUTES_PER_CODING_STUB * len(self.coding_stubs) + MINUTES_PER_VALUE_STUB * self.value_stubs)


def prose_words(markdown: str) -> int:
    """Words of prose: fenced blocks, display math, directive fences/options and comments removed."""
    text = re.sub(r"<!--.*?-->", " ", markdown, flags=re.S)
    text = re.sub(r"^(\s*)(`{3,})(?!\{).*?^\1\2\s*$", " ", text, flags=re.S | re.M)  # code blocks
    text = re.sub(r"\$\$.*?\$\$", " ", text, flags=re.S)
    text = re.sub(r"^\s*`{3,}\{math\}.*?^\s*`{3,}\s*$", " ", text, flags=re.S | re.M)
    return sum(len(line.split()) for line in text.splitlines() if not DIRECTIVE_LINE.match(line))


def reading_words(markdown: str) -> int:
    """Word tokens a reader meets: display math and fenced blocks removed (MyST directives too)."""
    text = re.sub(r"\$\$.*?\$\$", " ", markdown, flags=re.S)
    text = re.sub(r"(`{3,}).*?\1", " ", text, flags=re.S)
    return len(WORD.findall(text))


def _shown(cell) -> bool:
    return not (set(cell.metadata.get("tags", [])) & HIDDEN_INPUT)


def measure(md: Path) -> PageMeasure:
    """Size of a chapter source: prose words, shown code lines, stated minutes, exercises."""
    nb = jupytext.read(md)
    m = PageMeasure()
    in_exercise = coding = in_solution = False
    for cell in nb.cells:
        src = cell.source
        if cell.cell_type == "markdown":
            m.words += prose_words(src)
            m.reading_words += reading_words(src)
            if "solution-start" in src:
                in_solution = "solution-end" not in src.split("solution-start", 1)[1]
            elif "solution-end" in src:
                in_solution = False
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
            if in_solution:
                m.solutions_define.update(DEFINES.findall(src))
            elif STUB.search(src):
                defined = DEFINES.findall(src)
                if defined:
                    m.coding_stubs += defined[:1]
                else:
                    m.value_stubs += 1
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
    floor = m.floor_minutes
    if m.minutes is None or m.minutes < floor - 0.5 or m.minutes > MAX_MINUTES:
        m.problems.append(
            f"states {m.minutes} minutes ('about N minutes' in the introduction); the honest time is "
            f"at least {floor:.0f} ({m.reading_words} words/{WORDS_PER_MINUTE} + {m.code_lines} shown "
            f"code lines/{CODE_LINES_PER_MINUTE} + {MINUTES_PER_CODING_STUB} x {len(m.coding_stubs)} "
            f"coding + {MINUTES_PER_VALUE_STUB} x {m.value_stubs} value exercises) and at most "
            f"{MAX_MINUTES}: state it, or cut")
    chapter = Path(md).name[:2]
    need = MIN_CODING_EXERCISES_BY_CHAPTER.get(chapter, MIN_CODING_EXERCISES)
    if m.coding_exercises < need or len(m.coding_stubs) < need:
        m.problems.append(f"{m.coding_exercises} coding exercises self-checked with check_code, "
                          f"check_tensors or check_function, {len(m.coding_stubs)} coding stubs "
                          f"('# your code here' in a def or class); the chapter needs {need}")
    for name in LEARNER_WRITES.get(chapter, []):
        if name not in m.coding_stubs:
            m.problems.append(f"the learner writes {name}: no stub cell defines it with '# your code here'")
        elif name not in m.solutions_define:
            m.problems.append(f"the learner writes {name}: no solution block defines it")
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
                                    f"{MAX_TRACEBACK_LINES}: start the chapter with readable_errors())")
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
    print(f"{'chapter':<34} {'words':>6} {'code':>5} {'min':>4} {'floor':>5} {'exercises':>9} {'coding':>6}")
    for md in chapters:
        if not md.exists():
            problems.append(f"{md}: no such chapter source")
            continue
        m, found = check_chapter(md)
        problems += found
        print(f"{md.stem:<34} {m.words:>6} {m.code_lines:>5} {m.minutes or '-':>4} "
              f"{m.floor_minutes:>5.0f} {m.exercises:>9} {m.coding_exercises:>6}")
    for p in problems:
        print(p)
    print(f"page check: {len(chapters)} chapters, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
