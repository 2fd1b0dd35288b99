"""Readable errors in a notebook: one line for an expected error, the learner's own frames for a bug.

:func:`readable_errors` is what every chapter's first (hidden) cell calls. An error raised by a
library call written at a cell's top level, as the chapters' expected errors are, prints as one
line (IPython's ``%xmode Minimal``). An error raised inside a function defined in a notebook cell,
such as the learner's backward pass, prints the frames of the notebook's cells (cell, line, code)
and leaves out the library's frames, so the line at fault is on the screen. Long messages are
wrapped to the page's width.
"""
from __future__ import annotations

import linecache
import textwrap
import traceback

from ._validate import is_integer

__all__ = ["readable_errors", "wrap_long_errors"]


def _shell():
    """The running IPython shell, or None (a plain script, or no IPython installed)."""
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython comes with the course's environment
        return None
    return get_ipython()


def _wrapped(message: str, prefix: str, width: int) -> str:
    lines = [w for line in (prefix + message).splitlines()
             for w in textwrap.wrap(line, width, break_on_hyphens=False) or [""]]
    return "\n".join(lines)[len(prefix):]


def wrap_long_errors(*exception_types: type[BaseException], width: int = 100) -> bool:
    """In IPython, show the message of these errors (default ``RuntimeError``) wrapped at ``width``.

    PyTorch's error messages run to several hundred columns on one line; on a page they scroll
    sideways. Returns True if a handler was installed, False outside IPython (a plain script shows
    errors as Python does).
    """
    if not is_integer(width) or width < 20:
        raise ValueError(f"wrap_long_errors: width must be an int of at least 20 columns, got {width!r}.")
    types = exception_types or (RuntimeError,)
    if not all(isinstance(t, type) and issubclass(t, BaseException) for t in types):
        raise TypeError(f"wrap_long_errors: pass exception classes such as RuntimeError, got {types!r}.")
    shell = _shell()
    if shell is None:
        return False

    def handler(shell, etype, value, tb, tb_offset=None):
        prefix = etype.__name__ + ": "
        try:
            value = etype(_wrapped(str(value), prefix, width))
        except Exception:   # an exception class that cannot be rebuilt from one message
            pass
        shell.showtraceback((etype, value, tb), tb_offset=tb_offset)

    shell.set_custom_exc(tuple(types), handler)
    return True


def _cell_frames(shell, tb) -> list[tuple[str, int, str, str]]:
    """(cell label, line, function, source line) for each frame of ``tb`` that runs notebook code."""
    names = getattr(shell.compile, "_filename_map", {})
    frames = []
    for frame, line in traceback.walk_tb(tb):
        filename = frame.f_code.co_filename
        if filename in names:
            frames.append((f"Cell In[{names[filename]}]", line, frame.f_code.co_name,
                           linecache.getline(filename, line).strip()))
    return frames


def _message(etype, value, width: int) -> str:
    text = _wrapped(str(value), etype.__name__ + ": ", width)
    notes = getattr(value, "__notes__", None) or []
    return "\n".join([f"{etype.__name__}: {text}" if text else etype.__name__,
                      *(_wrapped(str(n), "", width) for n in notes)])


def readable_errors(width: int = 100) -> bool:
    """In IPython: one-line expected errors, the learner's frames for errors in their functions.

    An error whose traceback passes through at most one notebook frame (the cell's top level)
    prints as ``Type: message``. One raised deeper, inside a function defined in a cell, prints
    ``Traceback (notebook cells only)`` with each cell frame's cell, line, function and code, then
    the message and its notes. Messages wrap at ``width`` columns. Returns True if installed,
    False outside IPython (a script shows errors as Python does).
    """
    if not is_integer(width) or width < 20:
        raise ValueError(f"readable_errors: width must be an int of at least 20 columns, got {width!r}.")
    shell = _shell()
    if shell is None:
        return False
    shell.InteractiveTB.set_mode(mode="Minimal")   # %xmode Minimal, without its printed line

    def handler(shell, etype, value, tb, tb_offset=None):
        frames = _cell_frames(shell, tb)
        if len(frames) <= 1:
            try:
                rebuilt = etype(_wrapped(str(value), etype.__name__ + ": ", width))
                rebuilt.__notes__ = list(getattr(value, "__notes__", []) or [])
                value = rebuilt if str(value) else value
            except Exception:   # an exception class that cannot be rebuilt from one message
                pass
            shell.showtraceback((etype, value, tb), tb_offset=tb_offset)
            return
        lines = ["Traceback (notebook cells only; most recent call last):"]
        for cell, line, function, code in frames:
            where = "" if function == "<module>" else f", in {function}"
            lines += [f"  {cell}, line {line}{where}", f"    {code}"]
        lines.append(_message(etype, value, width))
        shell._showtraceback(etype, value, lines)

    shell.set_custom_exc((Exception,), handler)
    return True
