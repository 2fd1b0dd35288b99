"""Readable expected errors in a notebook: a long error message wrapped to the page's width."""
from __future__ import annotations

import textwrap

from ._validate import is_integer

__all__ = ["wrap_long_errors"]


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
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython comes with the course's environment
        return False
    shell = get_ipython()
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
