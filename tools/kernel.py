"""Running a notebook in a fresh kernel, as the tools do, and saying plainly where it failed.

Every tool that executes a notebook (``tools.notebook``, ``tools.learner``, ``tools.run_chapter``)
starts its kernel here: quiet (no "Kernel is running over TCP without encryption" on every run; the
kernel listens on 127.0.0.1 and serves this process only), in the notebook's folder, and runs it
cell by cell so that a failure names the chapter, the cell, the exercise it belongs to and the
error, in one paragraph without the tools' frames or terminal colour codes.
"""
from __future__ import annotations

import re
from contextlib import contextmanager
from pathlib import Path

from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

KERNEL = "python3"
TIMEOUT = 600
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# ipykernel warns at every start that its loopback TCP sockets are not encrypted; its other
# warnings are rare, and an error is still shown.
QUIET_KERNEL = ["--IPKernelApp.log_level=ERROR"]
LABEL = re.compile(r"^\s*(?:`{3,}|:{3,})\{(exercise|solution-start)\}\s*(\S*)\s*$"
                   r"(?:\n\s*:label:\s*(\S+))?", re.M)
QUOTED_EXERCISE = re.compile(r"^>\s*\*\*(Exercise \d+)")


class NotebookFailed(Exception):
    """A cell failed: the message names where and why, ready to print."""


def client(nb, folder: Path) -> NotebookClient:
    return NotebookClient(nb, timeout=TIMEOUT, kernel_name=KERNEL, record_timing=False,
                          extra_arguments=QUIET_KERNEL,
                          resources={"metadata": {"path": str(Path(folder).resolve())}})


def where(nb, index: int) -> str:
    """The exercise (or solution) the cell at ``index`` belongs to, from the markdown above it."""
    for cell in reversed(nb.cells[:index]):
        if cell.cell_type != "markdown":
            continue
        if "solution-end" in cell.source:
            return ""
        found = list(LABEL.finditer(cell.source))
        if found:
            kind, arg, label = found[-1].groups()
            name = label or arg
            return f"in the solution of exercise {name}" if kind == "solution-start" else f"in exercise {name}"
        quoted = [QUOTED_EXERCISE.match(line) for line in cell.source.splitlines()]
        quoted = [q for q in quoted if q]
        if quoted:
            return f"in {quoted[-1].group(1)}"
    return ""


def error_text(err: CellExecutionError | Exception) -> str:
    """The error's own lines: the exception and its message, without frames or colour codes."""
    ename, evalue = getattr(err, "ename", None), getattr(err, "evalue", None)
    if ename:
        return f"{ename}: {evalue}" if evalue else ename
    lines = [l for l in ANSI.sub("", str(err)).splitlines() if l.strip()]
    return lines[-1] if lines else type(err).__name__


@contextmanager
def running(nb, folder: Path):
    """A kernel for ``nb``; yields ``run(index)``, which executes one cell or raises NotebookFailed."""
    c = client(nb, folder)
    code = [i for i, cell in enumerate(nb.cells) if cell.cell_type == "code"]
    with c.setup_kernel():
        def run(index: int, name: str = "") -> None:
            try:
                c.execute_cell(nb.cells[index], index)
            except CellExecutionError as err:
                context = where(nb, index)
                printed = "".join(o.get("text", "") for o in nb.cells[index].get("outputs", [])
                                  if o.get("output_type") == "stream")
                printed = [l for l in ANSI.sub("", printed).splitlines() if l.strip()][-8:]
                raise NotebookFailed(
                    f"{name or 'notebook'}: code cell {code.index(index) + 1} of {len(code)}"
                    f"{' (' + context + ')' if context else ''} failed: {error_text(err)}"
                    + ("".join(f"\n  | {line}" for line in printed) if printed else "")) from None
        yield run


def execute(nb, folder: Path, name: str = "") -> None:
    """Run every cell of ``nb`` in order; only cells tagged raises-exception may raise."""
    with running(nb, folder) as run:
        for i, cell in enumerate(nb.cells):
            if cell.cell_type == "code":
                run(i, name)
